"""The benchmark's peer on the real broker: Kroxylicious started by deploy/kroxylicious.sh with its
RecordEncryption filter (in-memory KMS) in front of the test broker. 100 records produced through it
with kafka-python read back equal through the proxy (decrypted) and not equal directly from the
broker (encrypted, with the filter's header). Skips only when the jars cannot be resolved and
DPP_REQUIRE_KROXYLICIOUS is unset (CI sets it: then that is a failure)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .helpers import KAFKA_PYTHON_WARNINGS, create_topics, delete_topics, read_topic

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "kroxylicious.sh"
N = 100


@pytest.fixture
def encrypting_proxy(kafka_bootstrap):
    """Bootstrap address of Kroxylicious with RecordEncryption in front of ``kafka_bootstrap``
    (port ``DPP_TEST_KROXYLICIOUS_PORT``, default 19492: the fault broker has 19192), stopped afterwards."""
    fetch = subprocess.run(["bash", str(SCRIPT), "fetch"], capture_output=True, text=True, timeout=900, check=False)
    if fetch.returncode != 0:
        if not os.environ.get("DPP_REQUIRE_KROXYLICIOUS"):
            pytest.skip(f"Kroxylicious's jars cannot be resolved (DPP_REQUIRE_KROXYLICIOUS=1 makes this a failure): "
                        f"{fetch.stderr[-300:]}")
        pytest.fail(f"deploy/kroxylicious.sh fetch failed:\n{fetch.stderr}")
    env = dict(os.environ, DPP_KROXYLICIOUS_PORT=os.environ.get("DPP_TEST_KROXYLICIOUS_PORT", "19492"),
               DPP_KROXYLICIOUS_TARGET=kafka_bootstrap.split(",")[0], DPP_KROXYLICIOUS_FILTER="record-encryption")
    out = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, f"deploy/kroxylicious.sh start failed:\n{out.stderr}"
    try:
        assert subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True, check=False).returncode == 0
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120, check=False)
    assert subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True, check=False).returncode == 1


def test_record_encryption_through_kroxylicious(kafka_bootstrap, encrypting_proxy, topic_prefix):
    from kafka import KafkaProducer
    topic = f"{topic_prefix}.krox"
    create_topics(kafka_bootstrap, [topic])
    try:
        sent = {f"k{i}".encode(): f'{{"customer_id":"C{i:08d}","email":"user{i}@example.com"}}'.encode()
                for i in range(N)}
        p = KafkaProducer(bootstrap_servers=encrypting_proxy, acks="all")
        try:
            futures = [p.send(topic, key=k, value=v) for k, v in sent.items()]
            p.flush(60)
            for f in futures:
                f.get(timeout=60)  # every record acknowledged through the proxy
        finally:
            p.close()

        via_proxy = read_topic(encrypting_proxy, topic, timeout_s=120)
        assert len(via_proxy) == N
        assert {r.key: r.value for r in via_proxy} == sent

        direct = read_topic(kafka_bootstrap, topic, timeout_s=120)
        assert len(direct) == N
        assert {r.key for r in direct} == set(sent)          # keys stay in clear
        for r in direct:
            assert r.value != sent[r.key]
            assert b"example.com" not in r.value and b"customer_id" not in r.value
            assert any(h == "kroxylicious.io/encryption" for h, _ in r.headers)
    finally:
        delete_topics(kafka_bootstrap, [topic])
