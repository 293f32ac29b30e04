"""Retention by event time (route ``retention:``): records older than ``max_age`` are blocked
(``retention-expired``), an unreadable event time is dead-lettered (``bad-event-time``), on the
reference path and on both batch paths (pure Python and the C accelerator) with the same outcomes
and counters; "now" is the route's injectable clock; a bad ``max_age`` fails at load."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policykit import KEYS, load_error_lines, policy_text, route_counters, routes_on_every_path, same_on_every_path
from proxy.policy.compiler import BLOCK, DEAD_LETTER, SINK, Outcome, compile_policy, event_time
from proxy.policy.loader import load_policy_text
from proxy.policy.models import duration_seconds

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
DAY = 86400


def _text(max_age: str = "30d", field: str = "created_at", epoch: str = "") -> str:
    ep = f", epoch: {epoch}" if epoch else ""
    return policy_text(["{field: name, action: mask, keep_first: 1}", "{field: email, action: pseudonymize, key: k}"],
                       block=["{when: {field: consent, equals: false}, reason: consent-withdrawn}"],
                       route=f"    retention: {{field: {field}, max_age: {max_age}{ep}}}\n")


def _routes(text: str, monkeypatch) -> list:
    """The reference route, then the batch paths this build has, each with the clock at NOW."""
    return routes_on_every_path(text, monkeypatch, "ret.yaml", lambda r: setattr(r, "clock", lambda: NOW))


def _run(text, values, monkeypatch) -> list:
    return same_on_every_path(_routes(text, monkeypatch), values)


def iso(seconds_before_now: float, offset: str = "Z") -> str:
    t = datetime.fromtimestamp(NOW - seconds_before_now, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + offset


# (event time, epoch option, expected): sink, block (retention-expired) or dead (bad-event-time)
CASES = [
    (iso(DAY), "", "sink"),
    (iso(29 * DAY), "", "sink"),
    (iso(30 * DAY), "", "sink"),                        # exactly max_age: passes
    (iso(30 * DAY + 1), "", "block"),
    (iso(400 * DAY), "", "block"),
    (iso(-10 * DAY), "", "sink"),                       # in the future: passes
    ("2026-05-02T20:00:00+08:00", "", "sink"),          # = 2026-05-02T12:00Z: exactly 30 d
    ("2026-05-02T19:59:59+08:00", "", "block"),         # the offset counts
    ("2026-05-02T12:00:00+08:00", "", "block"),         # = 04:00Z, 30 d 8 h ago
    ("2026-05-01T12:00:00.250+00:00", "", "block"),
    ("2026-05-02T12:00:00-00:30", "", "sink"),
    ("2026-05-02T12:00:00", "", "dead"),                # no offset: not a point in time
    ("2026-05-20", "", "dead"),                         # a date alone
    ("yesterday", "", "dead"),
    ("", "", "dead"),
    ("２０２６-05-20T00:00:00Z", "", "dead"),           # full-width digits
    (NOW - DAY, "", "sink"),                            # epoch seconds (float)
    (int(NOW - 31 * DAY), "", "block"),                 # epoch seconds (int)
    (int((NOW - DAY) * 1000), "", "sink"),              # epoch milliseconds (auto)
    (int((NOW - 31 * DAY) * 1000), "", "block"),
    (int(NOW - DAY), "milliseconds", "block"),          # read as ms: January 1970
    (int((NOW - DAY) * 1000), "seconds", "sink"),       # read as s: far in the future
    (0, "", "block"),
    (-1, "", "block"),
    (10**30, "", "sink"),                               # far future in ms
    (-(10**30), "", "block"),
    (True, "", "dead"),
    (None, "", "dead"),
    ({"at": iso(DAY)}, "", "dead"),
    ([iso(DAY)], "", "dead"),
    ("<absent>", "", "dead"),
]


@pytest.mark.parametrize("ts, epoch, expected", CASES, ids=[f"{i}-{c[2]}" for i, c in enumerate(CASES)])
def test_event_time_outcomes_on_every_path(ts, epoch, expected, monkeypatch):
    rec = {"name": "Alice", "email": "a@example.com"}
    if ts != "<absent>":
        rec["created_at"] = ts
    big = type(ts) is int and abs(ts) >= 1 << 63  # beyond 64 bits: parsed exactly (proxy.formats.json)
    (out,) = _run(_text(epoch=epoch), [b'{"name":"Alice","created_at":' + str(ts).encode() + b"}" if big
                                       else orjson.dumps(rec)], monkeypatch)
    if expected == "sink":
        assert out.kind == SINK and orjson.loads(out.value)["name"] == "A****"
    elif expected == "block":
        assert (out.kind, out.reason) == (BLOCK, "retention-expired")
    else:
        assert (out.kind, out.reason, out.stage, out.rule) == (DEAD_LETTER, "bad-event-time", "block", "retention")


def test_block_conditions_come_first_then_retention(monkeypatch):
    values = [orjson.dumps(r) for r in (
        {"consent": False, "created_at": "garbage"},          # withheld by the consent block
        {"consent": True, "created_at": iso(40 * DAY)},
        {"consent": True, "created_at": iso(DAY), "name": "Bob"},
        {"consent": True, "name": "no-time"},
    )] + [None, b"{", b"[]"]
    outs = _run(_text(), values, monkeypatch)
    assert [(o.kind, o.reason) for o in outs] == [
        (BLOCK, "consent-withdrawn"), (BLOCK, "retention-expired"), (SINK, ""), (DEAD_LETTER, "bad-event-time"),
        (SINK, ""), (DEAD_LETTER, "invalid-json"), (DEAD_LETTER, "not-an-object")]


@pytest.mark.parametrize("field, record, expected", [
    ("meta.ts", {"meta": {"ts": iso(DAY)}}, SINK),
    ("meta.ts", {"meta": {"ts": iso(90 * DAY)}}, BLOCK),
    ("meta.ts", {"meta": "2026-01-01T00:00:00Z"}, DEAD_LETTER),   # a string where an object is needed
    ("meta.ts", {"meta": None}, DEAD_LETTER),
    ("'\"meta.ts\"'", {"meta.ts": iso(DAY)}, SINK),
    ("'events[0].at'", {"events": [{"at": iso(DAY)}, {"at": "x"}]}, SINK),
    ("'events[*].at'", {"events": [{"at": iso(DAY)}, {"at": iso(DAY)}]}, DEAD_LETTER),  # several: ambiguous
    ("'events[*].at'", {"events": [{"at": iso(DAY)}]}, SINK),
])
def test_event_time_paths(field, record, expected, monkeypatch):
    (out,) = _run(_text(field=field), [orjson.dumps(record)], monkeypatch)
    assert out.kind == expected


def test_the_clock_decides_and_a_redelivery_may_expire(monkeypatch):
    value = orjson.dumps({"name": "Carol", "created_at": iso(29 * DAY)})
    for r in _routes(_text(), monkeypatch):
        assert r.process_batch([value])[0].kind == SINK
        r.clock = lambda: NOW + 2 * DAY  # the same record, redelivered two days later
        assert r.process_batch([value])[0] == Outcome(BLOCK, reason="retention-expired")
        assert r.process(value).kind == BLOCK


@pytest.mark.parametrize("max_age, seconds", [("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000),
                                              ("365d", 31536000), ("1s", 1)])
def test_durations(max_age, seconds):
    assert duration_seconds(max_age) == seconds


@pytest.mark.parametrize("max_age", ["0d", "30", "d", "30w", "-1d", "1.5d", "30 d", "3d12h", "０d", "01d",
                                     "99999999999d", "''", "30D"])
def test_bad_max_age_fails_at_load_with_file_line_path(max_age):
    lines = load_error_lines(_text(max_age=max_age), "ret.yaml")
    assert len(lines) == 1 and lines[0].startswith("ret.yaml:13: routes[0].retention.max_age: "), lines


@settings(max_examples=200, deadline=None)
@given(offset_s=st.integers(-400 * DAY, 400 * DAY), tz_min=st.integers(-14 * 60, 14 * 60),
       form=st.sampled_from(["iso", "s", "ms", "float"]))
def test_event_time_reads_every_form_alike(offset_s, tz_min, form):
    from datetime import timedelta
    t = NOW + offset_s
    if form == "iso":
        tz = timezone(timedelta(minutes=tz_min))
        v = datetime.fromtimestamp(t, tz=tz).isoformat()
    elif form == "s":
        v = int(t)
    elif form == "ms":
        v = int(t) * 1000
    else:
        v = float(int(t))
    assert event_time(v) == pytest.approx(int(t), abs=1e-3)


def test_retention_outcomes_reach_the_metrics(monkeypatch):
    from proxy.metrics import Metrics
    (ref, *_) = _routes(_text(), monkeypatch)
    m = Metrics()
    cp = compile_policy(load_policy_text(_text(), "ret.yaml"), environ=KEYS)
    m.register_policy(cp)
    assert m.registry.get_sample_value("dpp_records_blocked_total", {"route": "r", "reason": "retention-expired"}) == 0
    ref.process_batch([orjson.dumps({"created_at": 0}), orjson.dumps({"created_at": "x"})])
    m.publish(ref, ref.stats.drain())
    assert m.registry.get_sample_value("dpp_records_blocked_total", {"route": "r", "reason": "retention-expired"}) == 1
    assert m.registry.get_sample_value("dpp_records_dead_lettered_total", {"route": "r", "reason": "bad-event-time"}) == 1


# ------------------------------------------------------------------ source: record_timestamp
TS_POLICY = policy_text(["{field: name, action: mask, keep_first: 1}"],
                        route="    retention: {source: record_timestamp, max_age: 12h}\n")
MS = 1000


@pytest.mark.parametrize("ts, expected", [
    (int(NOW * MS), SINK),
    (int((NOW - 11 * 3600) * MS), SINK),
    (int((NOW - 12 * 3600) * MS), SINK),                # exactly max_age
    (int((NOW - 12 * 3600) * MS) - 1, BLOCK),
    (0, BLOCK),
    (int((NOW + DAY) * MS), SINK),
    (None, DEAD_LETTER),                                # no timestamp (dpp apply, a record without one)
    (-1, DEAD_LETTER),                                  # librdkafka's "none"
])
def test_the_kafka_record_timestamp_on_every_path(ts, expected, monkeypatch):
    value = orjson.dumps({"name": "Dora", "created_at": "not read"})
    ref, *batch = _routes(TS_POLICY, monkeypatch)
    want = ref.process(value, ts)
    want_counts = route_counters(ref)
    assert want.kind == expected and (expected != DEAD_LETTER or want.reason == "bad-event-time")
    for r in [ref] + batch:
        assert r.process_batch([value, value], [ts, ts]) == [want, want], r.record_path
        counts = route_counters(r)
        assert counts[:2] == (2 * want_counts[0], 2 * want_counts[1]), r.record_path
        assert r.process_record(value, b"k", None, ts).kind == expected
        res, _, _ = r.protect_records([value], [b"k"], [None], [ts])
        assert (Outcome(SINK, res[0]) if type(res[0]) is bytes else res[0]) == want
        r.stats.drain()


def test_record_timestamps_are_per_record_in_a_batch(monkeypatch):
    value = orjson.dumps({"name": "Eve"})
    stamps = [int(NOW * MS), 0, None, int((NOW - 3600) * MS), int((NOW - DAY) * MS)]
    ref, *batch = _routes(TS_POLICY, monkeypatch)
    want = [ref.process(value, t) for t in stamps]
    assert [o.kind for o in want] == [SINK, BLOCK, DEAD_LETTER, SINK, BLOCK]
    want_counts = route_counters(ref)
    for r in [ref] + batch:
        assert r.process_batch([value] * len(stamps), stamps) == want
        assert route_counters(r) == want_counts


@pytest.mark.parametrize("retention", ["{source: record_timestamp, field: created_at, max_age: 1d}",
                                       "{source: field, max_age: 1d}", "{max_age: 1d}",
                                       "{source: kafka, max_age: 1d}"])
def test_the_source_and_field_must_fit(retention):
    lines = load_error_lines(policy_text(["{field: a, action: mask}"], route=f"    retention: {retention}\n"), "ret.yaml")
    assert len(lines) == 1 and lines[0].startswith("ret.yaml:13: routes[0].retention"), lines
