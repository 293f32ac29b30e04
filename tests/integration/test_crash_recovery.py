"""Crash recovery: ``dpp run`` killed with SIGKILL part-way, restarted, loses nothing.

50,000 generated records plus 500 malformed ones go in; the worker is killed once it has counted
more than 15,000 consumed records and the sink has grown since (so records of the batch in flight
are produced but not committed); a new worker resumes from the committed offsets. Afterwards
(read back with kafka-python) every source offset is accounted for exactly as the source data
dictates (sink, dead-letter topic or a consent block), and every redelivered record, in the sink
or the dead-letter topic, is byte-identical to its first copy (value, key and headers):
at-least-once with deterministic output.
"""
from __future__ import annotations

import signal

import orjson
import pytest

from proxy.generator import malformed_payloads

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, EndOffsetWatcher, account_for, committed_offsets, drain,
                      end_offsets, generated_records, metric, produce, read_topic, route_setup, wait_until)  # noqa: F401 (route_setup is a fixture)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

N_RECORDS = 50_000
N_MALFORMED = 500
KILL_AFTER = 15_000


def test_sigkill_and_restart_loses_nothing(route_setup):
    rs = route_setup
    t = rs.topics
    records = generated_records(N_RECORDS)
    bad = malformed_payloads(N_MALFORMED, seed=7)
    messages = []
    gap = N_RECORDS // N_MALFORMED
    for i, rec in enumerate(records):
        messages.append((rec["record_id"].encode(), orjson.dumps(rec), [("trace-id", f"tr-{i}".encode())]))
        if i % gap == gap // 2:
            j = i // gap
            messages.append((f"malformed-{j}".encode(), bad[j], [("trace-id", f"bad-{j}".encode())]))
    total = len(messages)
    assert total == N_RECORDS + N_MALFORMED
    produce(rs.bootstrap, t.source, messages)
    blocked = {rec["record_id"].encode() for rec in records if rec["consent"]["analytics"] is False}
    malformed = {f"malformed-{j}".encode() for j in range(N_MALFORMED)}

    # First worker: SIGKILL part-way through.
    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, name="dpp-1") as first:
        first.wait_ready()
        sink_end = EndOffsetWatcher(rs.bootstrap, t.sink)
        try:
            seen = first.wait_metric("dpp_records_consumed_total", lambda v: v > KILL_AFTER, 180,
                                     f"more than {KILL_AFTER} records consumed")
            # The counter moves once per committed batch; wait for the next batch's first sink records.
            s0 = sink_end.total()
            wait_until(lambda: sink_end.total() > s0, 60, "the sink to grow after the last committed batch",
                       first.stderr_tail, interval_s=0.01)
            first.proc.send_signal(signal.SIGKILL)
        finally:
            sink_end.close()
        assert first.wait_exit(30) == -signal.SIGKILL
    committed = sum(committed_offsets(rs.bootstrap, t.group, t.source).values())
    sink_at_kill = sum(end_offsets(rs.bootstrap, t.sink).values())
    assert committed < total, f"the first worker finished ({committed} committed) before it was killed"
    assert committed >= seen, "records counted as consumed were not committed"

    # Second worker: resumes from the committed offsets and drains the topic.
    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, name="dpp-2") as second:
        second.wait_ready()
        m = drain(second, rs.bootstrap, t, total - committed, timeout_s=300)
        assert second.stop() == 0, second.stderr_tail()
    assert metric(m, "dpp_records_consumed_total") == total - committed, (
        "the restarted worker did not resume exactly at the committed offsets")

    source = read_topic(rs.bootstrap, t.source)
    sink = read_topic(rs.bootstrap, t.sink)
    dead = read_topic(rs.bootstrap, t.dead_letter)
    assert len(source) == total

    acc = account_for(source, sink, dead, blocked, malformed)
    acc.check()
    assert acc.in_sink + acc.dead_lettered + acc.blocked == total
    assert acc.dead_lettered == N_MALFORMED
    dup_sink, dup_dead = acc.sink_duplicates, acc.dead_duplicates
    print(f"\ncrash recovery: killed at consumed={seen:.0f} (committed {committed}, sink had {sink_at_kill}); "
          f"duplicates after restart: sink {dup_sink}, dead-letter {dup_dead}")
