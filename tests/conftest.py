"""Shared fixtures. Integration tests use a real single-node Kafka started by deploy/kafka.sh.

* ``DPP_TEST_BOOTSTRAP=host:port`` uses a broker that is already running;
* otherwise the session starts the local broker on port ``DPP_TEST_KAFKA_PORT`` (default 19092,
  apart from the demo's 9092) and stops it at the end if it started it.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a real Kafka broker (KRaft, single node)."""
    given = os.environ.get("DPP_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    port = os.environ.get("DPP_TEST_KAFKA_PORT", "19092")
    env = dict(os.environ, DPP_KAFKA_PORT=port)
    script = ROOT / "deploy" / "kafka.sh"
    was_running = subprocess.run(["bash", str(script), "status"], env=env, capture_output=True).returncode == 0
    out = subprocess.run(["bash", str(script), "start"], env=env, check=True, capture_output=True, text=True)
    bootstrap = out.stdout.strip().splitlines()[-1]
    yield bootstrap
    if not was_running and not os.environ.get("DPP_TEST_KEEP_KAFKA"):
        subprocess.run(["bash", str(script), "stop"], env=env, check=False, capture_output=True)


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix so each test has its own topics and consumer groups."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def demo_keys(monkeypatch) -> dict[str, str]:
    """Random hex keys for the example policy's variables, set in the environment."""
    keys = {v: secrets.token_hex(32) for v in ("DPP_KEY_PSEUDONYM", "DPP_KEY_FPE", "DPP_KEY_DEAD_LETTER")}
    for k, v in keys.items():
        monkeypatch.setenv(k, v)
    return keys


@pytest.fixture(scope="session")
def schema_registry_url() -> str:
    """Base URL of a real schema registry with the Confluent API (Apicurio Registry's
    ``/apis/ccompat/v7``, started by ``deploy/registry.sh`` on ``DPP_TEST_REGISTRY_PORT``, default
    18081), or ``DPP_TEST_SCHEMA_REGISTRY_URL`` when one is already running."""
    given = os.environ.get("DPP_TEST_SCHEMA_REGISTRY_URL")
    if given:
        yield given
        return
    env = dict(os.environ, DPP_REGISTRY_PORT=os.environ.get("DPP_TEST_REGISTRY_PORT", "18081"))
    script = ROOT / "deploy" / "registry.sh"
    was_running = subprocess.run(["bash", str(script), "status"], env=env, capture_output=True).returncode == 0
    out = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"deploy/registry.sh start failed:\n{out.stdout}\n{out.stderr}"
    yield out.stdout.strip().splitlines()[-1]
    if not was_running and not os.environ.get("DPP_TEST_KEEP_REGISTRY"):
        subprocess.run(["bash", str(script), "stop"], env=env, check=False, capture_output=True)


@pytest.fixture(scope="session")
def vault_server() -> dict[str, str]:
    """A real HashiCorp Vault dev server with Transit enabled (``deploy/vault.sh``, port
    ``DPP_TEST_VAULT_PORT``, default 18200), stopped at the end if this session started it:
    ``{"addr", "token"}``. Skips when the vault binary has not been built (``bash deploy/vault.sh
    build``) unless ``DPP_REQUIRE_VAULT`` is set, which makes its absence a failure (CI)."""
    script = ROOT / "deploy" / "vault.sh"
    cache = Path(os.environ.get("DPP_VAULT_CACHE", ROOT / ".cache" / "vault"))
    if not (cache / "bin" / "vault").exists() and not os.environ.get("DPP_REQUIRE_VAULT"):
        pytest.skip("no vault binary: run `bash deploy/vault.sh build` (DPP_REQUIRE_VAULT=1 makes this a failure)")
    port = os.environ.get("DPP_TEST_VAULT_PORT", "18200")
    token = os.environ.get("DPP_TEST_VAULT_TOKEN") or f"dpp-test-{secrets.token_hex(12)}"
    env = dict(os.environ, DPP_VAULT_PORT=port, VAULT_DEV_ROOT_TOKEN_ID=token)
    was_running = subprocess.run(["bash", str(script), "status"], env=env, capture_output=True).returncode == 0
    if was_running and not os.environ.get("DPP_TEST_VAULT_TOKEN"):
        pytest.fail(f"a vault is already running on port {port}: give its root token in DPP_TEST_VAULT_TOKEN")
    out = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"deploy/vault.sh start failed:\n{out.stdout}\n{out.stderr}"
    yield {"addr": out.stdout.strip().splitlines()[-1].partition("=")[2], "token": token, "port": port}
    if not was_running:
        subprocess.run(["bash", str(script), "stop"], env=env, check=False, capture_output=True)


@pytest.fixture(scope="session")
def moto_kms() -> str:
    """Endpoint URL of ``moto`` in server mode (a local stand-in for AWS KMS, not AWS), on a free
    port, with dummy credentials in the environment of this process."""
    import sys
    sys.path.insert(0, str(ROOT))
    from loadtests.common import start_moto_server
    proc, url = start_moto_server()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    yield url
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def customer_sample(tmp_path_factory) -> Path:
    """A JSON-lines sample of 200 generated customer records (``dpp generate -n 200 --seed 7``),
    as ``dpp coverage`` and ``dpp diff`` read them."""
    import orjson

    from proxy.generator import generate_records
    p = tmp_path_factory.mktemp("sample") / "records.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in generate_records(200, seed=7)))
    return p
