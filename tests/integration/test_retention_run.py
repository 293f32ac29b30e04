"""Retention on the real broker: ``dpp run`` with ``retention: {source: record_timestamp, max_age:
1d}`` blocks (and counts) records whose Kafka timestamp is older than a day, passes the others, and
``retention: {field: created_at, ...}`` dead-letters a record with an unparseable event time; read
back with kafka-python."""
from __future__ import annotations

import re
import time

import orjson
import pytest
from confluent_kafka import Producer

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, drain, generated_records, metric, read_topic,
                      route_setup)  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

ROUTE = "crm-to-analytics"


def _with_retention(policy, retention: str) -> None:
    text = policy.read_text()
    text, n = re.subn(r"^(\s+)(consumer_group: .*)$", lambda m: f"{m.group(1)}{m.group(2)}\n{m.group(1)}retention: {retention}",
                      text, count=1, flags=re.M)
    assert n == 1
    policy.write_text(text)


def _produce(bootstrap, topic, items) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errs = []
    for key, value, ts in items:
        p.produce(topic, value, key, timestamp=ts, on_delivery=lambda e, m: errs.append(e) if e else None)
    assert p.flush(60) == 0 and not errs


@pytest.mark.parametrize("mode", ["record_timestamp", "field"])
def test_old_records_are_blocked_and_unreadable_times_dead_lettered(route_setup, mode):
    rs = route_setup
    t = rs.topics
    now_ms = int(time.time() * 1000)
    records = [r for r in generated_records(400) if r["consent"]["analytics"] is not False][:300]
    old = {r["record_id"] for r in records[::3]}
    items = []
    for r in records:
        age_ms = 3 * 86400_000 if r["record_id"] in old else 60_000
        if mode == "field":
            r = dict(r, created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now_ms - age_ms) / 1000)))
        items.append((r["record_id"].encode(), orjson.dumps(r), now_ms - age_ms))
    bad = b'{"customer_id":"C1","created_at":"last tuesday","consent":{"analytics":true}}'
    if mode == "field":
        items.append((b"bad-time", bad, now_ms))
    _with_retention(rs.policy, "{source: record_timestamp, max_age: 1d}" if mode == "record_timestamp"
                    else "{field: created_at, max_age: 1d}")
    _produce(rs.bootstrap, t.source, items)
    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, name=f"dpp-ret-{mode}") as dpp:
        dpp.wait_ready()
        samples = drain(dpp, rs.bootstrap, t, len(items), timeout_s=120)
        assert dpp.stop() == 0, dpp.stderr_tail()
    assert metric(samples, "dpp_records_blocked_total", route=ROUTE, reason="retention-expired") == len(old)
    sink = read_topic(rs.bootstrap, t.sink)
    assert {r.key.decode() for r in sink} == {r["record_id"] for r in records} - old
    dead = read_topic(rs.bootstrap, t.dead_letter, timeout_s=30)
    if mode == "field":
        assert metric(samples, "dpp_records_dead_lettered_total", route=ROUTE, reason="bad-event-time") == 1
        assert [dict(d.headers)["dpp.reason"] for d in dead] == [b"bad-event-time"]
    else:
        assert not dead
