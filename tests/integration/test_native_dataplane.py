"""The native data plane (``proxy._dataplane``) on the real broker: benchmark row (a')'s
pass-through copies records byte-identically (key, value, headers, partition) and commits every
offset, read back with kafka-python (a client independent of librdkafka)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from proxy.stream import native

from .helpers import (native_built,  # noqa: F401 (fixture)
                      KAFKA_PYTHON_WARNINGS, ROOT, committed_offsets, create_topics, delete_topics, end_offsets,
                      produce, read_topic, wait_until)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

COUNT = 10_000


def records(n: int) -> list[tuple]:
    """Keyed records of varied shape: empty and binary values, a null value (tombstone), no / one
    / repeated headers, a header with a null value."""
    out = []
    for i in range(n):
        key = f"customer-{i % 997}".encode()
        value = None if i % 1000 == 7 else b"" if i % 1000 == 8 else bytes([i % 256, 0, 255]) + os.urandom(i % 600)
        headers = [] if i % 3 == 0 else [("trace", f"t{i}".encode())] if i % 3 == 1 else \
            [("a", b"1"), ("a", b"2"), ("nul", None)]
        out.append((key, value, headers))
    return out


def shape(recs) -> list[tuple]:
    return sorted(((r.key, r.value, r.headers, r.partition) for r in recs), key=repr)


def test_native_pass_through_copies_every_record_and_commits_every_offset(native_built, kafka_bootstrap, topic_prefix):
    src, sink, group = f"{topic_prefix}.src", f"{topic_prefix}.sink", f"{topic_prefix}.native"
    create_topics(kafka_bootstrap, [src, sink])
    try:
        produce(kafka_bootstrap, src, records(COUNT))
        n = native.run(kafka_bootstrap, src, sink, group, batch_size=1000, max_records=COUNT)
        assert n == COUNT
        source, copied = read_topic(kafka_bootstrap, src), read_topic(kafka_bootstrap, sink)
        assert len(copied) == COUNT
        assert shape(copied) == shape(source)  # key, value, headers (order, repeats, nulls), partition
        for p in range(3):  # order within a partition is kept
            assert [r.value for r in copied if r.partition == p] == [r.value for r in source if r.partition == p]
        assert committed_offsets(kafka_bootstrap, group, src) == end_offsets(kafka_bootstrap, src)
    finally:
        delete_topics(kafka_bootstrap, [src, sink])


def test_sigterm_ends_the_loop_between_batches_with_the_offsets_committed(native_built, kafka_bootstrap, topic_prefix):
    """The benchmark's process (``loadtests.native_passthrough``) is stopped by SIGTERM: it
    exits 0 and nothing it copied is left uncommitted (the group's offsets equal the sink's
    count; a re-delivery would duplicate, a gap would lose)."""
    src, sink, group = f"{topic_prefix}.src", f"{topic_prefix}.sink", f"{topic_prefix}.native"
    create_topics(kafka_bootstrap, [src, sink])
    try:
        produce(kafka_bootstrap, src, records(2000))
        proc = subprocess.Popen([sys.executable, "-m", "loadtests.native_passthrough", "--bootstrap", kafka_bootstrap,
                                 "--source", src, "--sink", sink, "--group", group], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            wait_until(lambda: sum(end_offsets(kafka_bootstrap, sink).values()) >= 2000, 60, "the sink to hold 2000",
                       lambda: "".join(lines)[-2000:])
        finally:
            proc.terminate()
            rc = proc.wait(30)
        reader.join(10)
        assert rc == 0, "".join(lines)
        assert any("partitions assigned" in x for x in lines)
        assert committed_offsets(kafka_bootstrap, group, src) == end_offsets(kafka_bootstrap, src)
        assert sum(end_offsets(kafka_bootstrap, sink).values()) == 2000
    finally:
        delete_topics(kafka_bootstrap, [src, sink])


def test_a_new_plan_is_taken_after_a_delivered_batch_and_refused_before(native_built, kafka_bootstrap, topic_prefix):
    """A hot reload swaps the plan at the top of the worker's loop, after the last batch was
    produced and acknowledged (commit_batch) but before the next step: allowed. Mid-batch (records
    consumed, not yet produced) it would mix two policies in one batch: refused. (A CI run stopped
    a route here: set_plan refused any swap after a delivered batch until the next step.)"""
    src, sink = f"{topic_prefix}.swap.src", f"{topic_prefix}.swap.sink"
    create_topics(kafka_bootstrap, {src: 1, sink: 1})
    try:
        produce(kafka_bootstrap, src, [(f"k{i}".encode(), b'{"a":1}', []) for i in range(20)])
        pl = native.plane({"bootstrap.servers": kafka_bootstrap, "group.id": f"{topic_prefix}.swap",
                           "auto.offset.reset": "earliest"}, {"bootstrap.servers": kafka_bootstrap}, src, sink)
        pl.subscribe()
        handed = []
        for _ in range(60):
            n, handed, _errors = pl.step(100, 0.5, 0.005, 1 << 20)
            if n:
                break
        assert handed, "no batch consumed"
        with pytest.raises(RuntimeError, match="between batches"):
            pl.set_plan(None)
        for h in handed:
            pl.set_result(h[0], [(sink, h[3], h[4], h[5] or [])])
        failed, _code, _refused = pl.commit_batch([])
        assert failed == 0
        pl.set_plan(None)  # after a delivered batch: taken
        pl.close()
        assert len(read_topic(kafka_bootstrap, sink, len(handed))) == len(handed)
    finally:
        delete_topics(kafka_bootstrap, [src, sink])
