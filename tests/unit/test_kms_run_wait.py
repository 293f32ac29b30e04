"""``dpp run`` with its KMS unreachable at start-up: /readyz false naming the KMS, one log line,
no route started, the KMS metrics count the failures; when the KMS answers, the keys load and the
engine starts. The KMS is moto's AWS KMS stand-in behind a TCP gate that is closed, then opened."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlparse

import yaml
from click.testing import CliRunner

from kmskit import TcpGate
from proxy.cli import main as cli
from test_kms_policy import EXAMPLE, KEYS


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_run_waits_not_ready_while_the_kms_is_unreachable(tmp_path, moto_kms):
    import boto3
    c = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_kms)
    kek = f"alias/dpp-{uuid.uuid4().hex[:8]}"
    c.create_alias(AliasName=kek, TargetKeyId=c.create_key()["KeyMetadata"]["KeyId"])
    u = urlparse(moto_kms)
    gate = TcpGate((u.hostname, u.port)).open()
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["keys"] = {k: {"source": "aws", "key": kek, "store": str(tmp_path / "keys.json"), "region": "us-east-1",
                       "endpoint_url": gate.url, "timeout_s": 1} for k in KEYS}
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    assert CliRunner().invoke(cli, ["keys", "init", "--policy", str(policy)]).exit_code == 0
    gate.close()

    port = TcpGate._free_port()
    err = open(tmp_path / "stderr", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "run", "--policy", str(policy),
                             "--bootstrap-servers", "127.0.0.1:9", "--metrics-port", str(port),
                             "--reload-interval", "0", "--control-topic", ""],
                            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 60
        status = None
        while time.time() < deadline:
            try:
                status, body = http(f"http://127.0.0.1:{port}/readyz")
                if "waiting for the KMS" in body:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert status == 503 and "waiting for the KMS" in body and "kms" in body
        time.sleep(6)                            # several more attempts
        _, metrics = http(f"http://127.0.0.1:{port}/metrics")
        failed = [l for l in metrics.splitlines()
                  if l.startswith('dpp_kms_operations_total{') and 'outcome="unavailable"' in l and 'provider="aws"' in l]
        assert failed and float(failed[0].rsplit(" ", 1)[1]) >= 2
        err.seek(0)
        lines = [json.loads(l) for l in err.read().splitlines() if l.startswith("{")]
        waiting = [l for l in lines if "KMS cannot be reached" in l.get("message", l.get("msg", ""))]
        assert len(waiting) == 1, lines         # one clear line, not one per attempt
        assert not any("route started" in l.get("message", "") for l in lines)

        gate.open()
        deadline = time.time() + 60
        while time.time() < deadline:
            err.seek(0)
            if "the KMS answered: keys loaded" in err.read():
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the keys did not load after the KMS came back")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        gate.close()
        err.close()
