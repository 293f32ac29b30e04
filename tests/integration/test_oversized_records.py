"""Records larger than the sink accepts, and a worker started while its broker is still starting
(issue 11, item 5), on the real broker; read back with kafka-python.

* A 5 MB and a 20 MB record among 3,000 generated ones; the sink topic takes Kafka's default
  ``max.message.bytes`` (1 MB), the dead-letter topic 10 MB. The 5 MB record is dead-lettered
  sealed (reason ``too-large``, its original opened by ``dpp dead-letter``); the 20 MB one is too
  large even sealed, so its dead-letter record is a stub: headers, the original size and a keyed
  digest, no payload. Every other record reaches the sink, the offsets are committed to the end,
  and the worker goes on; nothing personal is in clear in the sink or dead-letter topic.
* The sink's limit lowered to 200 kB while the worker runs (so the limit it read at start is
  stale): the broker refuses a 500 kB record; the worker lowers its limit, processes the batch
  again and dead-letters the record (at-least-once and exactly-once).
* A worker started before its (private) broker: it waits, the broker starts, the group
  coordinator loads, and every record arrives (no ``route stopped on error``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import orjson
import pytest

from proxy.stream.deadletter import digest_key, pack_record

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, committed_offsets, create_topics, delete_group,
                      delete_topics, drain, end_offsets, generated_records, metric, personal_values, policy_copy,
                      produce, read_topic, run_dpp, wait_until)
from .test_avro_registry import readyz
from .test_broker_faults import kafka_script, private_broker  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

MB = 1 << 20
BIG_PRODUCER = {"message.max.bytes": 64 * MB}


def stopped_on_error(logs: str) -> list[dict]:
    """The worker's JSON log lines saying a route stopped on an error."""
    lines = [orjson.loads(x) for x in logs.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("msg", "").startswith(("route stopped on error", "route stopped:"))]


def big_record(rec: dict, size: int) -> dict:
    """``rec`` with an unlisted (kept) field of ``size`` bytes of filler."""
    return {**rec, "attachment": "z" * size}


@pytest.fixture
def topics(kafka_bootstrap, topic_prefix, demo_keys, tmp_path):
    policy, t = policy_copy(tmp_path, topic_prefix)
    create_topics(kafka_bootstrap, [t.source], topic_config={"max.message.bytes": str(32 * MB)})
    create_topics(kafka_bootstrap, [t.sink])  # the broker's default limit, 1 MB
    create_topics(kafka_bootstrap, [t.dead_letter], topic_config={"max.message.bytes": str(10 * MB)})
    try:
        yield policy, t
    finally:
        delete_topics(kafka_bootstrap, t.all)
        delete_group(kafka_bootstrap, t.group)


def test_5_and_20_mb_records_are_dead_lettered_and_the_topic_goes_on(kafka_bootstrap, topics, demo_keys, tmp_path):
    policy, t = topics
    records = generated_records(3000)
    big = {1000: big_record(records[1000], 5 * MB), 2000: big_record(records[2000], 20 * MB)}
    source = [big.get(i, r) for i, r in enumerate(records)]
    produce(kafka_bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), [("trace", b"t-1")])
                                        for r in source], client=BIG_PRODUCER)
    with DppProcess(policy, kafka_bootstrap, tmp_path, name="dpp-big", create_topics=False) as dpp:
        dpp.wait_ready()
        m = drain(dpp, kafka_bootstrap, t, len(records), timeout_s=180)
        assert metric(m, "dpp_records_dead_lettered_total", reason="too-large") == 2
        assert metric(m, "dpp_records_dead_lettered_total") == 2
        dpp.assert_running()
        assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr()
    assert not stopped_on_error(logs), stopped_on_error(logs)
    committed = committed_offsets(kafka_bootstrap, t.group, t.source)
    assert committed == end_offsets(kafka_bootstrap, t.source)

    sink = read_topic(kafka_bootstrap, t.sink)
    expected = {r["record_id"] for i, r in enumerate(records)
                if i not in big and r["consent"]["analytics"] is not False}
    assert {orjson.loads(r.value)["record_id"] for r in sink} == expected
    assert metric(m, "dpp_records_produced_total") == len(expected)

    dead = read_topic(kafka_bootstrap, t.dead_letter)
    assert len(dead) == 2
    by_content = {d.header("dpp.dlq.content"): d for d in dead}
    assert set(by_content) == {"record-v1", "dropped"}
    for d in dead:
        assert d.header("dpp.reason") == "too-large" and d.header("dpp.stage") == "produce"
        for secret in personal_values(records[1000]) + personal_values(records[2000]):
            assert secret.encode() not in (d.value or b"") and all(secret.encode() not in v for _, v in d.headers)
    sealed, dropped = by_content["record-v1"], by_content["dropped"]
    assert 5 * MB < len(sealed.value) < 10 * MB and dropped.value == b""
    assert int(sealed.header("dpp.source.offset")) >= 0 and dropped.header("dpp.source.topic") == t.source

    # the stub's size and digest identify the 20 MB source record (for the holder of the key only)
    original = orjson.dumps(big[2000])
    packed = pack_record(big[2000]["record_id"].encode(), [("trace", b"t-1")], original)
    assert int(dropped.header("dpp.dropped.bytes")) == len(packed)
    mac = hmac.new(digest_key(bytes.fromhex(demo_keys["DPP_KEY_DEAD_LETTER"])), packed, hashlib.sha256).hexdigest()
    assert dropped.header("dpp.dropped.digest") == f"hmac-sha256:{mac}"

    # dpp dead-letter opens the sealed one (the original bytes) and reports the stub's payload as dropped
    for rec, want in ((sealed, "opened"), (dropped, "payload-dropped")):
        audit = tmp_path / f"audit-{want}.jsonl"
        res = run_dpp(["dead-letter", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap,
                       "--partition", str(rec.partition), "--offset", str(rec.offset), str(rec.offset),
                       "--reason", "test", "--actor", "tester", "--audit-file", str(audit)], timeout_s=120)
        assert res.returncode == 0, res.stderr
        line = json.loads(res.stdout)
        assert json.loads(audit.read_text())["result"] == want
        if want == "opened":
            assert orjson.loads(line["payload"]) == big[1000]
        else:
            assert line["payload"] is None and line["payload_dropped"]["bytes"] == len(packed)
            assert line["payload_dropped"]["digest"] == f"hmac-sha256:{mac}"


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_limit_lowered_while_running_dead_letters_the_record_the_broker_refuses(kafka_bootstrap, topics,
                                                                                tmp_path, guarantee):
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    policy, t = topics
    if guarantee == "exactly_once":
        policy.write_text(policy.read_text().replace(
            "    dead_letter_key:", "    processing_guarantee: exactly_once\n    dead_letter_key:", 1))
    records = generated_records(2000)
    first, second = records[:500], records[500:]
    produce(kafka_bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in first])
    with DppProcess(policy, kafka_bootstrap, tmp_path, name=f"dpp-lowered-{guarantee}", create_topics=False) as dpp:
        dpp.wait_ready()
        drain(dpp, kafka_bootstrap, t, len(first), timeout_s=120)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        res = ConfigResource(ResourceType.TOPIC, t.sink, incremental_configs=[
            ConfigEntry("max.message.bytes", str(200_000), incremental_operation=AlterConfigOpType.SET)])
        for fut in admin.incremental_alter_configs([res]).values():
            fut.result(timeout=30)
        time.sleep(1)
        payloads = [(r["record_id"].encode(), orjson.dumps(big_record(r, 500_000) if i == 700 else r), None)
                    for i, r in enumerate(second, start=len(first))]
        produce(kafka_bootstrap, t.source, payloads, client=BIG_PRODUCER)
        m = drain(dpp, kafka_bootstrap, t, len(records), timeout_s=180)
        assert metric(m, "dpp_records_dead_lettered_total", reason="too-large") == 1
        assert metric(m, "dpp_delivery_failures_total") >= 1
        assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr()
    assert "refused a record as too large" in logs or "transaction aborted" in logs
    isolation = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
    sink = read_topic(kafka_bootstrap, t.sink, isolation=isolation)
    ids = [orjson.loads(r.value)["record_id"] for r in sink]
    expected = {r["record_id"] for i, r in enumerate(records) if i != 700 and r["consent"]["analytics"] is not False}
    assert set(ids) == expected
    if guarantee == "exactly_once":
        assert len(ids) == len(expected)
    else:  # the batch was produced again: duplicates byte-identical
        seen: dict[str, bytes] = {}
        for r in sink:
            rid = orjson.loads(r.value)["record_id"]
            assert seen.setdefault(rid, r.value) == r.value
    dead = read_topic(kafka_bootstrap, t.dead_letter, isolation=isolation)
    assert {d.header("dpp.reason") for d in dead} == {"too-large"}
    assert len({(d.header("dpp.source.partition"), d.header("dpp.source.offset")) for d in dead}) == 1
    if guarantee == "exactly_once":
        assert len(dead) == 1


def test_a_worker_started_before_its_broker_waits_and_then_processes_everything(private_broker, topic_prefix,
                                                                               demo_keys, tmp_path):
    bootstrap = private_broker
    policy, t = policy_copy(tmp_path, topic_prefix)
    create_topics(bootstrap, t.all)
    records = generated_records(3000)
    produce(bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in records])
    kafka_script("stop")
    started = False
    try:
        with DppProcess(policy, bootstrap, tmp_path, name="dpp-early", create_topics=False) as dpp:
            dpp.wait_ready()
            time.sleep(5)
            dpp.assert_running()
            assert readyz(dpp.port)[0] == 503
            kafka_script("start")
            started = True
            m = drain(dpp, bootstrap, t, len(records), timeout_s=180)
            assert dpp.stop() == 0, dpp.stderr_tail()
            logs = dpp.stderr()
    finally:
        if not started:
            kafka_script("start")
    assert not stopped_on_error(logs), stopped_on_error(logs)
    sink = read_topic(bootstrap, t.sink)
    assert {orjson.loads(r.value)["record_id"] for r in sink} == \
        {r["record_id"] for r in records if r["consent"]["analytics"] is not False}
    assert metric(m, "dpp_records_consumed_total") >= len(records)
    wait_until(lambda: committed_offsets(bootstrap, t.group, t.source) == end_offsets(bootstrap, t.source), 30,
               "offsets committed to the end")
