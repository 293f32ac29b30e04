"""Helpers for the operations tests (alerts, dashboard, compose): the tools they need, skip or fail.

These tests drive the real tools that consume the files in ``deploy/``: ``promtool`` and ``prometheus``
(Debian package ``prometheus``) and ``docker compose`` (the Docker client with the compose plugin).
A missing tool skips the test with the install command, except under ``CI`` (set and not ``0``/``false``),
where CI is expected to have installed it and the test fails instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

INSTALL_HINTS = {
    "promtool": "apt-get install -y --no-install-recommends prometheus",
    "prometheus": "apt-get install -y --no-install-recommends prometheus",
    "docker compose": "bash deploy/ops-tools.sh compose  (builds the compose CLI plugin with Go)",
}


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set to something other than empty, ``0`` or ``false``."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_tool(what: str, detail: str = "") -> None:
    """Skip (developer machine) or fail (CI) because ``what`` is not available."""
    msg = f"{what} is not available{': ' + detail if detail else ''}; install: {INSTALL_HINTS.get(what, what)}"
    if in_ci():
        pytest.fail(msg + " (CI=true: CI must install it)", pytrace=False)
    pytest.skip(msg)


def require_binary(name: str) -> str:
    """Path of executable ``name``, or skip/fail via :func:`missing_tool`."""
    path = shutil.which(name)
    if path is None:
        missing_tool(name)
    return path


def require_docker_compose() -> list[str]:
    """The ``docker compose`` command (client-only use: ``config`` needs no engine), or skip/fail."""
    docker = shutil.which("docker")
    if docker is None:
        missing_tool("docker compose", "no docker client")
    r = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        missing_tool("docker compose", "the docker client has no compose plugin")
    return [docker, "compose"]


def exported_metric_names() -> set[str]:
    """Sample names dpp exports, read from a fresh :class:`proxy.metrics.Metrics` registry
    (counters as ``NAME_total``, histograms as ``NAME_bucket``/``_sum``/``_count``)."""
    from proxy.metrics import Metrics
    names: set[str] = set()
    for fam in Metrics().registry.collect():
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names |= {fam.name + "_bucket", fam.name + "_sum", fam.name + "_count"}
        else:
            names.add(fam.name)
    return names
