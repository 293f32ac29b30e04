"""Broker faults on the real broker: a missing sink topic, and the broker stopped for 30 s
mid-run.

* Sink topic missing (the route's topics are not created and ``--create-topics`` is not given):
  one error line naming the topic, ``/readyz`` false naming it, nothing consumed or committed;
  once the topic is created the worker starts and every record arrives.
* The broker (a private one on its own port, started by ``deploy/kafka.sh``, so the session's
  broker stays up for other tests) stopped for 30 s while records flow, then started again:
  ``/readyz`` false while it is down, true again after; nothing lost (every source record in the
  sink, the dead-letter topic or a counted block), nothing in clear; read back with kafka-python.
"""
from __future__ import annotations

import os
import subprocess
import time

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, ROOT, DppProcess, committed_offsets, create_topics, delete_group,
                      delete_topics, drain, generated_records, personal_values, policy_copy, produce,
                      read_topic, wait_until)
from .test_avro_registry import readyz

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]


def test_a_missing_sink_topic_holds_the_worker_with_a_clear_error(kafka_bootstrap, topic_prefix, demo_keys, tmp_path):
    policy, t = policy_copy(tmp_path, topic_prefix)
    create_topics(kafka_bootstrap, [t.source])
    try:
        records = generated_records(500)
        produce(kafka_bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in records])
        with DppProcess(policy, kafka_bootstrap, tmp_path, name="dpp-missing", create_topics=False) as dpp:
            dpp.wait_ready()
            wait_until(lambda: readyz(dpp.port)[0] == 503 and t.sink in readyz(dpp.port)[1], 30,
                       "/readyz false naming the missing sink topic", dpp.stderr_tail)
            time.sleep(3)
            assert not committed_offsets(kafka_bootstrap, t.group, t.source) or \
                sum(committed_offsets(kafka_bootstrap, t.group, t.source).values()) == 0
            lines = [orjson.loads(x) for x in dpp.stderr().splitlines() if x.startswith("{")]
            missing = [x for x in lines if x.get("msg", "").startswith("topic missing")]
            assert {x["topic"] for x in missing} == {t.sink, t.dead_letter} and len(missing) == 2
            create_topics(kafka_bootstrap, [t.sink, t.dead_letter])
            drain(dpp, kafka_bootstrap, t, 500, timeout_s=60)
            assert readyz(dpp.port)[0] == 200
            assert dpp.stop() == 0
        sink = read_topic(kafka_bootstrap, t.sink)
        assert len(sink) == sum(1 for r in records if r["consent"]["analytics"] is not False)
    finally:
        delete_topics(kafka_bootstrap, t.all)
        delete_group(kafka_bootstrap, t.group)


PRIVATE_PORT = int(os.environ.get("DPP_TEST_FAULT_KAFKA_PORT", "19192"))


def kafka_script(action: str) -> None:
    out = subprocess.run(["bash", str(ROOT / "deploy" / "kafka.sh"), action], capture_output=True, text=True,
                         env=dict(os.environ, DPP_KAFKA_PORT=str(PRIVATE_PORT)), timeout=180)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def private_broker(kafka_bootstrap):  # kafka_bootstrap: the jars are fetched
    if os.environ.get("DPP_TEST_BOOTSTRAP"):
        pytest.skip("the broker is external (DPP_TEST_BOOTSTRAP): cannot start a private one")
    kafka_script("start")
    try:
        yield f"127.0.0.1:{PRIVATE_PORT}"
    finally:
        kafka_script("stop")
        kafka_script("reset")


def test_broker_stopped_for_30_s_loses_nothing_and_lets_nothing_through(private_broker, topic_prefix, demo_keys,
                                                                       tmp_path):
    bootstrap = private_broker
    policy, t = policy_copy(tmp_path, topic_prefix)
    create_topics(bootstrap, t.all)
    records = generated_records(20_000)
    first, second = records[:10_000], records[10_000:]
    produce(bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in first])
    with DppProcess(policy, bootstrap, tmp_path, name="dpp-broker-down") as dpp:
        dpp.wait_ready()
        drain(dpp, bootstrap, t, len(first), timeout_s=120)
        assert readyz(dpp.port)[0] == 200
        kafka_script("stop")
        try:
            wait_until(lambda: readyz(dpp.port)[0] == 503, 60, "/readyz false while the broker is down",
                       dpp.stderr_tail)
            assert "kafka" in readyz(dpp.port)[1]
            time.sleep(30)
            dpp.assert_running()
        finally:
            kafka_script("start")
        wait_until(lambda: readyz(dpp.port)[0] == 200, 90, "/readyz true again", dpp.stderr_tail)
        produce(bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in second])
        m = drain(dpp, bootstrap, t, len(records), timeout_s=180)
        assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr()
    sink = read_topic(bootstrap, t.sink)
    ids = {orjson.loads(r.value)["record_id"] for r in sink}
    assert ids == {r["record_id"] for r in records if r["consent"]["analytics"] is not False}
    assert not read_topic(bootstrap, t.dead_letter)
    src = {r["record_id"]: r for r in records}
    for r in sink[:2000]:
        out = orjson.loads(r.value)
        for secret in personal_values(src[out["record_id"]]):
            assert secret.encode() not in r.value
    assert "every broker is unreachable" in logs and "broker reachable again" in logs
    assert m is not None
