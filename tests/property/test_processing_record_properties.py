"""Property: whatever the batches, the flush points and the unacknowledged windows, the records of
processing written sum to the Prometheus counters (consumed, produced, blocked and dead-lettered
by reason, transforms by rule), and the report aggregates them back to the same totals."""
from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from policykit import KEYS, policy_text
from proxy.metrics import Metrics
from proxy.policy.compiler import RouteStats, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.report import aggregate
from proxy.stream.processingrecords import ProcessingRecorder

CP = compile_policy(load_policy_text(policy_text(["{field: a, action: mask, keep_first: 1}",
                                                  "{field: b, action: pseudonymize, key: k}"]), "p.yaml"),
                    environ=KEYS)
ROUTE = CP.route()
REASONS = st.sampled_from(["consent-withdrawn", "retention-expired", "x"])
DL = st.sampled_from(["invalid-json", "unsupported-type"])

batch = st.builds(
    lambda produced, blocked, dead, t: RouteStats(
        consumed=produced + sum(blocked.values()) + sum(dead.values()), produced=produced, blocked=blocked,
        dead_lettered=dead, transforms=list(t), unmatched=[0, 0], latency_buckets=[], latency_sum=0.0),
    st.integers(0, 500), st.dictionaries(REASONS, st.integers(0, 50), max_size=2),
    st.dictionaries(DL, st.integers(0, 20), max_size=2), st.tuples(st.integers(0, 500), st.integers(0, 500)))
# a step: publish a batch, or flush (acknowledged or not)
step = st.one_of(batch, st.sampled_from(["flush-ok", "flush-lost"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=30))
def test_windows_sum_to_the_metrics_and_the_report(steps):
    ticks = itertools.count()
    base = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.timezone.utc)
    clock = lambda: (base + dt.timedelta(seconds=next(ticks))).isoformat()  # noqa: E731
    sent: list[dict] = []
    answer = {"ok": True}
    rec = ProcessingRecorder(CP, send=lambda docs: answer["ok"] and (sent.extend(docs) or True), clock=clock,
                             worker="w")
    m = Metrics()
    m.register_policy(CP)
    m.listeners.append(rec.on_publish)
    for s in steps:
        if isinstance(s, str):
            answer["ok"] = s == "flush-ok"
            rec.flush()
            answer["ok"] = True
        else:
            m.publish(ROUTE, s)
    rec.close()

    def metric(name, **labels):
        return int(m.registry.get_sample_value(name, {"route": "r", **labels}) or 0)
    rep = aggregate(sent, base, base + dt.timedelta(days=1))
    t = rep.routes.get("r")
    consumed = metric("dpp_records_consumed_total")
    assert sum(d["records"]["consumed"] for d in sent) == consumed == (t.consumed if t else 0)
    assert sum(d["records"]["produced"] for d in sent) == metric("dpp_records_produced_total")
    for reason in ("consent-withdrawn", "retention-expired", "x"):
        assert (t.blocked.get(reason, 0) if t else 0) == metric("dpp_records_blocked_total", reason=reason)
    for reason in ("invalid-json", "unsupported-type"):
        assert (t.dead_lettered.get(reason, 0) if t else 0) == metric("dpp_records_dead_lettered_total", reason=reason)
    for label, action in zip(ROUTE.rule_labels, ROUTE.rule_actions):
        assert (t.transforms.get((label, action), 0) if t else 0) == metric(
            "dpp_field_transforms_total", rule=label, action=action)
    starts = [d["window"]["start"] for d in sent]
    ends = [d["window"]["end"] for d in sent]
    assert all(a < b for a, b in zip(starts, ends)) and starts == sorted(starts)
