"""``dpp demo`` (the README's first command) on the real broker: every record accounted for, the
walkthrough on stdout, the proxy's JSON log in ``.cache/demo.log`` (dead-lettered records logged
there by topic/partition/offset/reason, never by value), and the native record path in use where
CI requires it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_demo_accounts_for_every_record(kafka_bootstrap):
    env = {**os.environ, "DPP_KEY_PSEUDONYM": "31" * 32, "DPP_KEY_FPE": "32" * 32, "DPP_KEY_DEAD_LETTER": "33" * 32}
    out = subprocess.run([sys.executable, "-m", "proxy", "demo", "--count", "2000",
                          "--bootstrap-servers", kafka_bootstrap],
                         capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "every consumed record is accounted for" in out.stdout
    assert "reason=invalid-json" in out.stdout and "reason=consent-withdrawn" in out.stdout
    assert "record dead-lettered" not in out.stdout + out.stderr  # logs go to the file, not the walkthrough
    log = (ROOT / ".cache" / "demo.log").read_text(encoding="utf-8").splitlines()
    events = [orjson.loads(line) for line in log]
    dead = [e for e in events if e.get("msg") == "record dead-lettered"]
    assert len(dead) == 3 and all({"topic", "partition", "offset", "reason"} <= e.keys() for e in dead)
    started = [e for e in events if e.get("msg") == "route started"]
    assert started and started[0]["record_path"] in ("native-json", "native", "python")
    if os.environ.get("DPP_REQUIRE_NATIVE") == "1":
        assert started[0]["record_path"].startswith("native")


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_demo_on_a_schema_format(kafka_bootstrap, schema_registry_url, fmt):
    """``dpp demo --format avro|protobuf``: the records through the real registry, the key and the
    x-user-email header shown protected beside their source values."""
    env = {**os.environ, "DPP_KEY_PSEUDONYM": "31" * 32, "DPP_KEY_FPE": "32" * 32, "DPP_KEY_DEAD_LETTER": "33" * 32}
    out = subprocess.run([sys.executable, "-m", "proxy", "--schema-registry", schema_registry_url, "demo",
                          "--count", "1000", "--bootstrap-servers", kafka_bootstrap, "--format", fmt],
                         capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "every consumed record is accounted for" in out.stdout
    assert "reason=not-confluent-framed" in out.stdout and "reason=consent-withdrawn" in out.stdout
    key_line = next(line for line in out.stdout.splitlines() if line.startswith("record key"))
    header_line = next(line for line in out.stdout.splitlines() if line.startswith("header x-user-email"))
    assert "mob_" in key_line and "em_" in header_line
    assert f"--schema-registry {schema_registry_url}" in out.stdout
