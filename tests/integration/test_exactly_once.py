"""``processing_guarantee: exactly_once`` on the real broker: sink records, dead-letter records and
consumed offsets commit as one Kafka transaction per batch.

30,000 generated records and 300 malformed ones; the worker is killed with SIGKILL part-way
through a batch (records of the open transaction are already in the sink's log), then restarted
with the same instance id (which fences the dead incarnation and aborts its transaction). Read back
with kafka-python as a ``read_committed`` consumer: every source record is in the sink exactly
once, or in the dead-letter topic exactly once, or a counted consent block; no duplicates at all.
The same log read ``read_uncommitted`` holds the aborted copies, which shows the kill landed inside
a transaction.
"""
from __future__ import annotations

import signal

import orjson
import pytest

from proxy.generator import malformed_payloads

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, EndOffsetWatcher, create_topics, delete_group,
                      delete_topics, drain, generated_records, metric, policy_copy, produce, read_topic,
                      wait_until)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

N = 30_000
BAD = 300


@pytest.fixture
def eos_route(kafka_bootstrap, topic_prefix, demo_keys, tmp_path):
    policy, topics = policy_copy(tmp_path, topic_prefix)
    text = policy.read_text()
    text = text.replace("    dead_letter_key:", "    processing_guarantee: exactly_once\n    dead_letter_key:", 1)
    policy.write_text(text)
    create_topics(kafka_bootstrap, topics.all)
    try:
        yield policy, topics
    finally:
        delete_topics(kafka_bootstrap, topics.all)
        delete_group(kafka_bootstrap, topics.group)


def test_sigkill_mid_transaction_gives_no_duplicates_downstream(eos_route, kafka_bootstrap, tmp_path):
    policy, t = eos_route
    records = generated_records(N)
    bad = malformed_payloads(BAD, seed=3)
    msgs = [(r["record_id"].encode(), orjson.dumps(r), None) for r in records]
    msgs += [(f"malformed-{i}".encode(), b, None) for i, b in enumerate(bad)]
    produce(kafka_bootstrap, t.source, msgs)
    total = len(msgs)
    env_extra = ["--instance-id", "worker-a", "--batch-size", "5000"]
    with DppProcess(policy, kafka_bootstrap, tmp_path, name="dpp-eos-1", extra=env_extra) as first:
        first.wait_ready()
        sink_end = EndOffsetWatcher(kafka_bootstrap, t.sink)
        try:
            first.wait_metric("dpp_records_consumed_total", lambda v: v > N // 3, 180, "a third consumed")
            s0 = sink_end.total()
            wait_until(lambda: sink_end.total() > s0, 60, "records of the next (open) transaction in the log",
                       first.stderr_tail, interval_s=0.001)
            first.proc.send_signal(signal.SIGKILL)
        finally:
            sink_end.close()
        assert first.wait_exit(30) == -signal.SIGKILL
    with DppProcess(policy, kafka_bootstrap, tmp_path, name="dpp-eos-2", extra=env_extra) as second:
        second.wait_ready()
        m = drain(second, kafka_bootstrap, t, 1, timeout_s=300)  # wait for the lag to reach 0
        assert second.stop() == 0, second.stderr_tail()
        logs = second.stderr()
    committed_sink = read_topic(kafka_bootstrap, t.sink, isolation="read_committed")
    committed_dead = read_topic(kafka_bootstrap, t.dead_letter, isolation="read_committed")
    raw_sink = read_topic(kafka_bootstrap, t.sink)
    ids = [orjson.loads(r.value)["record_id"] for r in committed_sink]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates seen by a read_committed consumer"
    expected = {r["record_id"] for r in records if r["consent"]["analytics"] is not False}
    assert set(ids) == expected
    dead_src = [(dict(r.headers)["dpp.source.partition"], dict(r.headers)["dpp.source.offset"]) for r in committed_dead]
    assert len(committed_dead) == BAD and len(set(dead_src)) == BAD
    assert len(raw_sink) > len(committed_sink), "the kill did not land inside a transaction (nothing aborted)"
    assert metric(m, "dpp_records_consumed_total") > 0
    print(f"\nexactly-once: sink {len(ids)} committed, {len(raw_sink) - len(committed_sink)} aborted copies in the "
          f"log; dead-letter {len(committed_dead)}; total source {total}")
    assert "fenced" not in logs
