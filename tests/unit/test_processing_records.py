"""proxy.stream.processingrecords: documents built from the stats the metrics get (same totals,
deltas per window, nothing lost when a window is not acknowledged, a reload splits by revision)."""
from __future__ import annotations

import itertools

import orjson
import pytest

from proxy.metrics import Metrics
from proxy.policy.compiler import RouteStats, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.stream.processingrecords import ProcessingRecorder, Window

POLICY = """version: 1
name: unit-records
revision: {rev}
keys:
  k: {{source: env, name: K}}
routes:
  - name: people
    purpose: analytics
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: k
    block:
      - when: {{field: consent, equals: false}}
        reason: consent-withdrawn
    rules:
      - {{field: name, action: mask, keep_first: 1}}
      - {{field: card, action: fpe, key: k, name: card-fpe}}
      - {{field: email, action: pseudonymize, key: k}}
"""
KEY = {"K": "5a" * 32}


def compiled(rev: str = "rev-1"):
    return compile_policy(load_policy_text(POLICY.format(rev=rev), "r.yaml"), environ=KEY)


def stats(consumed, produced, blocked=None, dead=None, transforms=(0, 0, 0)) -> RouteStats:
    return RouteStats(consumed=consumed, produced=produced, blocked=dict(blocked or {}),
                      dead_lettered=dict(dead or {}), transforms=list(transforms), unmatched=[0, 0, 0],
                      latency_buckets=[], latency_sum=0.0)


def clock():
    ticks = itertools.count()
    return lambda: f"2026-12-07T10:00:{next(ticks):02d}.000+00:00"


def metric(m: Metrics, name: str, **labels) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("batches, consumed, produced, blocked, dead, transforms", [
    ([], 0, 0, {}, {}, []),
    ([(10, 7, {"consent-withdrawn": 2}, {"invalid-json": 1}, (7, 7, 6))], 10, 7, {"consent-withdrawn": 2},
     {"invalid-json": 1}, [("name", "mask", 7), ("card-fpe", "fpe", 7), ("email", "pseudonymize", 6)]),
    ([(5, 5, {}, {}, (5, 0, 0)), (4, 1, {"consent-withdrawn": 3}, {}, (1, 0, 1))], 9, 6, {"consent-withdrawn": 3}, {},
     [("name", "mask", 6), ("email", "pseudonymize", 1)]),
])
def test_window_document_sums_the_batches(batches, consumed, produced, blocked, dead, transforms):
    cp = compiled()
    route = cp.route()
    w = Window(start="2026-12-07T10:00:00.000+00:00", route=route, policy=cp)
    for c, p, b, d, t in batches:
        w.add_stats(stats(c, p, b, d, t))
    doc = w.document("2026-12-07T10:01:00.000+00:00", "host:1")
    assert doc["type"] == "processing" and doc["route"] == "people" and doc["purpose"] == "analytics"
    assert doc["window"] == {"start": "2026-12-07T10:00:00.000+00:00", "end": "2026-12-07T10:01:00.000+00:00"}
    assert doc["policy"]["name"] == "unit-records" and doc["policy"]["provenance"] == "unit-records@rev-1"
    assert doc["keys"] == {"k": 1}
    assert doc["records"] == {"consumed": consumed, "produced": produced, "blocked": blocked, "dead_lettered": dead}
    assert sorted((t["rule"], t["action"], t["count"]) for t in doc["transforms"]) == sorted(transforms)
    assert "5a5a" not in orjson.dumps(doc).decode()  # key names and versions, never material


def test_produced_override_counts_what_the_broker_acknowledged():
    cp = compiled()
    w = Window(start="t0", route=cp.route(), policy=cp)
    w.add_stats(stats(10, 10), produced=8)
    assert w.document("t1", "w")["records"]["produced"] == 8


def test_windows_are_deltas_and_sum_to_the_metrics():
    cp = compiled()
    route = cp.route()
    sent: list[dict] = []
    rec = ProcessingRecorder(cp, send=lambda docs: sent.extend(docs) or True, clock=clock(), worker="w1")
    m = Metrics()
    m.register_policy(cp)
    m.listeners.append(rec.on_publish)
    batches = [stats(10, 8, {"consent-withdrawn": 1}, {"invalid-json": 1}, (8, 8, 8)),
               stats(3, 3, {}, {}, (3, 0, 3)), stats(7, 0, {"consent-withdrawn": 7}, {}, (0, 0, 0))]
    m.publish(route, batches[0])
    rec.flush()
    m.publish(route, batches[1])
    m.publish(route, batches[2])
    rec.flush()
    rec.flush(final=True)  # an idle window: zero counts, still one document per route
    assert [d["records"]["consumed"] for d in sent] == [10, 10, 0]
    assert [d["final"] for d in sent] == [False, False, True]
    assert sent[0]["window"]["end"] == sent[1]["window"]["start"]  # windows follow each other
    totals = {"consumed": 0, "produced": 0, "blocked": 0, "dead": 0}
    for d in sent:
        r = d["records"]
        totals["consumed"] += r["consumed"]
        totals["produced"] += r["produced"]
        totals["blocked"] += sum(r["blocked"].values())
        totals["dead"] += sum(r["dead_lettered"].values())
    assert totals["consumed"] == metric(m, "dpp_records_consumed_total", route="people") == 20
    assert totals["produced"] == metric(m, "dpp_records_produced_total", route="people") == 11
    assert totals["blocked"] == metric(m, "dpp_records_blocked_total", route="people", reason="consent-withdrawn") == 8
    assert totals["dead"] == metric(m, "dpp_records_dead_lettered_total", route="people", reason="invalid-json") == 1
    by_rule = {}
    for d in sent:
        for t in d["transforms"]:
            by_rule[t["rule"]] = by_rule.get(t["rule"], 0) + t["count"]
    for label, action in zip(route.rule_labels, route.rule_actions):
        assert by_rule.get(label, 0) == metric(m, "dpp_field_transforms_total", route="people", rule=label, action=action)


def test_a_window_not_acknowledged_is_carried_into_the_next():
    cp = compiled()
    route = cp.route()
    answers = iter([False, True])
    sent: list[dict] = []

    def send(docs):
        ok = next(answers)
        if ok:
            sent.extend(docs)
        return ok
    rec = ProcessingRecorder(cp, send=send, clock=clock(), worker="w1")
    rec.on_publish(route, stats(5, 5))
    assert rec.flush() is False
    rec.on_publish(route, stats(2, 1, {"consent-withdrawn": 1}))
    assert rec.flush() is True
    (doc,) = sent
    assert doc["records"]["consumed"] == 7 and doc["records"]["produced"] == 6
    assert doc["window"]["start"] == "2026-12-07T10:00:00.000+00:00"  # the lost window's start stays


def test_send_raising_keeps_the_counts():
    cp = compiled()
    rec = ProcessingRecorder(cp, send=lambda docs: 1 / 0, clock=clock(), worker="w1")
    rec.on_publish(cp.route(), stats(4, 4))
    assert rec.flush() is False
    sent: list[dict] = []
    rec._send = lambda docs: sent.extend(docs) or True
    assert rec.close() is True
    assert sent[0]["records"]["consumed"] == 4 and sent[0]["final"] is True


def test_a_reload_splits_the_window_by_revision():
    old, new = compiled("rev-1"), compiled("rev-2")
    sent: list[dict] = []
    rec = ProcessingRecorder(old, send=lambda docs: sent.extend(docs) or True, clock=clock(), worker="w1")
    rec.on_publish(old.route(), stats(3, 3))
    rec.set_policy(new)
    rec.on_publish(old.route(), stats(1, 1))   # a batch in flight under the old revision
    rec.on_publish(new.route(), stats(5, 5))
    rec.flush()
    got = {d["policy"]["revision"]: d["records"]["consumed"] for d in sent}
    assert got == {"rev-1": 4, "rev-2": 5}
    sent.clear()
    rec.flush()
    assert [d["policy"]["revision"] for d in sent] == ["rev-2"]  # later windows: the policy in force


@pytest.mark.parametrize("text, seconds", [("60s", 60.0), ("1m", 60.0), ("500ms", 0.5), ("1.5", 1.5), ("2h", 7200.0),
                                           (" 1S ", 1.0)])
def test_processing_record_interval_durations(text, seconds):
    from proxy.cli import _duration_s
    assert _duration_s(text, "--processing-record-interval") == seconds


@pytest.mark.parametrize("text", ["", "0s", "-1s", "soon", "1 day", "ms"])
def test_processing_record_interval_refuses(text):
    import click

    from proxy.cli import _duration_s
    with pytest.raises(click.BadParameter, match="duration"):
        _duration_s(text, "--processing-record-interval")
