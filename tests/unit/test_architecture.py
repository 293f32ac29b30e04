"""Layering: the policy engine (proxy.policy, .transforms, .crypto, .detectors, .formats) never imports
Kafka. Runs import-linter on the contract in pyproject.toml, and shows the same contract machinery
does fail on an import that exists (so this test can fail)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ["proxy.policy", "proxy.transforms", "proxy.crypto", "proxy.detectors", "proxy.formats"]


def lint_imports_cmd() -> list[str]:
    """The lint-imports script of this interpreter's environment (falls back to PATH)."""
    here = Path(sys.executable).parent / "lint-imports"
    exe = str(here) if here.exists() else shutil.which("lint-imports")
    assert exe, "lint-imports not found: pip install -e '.[test]' installs import-linter"
    return [exe]


def run_lint(config: Path) -> subprocess.CompletedProcess:
    # --config works on every import-linter 2.x; --no-cache leaves no cache directory behind
    return subprocess.run(lint_imports_cmd() + ["--config", str(config), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def project_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def to_toml(cfg: dict) -> str:
    """Minimal TOML writer for an [tool.importlinter] table (strings, bools, lists of strings)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {val(v)}" for k, v in cfg.items() if k != "contracts"]
    for c in cfg.get("contracts", []):
        lines += ["", "[[tool.importlinter.contracts]]"] + [f"{k} = {val(v)}" for k, v in c.items()]
    return "\n".join(lines) + "\n"


def test_contract_declares_the_engine_boundary():
    cfg = project_config()
    assert cfg["root_package"] == "proxy"
    assert cfg.get("include_external_packages") is True      # needed to forbid confluent_kafka/kafka
    (contract,) = [c for c in cfg["contracts"] if c["type"] == "forbidden"]
    assert contract["source_modules"] == ENGINE
    assert {"confluent_kafka", "kafka", "proxy.stream", "proxy.integrations"} <= set(contract["forbidden_modules"])
    assert contract.get("allow_indirect_imports") is False


def test_project_contract_is_kept():
    res = run_lint(ROOT / "pyproject.toml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "The policy engine never imports Kafka KEPT" in res.stdout
    assert "1 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(
    "extra_forbidden,why",
    [
        (["orjson"], "proxy.policy.compiler imports orjson (an external package, like confluent_kafka)"),
        (["proxy.errors"], "every engine package imports proxy.errors"),
        (["proxy.crypto.ff1"], "proxy.transforms.fpe imports proxy.crypto.ff1 (directly)"),
    ],
)
def test_same_contract_breaks_on_an_existing_import(tmp_path, extra_forbidden, why):
    cfg = project_config()
    contract = dict(next(c for c in cfg["contracts"] if c["type"] == "forbidden"))
    contract["name"] = "deliberately broken"
    sources = list(contract["source_modules"])
    if "proxy.crypto.ff1" in extra_forbidden:
        sources.remove("proxy.crypto")          # a module cannot be both source and forbidden
    contract["source_modules"] = sources
    contract["forbidden_modules"] = list(contract["forbidden_modules"]) + extra_forbidden
    cfg = {**cfg, "contracts": [contract]}
    config = tmp_path / "importlinter.toml"
    config.write_text(to_toml(cfg))
    res = run_lint(config)
    assert res.returncode != 0, why
    assert "deliberately broken BROKEN" in res.stdout, res.stdout + res.stderr
    assert "0 kept, 1 broken" in res.stdout


def test_stream_layer_is_outside_the_engine_and_does_use_kafka(tmp_path):
    """Sanity of the graph: the Kafka import the contract guards against exists in proxy.stream."""
    cfg = {"root_package": "proxy", "include_external_packages": True,
           "contracts": [{"name": "stream without kafka", "type": "forbidden",
                          "source_modules": ["proxy.stream"], "forbidden_modules": ["confluent_kafka"]}]}
    config = tmp_path / "stream.toml"
    config.write_text(to_toml(cfg))
    res = run_lint(config)
    assert res.returncode != 0
    assert "stream without kafka BROKEN" in res.stdout
