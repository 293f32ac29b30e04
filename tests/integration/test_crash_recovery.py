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

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, EndOffsetWatcher, committed_offsets, drain,
                      end_offsets, generated_records, group_dead_by_source, group_sink_by_key, metric, produce,
                      read_topic, route_setup, wait_until)  # noqa: F401 (route_setup is a fixture)

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

    by_key = group_sink_by_key(sink)
    by_src = group_dead_by_source(dead)
    dup_sink = dup_dead = 0
    for key, copies in by_key.items():
        first_copy = copies[0]
        for c in copies[1:]:
            assert (c.value, c.headers) == (first_copy.value, first_copy.headers), (
                f"sink copies of {key!r} differ (value or headers)")
        dup_sink += len(copies) - 1
    for where, copies in by_src.items():
        first_copy = copies[0]
        for c in copies[1:]:
            assert (c.key, c.value, c.headers) == (first_copy.key, first_copy.value, first_copy.headers), (
                f"dead-letter copies of source offset {where} differ")
        dup_dead += len(copies) - 1

    missing, misplaced = [], []
    for r in source:
        in_sink, in_dead = r.key in by_key, (r.partition, r.offset) in by_src
        if r.key in blocked:
            ok = not in_sink and not in_dead
        elif r.key in malformed:
            ok = in_dead and not in_sink and by_src[(r.partition, r.offset)][0].key == r.key
        else:
            ok = in_sink and not in_dead
        if not ok:
            (missing if not (in_sink or in_dead) else misplaced).append((r.partition, r.offset))
    assert not missing and not misplaced, (
        f"{len(missing)} source offsets missing (first {missing[:5]}), "
        f"{len(misplaced)} in the wrong place (first {misplaced[:5]})")
    assert set(by_key) <= {r.key for r in source}, "the sink holds records that are not from the source"
    assert len(by_key) + len(by_src) + len(blocked) == total
    print(f"\ncrash recovery: killed at consumed={seen:.0f} (committed {committed}, sink had {sink_at_kill}); "
          f"duplicates after restart: sink {dup_sink}, dead-letter {dup_dead}")
