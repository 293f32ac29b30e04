"""``dpp run`` with the native data plane (``--data-plane native``, ``proxy._dataplane.Plane``) on
the real broker, side by side with the Python worker (``--data-plane python``) on the same input:
benchmark (b)'s policy over 10,000 records plus records that must be dead-lettered (invalid JSON,
a value the rules fail, a tombstone). Read back with kafka-python.

Whatever the plane does natively (with a ``JsonPlan`` once the compiler builds one: every record
is handed back to the Python batch path without one), the sink must hold the same bytes in the
same order per partition, the dead-letter topic the same records (sealed: compared by their
clear metadata headers), the counters must be equal, and every offset committed."""
from __future__ import annotations

import orjson
import pytest


from .helpers import (native_built,  # noqa: F401 (fixture)
                      KAFKA_PYTHON_WARNINGS, ROOT, DppProcess, committed_offsets, create_topics, delete_group,
                      delete_topics, end_offsets, generated_records, policy_copy, produce, read_topic, wait_until)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

POLICY_B = ROOT / "loadtests" / "policies" / "b-no-fpe.yaml"
COUNT = 10_000
BAD = [b"{bad json", b'{"customer_id": {"not": "a string"}}', None]
COUNTERS = ("dpp_records_consumed_total", "dpp_records_produced_total", "dpp_records_blocked_total",
            "dpp_records_dead_lettered_total", "dpp_field_transforms_total", "dpp_rule_unmatched_total")
DEAD_LETTER_META = ("dpp.source.partition", "dpp.source.offset", "dpp.reason", "dpp.stage", "dpp.rule",
                    "dpp.error.class")


def _inputs() -> list[tuple]:
    out = []
    for i, rec in enumerate(generated_records(COUNT)):
        key = str(rec.get("customer_id", i)).encode()
        out.append((key, orjson.dumps(rec), [("trace", f"t{i}".encode())] if i % 2 else None))
        if i % 2500 == 1234:
            out.extend((f"bad-{i}-{j}".encode(), v, None) for j, v in enumerate(BAD))
    return out


def _run(kafka_bootstrap, tmp_path, prefix, plane, records):
    """Run ``dpp run --data-plane plane`` on a fresh copy of (b) until every record is consumed;
    returns (sink, dead letters, counters, committed == end offsets, route started line)."""
    d = tmp_path / plane
    d.mkdir()
    policy, topics = policy_copy(d, prefix, POLICY_B)
    create_topics(kafka_bootstrap, topics.all)
    try:
        produce(kafka_bootstrap, topics.source, records)
        with DppProcess(policy, kafka_bootstrap, d, extra=["--data-plane", plane]) as dpp:
            dpp.wait_ready()
            dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= len(records), 120,
                            f"{plane}: every record consumed")
            ends = end_offsets(kafka_bootstrap, topics.source)
            wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source) == ends, 60,
                       f"{plane}: every offset committed")
            samples = dpp.scrape()
            counters = sorted((name, tuple(sorted(lab.items())), v) for name in COUNTERS
                              for lab, v in samples.get(name, []))
            started = [orjson.loads(l) for l in dpp.stderr().splitlines() if '"route started"' in l]
            assert dpp.stop() == 0, dpp.stderr_tail()
        sink = read_topic(kafka_bootstrap, topics.sink)
        dead = read_topic(kafka_bootstrap, topics.dead_letter)
        return sink, dead, counters, started
    finally:
        delete_topics(kafka_bootstrap, topics.all)
        delete_group(kafka_bootstrap, topics.group)


def test_native_plane_gives_the_python_workers_bytes_counters_and_commits(native_built, kafka_bootstrap, topic_prefix,
                                                                         demo_keys, tmp_path):
    records = _inputs()
    py_sink, py_dead, py_counters, py_started = _run(kafka_bootstrap, tmp_path, topic_prefix + "p", "python", records)
    nt_sink, nt_dead, nt_counters, nt_started = _run(kafka_bootstrap, tmp_path, topic_prefix + "n", "native", records)
    assert [s["data_plane"] for s in py_started] == ["python"]
    assert [s["data_plane"] for s in nt_started] == ["native"]

    def by_key(recs):  # a sink partition interleaves source partitions by batch: the order per key is the contract
        return sorted(((r.partition, r.key, r.value, tuple(h for h in r.headers if h[0] != "dpp-policy"))
                       for r in recs), key=lambda t: (t[0], t[1]))
    assert len(nt_sink) == len(py_sink) > COUNT // 2
    assert by_key(nt_sink) == by_key(py_sink)  # same bytes, same partition, same order per key
    assert all(dict(r.headers).get("dpp-policy") for r in nt_sink)

    def meta(recs):
        return sorted(tuple(dict(r.headers).get(h) for h in DEAD_LETTER_META) + (r.key,) for r in recs)
    assert len(py_dead) == 2 * len([r for r in records if r[0].startswith(b"bad-")]) // 3
    assert meta(nt_dead) == meta(py_dead)
    assert all(b"not" not in (r.value or b"") for r in nt_dead)  # sealed, never in clear
    assert nt_counters == py_counters
    consumed = [v for n, _, v in nt_counters if n == "dpp_records_consumed_total"]
    assert consumed == [len(records)]
