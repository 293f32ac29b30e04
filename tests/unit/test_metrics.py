"""proxy.metrics: Metrics.publish moves RouteStats into Prometheus counters and the latency
histogram exactly; register_policy creates zero series; label values stay bounded."""
from __future__ import annotations

import itertools

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram

from proxy.errors import Reason
from proxy.metrics import Metrics
from proxy.policy import compiler as compiler_module
from proxy.policy.compiler import LATENCY_BUCKETS, RouteStats, compile_policy
from proxy.policy.loader import load_policy_text

POLICY = """version: 1
name: unit-metrics
revision: rev-7
keys:
  k: {source: env, name: K}
routes:
  - name: people
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: k
    block:
      - when: {field: consent, equals: false}
        reason: consent-withdrawn
    rules:
      - {field: name, action: mask, keep_first: 1}
      - {field: card, action: fpe, key: k, name: card-fpe}
      - {field: email, action: pseudonymize, key: k}
      - {field: "orders[*].secret", action: drop}
"""
CANARY = "canary-m3tr1c"


@pytest.fixture
def cp():
    return compile_policy(load_policy_text(POLICY, "m.yaml"), environ={"K": "5a" * 32})


def value(m: Metrics, name: str, **labels) -> float | None:
    return m.registry.get_sample_value(name, labels)


def le(bound: float) -> str:
    """Prometheus' text for a bucket bound, as prometheus_client writes it (floatToGoString)."""
    from prometheus_client.utils import floatToGoString
    return floatToGoString(bound)


# ----------------------------------------------------------------------------- counters
def test_publish_adds_counters_exactly(cp):
    route = cp.route()
    m = Metrics()
    stats = RouteStats(consumed=10, produced=6, blocked={"consent-withdrawn": 2},
                       dead_lettered={"invalid-json": 1, "fpe-domain-too-small": 1},
                       transforms=[6, 3, 0, 4], unmatched=[0, 3, 6, 2],
                       latency_buckets=[0] * (len(LATENCY_BUCKETS) + 1), latency_sum=0.0)
    m.publish(route, stats)
    assert value(m, "dpp_records_consumed_total", route="people") == 10
    assert value(m, "dpp_records_produced_total", route="people") == 6
    assert value(m, "dpp_records_blocked_total", route="people", reason="consent-withdrawn") == 2
    assert value(m, "dpp_records_dead_lettered_total", route="people", reason="invalid-json") == 1
    assert value(m, "dpp_records_dead_lettered_total", route="people", reason="fpe-domain-too-small") == 1
    assert value(m, "dpp_field_transforms_total", route="people", rule="name", action="mask") == 6
    assert value(m, "dpp_field_transforms_total", route="people", rule="card-fpe", action="fpe") == 3
    assert value(m, "dpp_field_transforms_total", route="people", rule="email", action="pseudonymize") is None  # 0: not created
    assert value(m, "dpp_field_transforms_total", route="people", rule="orders[*].secret", action="drop") == 4
    assert value(m, "dpp_rule_unmatched_total", route="people", rule="card-fpe") == 3
    assert value(m, "dpp_rule_unmatched_total", route="people", rule="email") == 6
    assert value(m, "dpp_rule_unmatched_total", route="people", rule="name") is None
    # counters accumulate over batches; produced can be overridden by what the broker acknowledged
    m.publish(route, stats, produced=5)
    assert value(m, "dpp_records_consumed_total", route="people") == 20
    assert value(m, "dpp_records_produced_total", route="people") == 11
    assert value(m, "dpp_field_transforms_total", route="people", rule="name", action="mask") == 12
    assert value(m, "dpp_records_blocked_total", route="people", reason="consent-withdrawn") == 4
    # the histogram is untouched when there were no latencies
    assert value(m, "dpp_record_processing_seconds_count", route="people") is None


def test_publish_of_processed_records(cp):
    route = cp.route()
    payloads = [orjson.dumps({"name": "Ada", "card": "4111111111111111", "orders": [{"secret": 1}, {"secret": 2}]}),
                orjson.dumps({"name": "Bob", "consent": False}),
                orjson.dumps({"card": "12"}),
                b"not json", None]
    for p in payloads:
        route.process(p)
    m = Metrics()
    m.publish(route, route.stats.drain())
    assert value(m, "dpp_records_consumed_total", route="people") == 5
    assert value(m, "dpp_records_produced_total", route="people") == 2          # one record + the tombstone
    assert value(m, "dpp_records_blocked_total", route="people", reason="consent-withdrawn") == 1
    assert value(m, "dpp_records_dead_lettered_total", route="people", reason="fpe-domain-too-small") == 1
    assert value(m, "dpp_records_dead_lettered_total", route="people", reason="invalid-json") == 1
    assert value(m, "dpp_field_transforms_total", route="people", rule="orders[*].secret", action="drop") == 2
    assert value(m, "dpp_rule_unmatched_total", route="people", rule="email") == 1
    assert value(m, "dpp_record_processing_seconds_count", route="people") == 5
    assert value(m, "dpp_record_processing_seconds_sum", route="people") > 0
    # drained: a second publish adds nothing
    m.publish(route, route.stats.drain())
    assert value(m, "dpp_records_consumed_total", route="people") == 5
    assert value(m, "dpp_record_processing_seconds_count", route="people") == 5


# ----------------------------------------------------------------------------- histogram
def test_histogram_buckets_match_prometheus_observe(cp):
    """Bulk-added bucket counts equal what Histogram.observe would give for the same latencies."""
    route = cp.route()
    # one latency inside every bucket (and on some bounds exactly, which belong to that bucket: le)
    latencies = [1e-6, 2.5e-6, 4e-6, 1e-5, 2e-5, 2.5e-5, 7e-5, 1e-4, 2e-4, 4e-4, 5e-4, 2e-3, 2.5e-3, 9e-3, 0.05, 0.1, 0.2, 3.0]
    ticks = itertools.chain.from_iterable((0.0, dt) for dt in latencies)

    class FakeTime:
        @staticmethod
        def perf_counter():
            return next(ticks)

    real_time = compiler_module.time
    compiler_module.time = FakeTime
    try:
        for _ in latencies:
            route.process(b"{}")
    finally:
        compiler_module.time = real_time
    stats = route.stats.drain()
    m = Metrics()
    m.publish(route, stats)

    ref_registry = CollectorRegistry()
    ref = Histogram("ref_seconds", "reference", ["route"], buckets=LATENCY_BUCKETS, registry=ref_registry)
    for dt in latencies:
        ref.labels("people").observe(dt)
    for bound in list(LATENCY_BUCKETS) + [float("inf")]:
        got = value(m, "dpp_record_processing_seconds_bucket", route="people", le=le(bound))
        want = ref_registry.get_sample_value("ref_seconds_bucket", {"route": "people", "le": le(bound)})
        assert got == want, bound
    assert value(m, "dpp_record_processing_seconds_count", route="people") == len(latencies)
    assert value(m, "dpp_record_processing_seconds_sum", route="people") == pytest.approx(sum(latencies))
    # spot checks of the cumulative counts
    assert value(m, "dpp_record_processing_seconds_bucket", route="people", le=le(2.5e-6)) == 2
    assert value(m, "dpp_record_processing_seconds_bucket", route="people", le=le(1e-5)) == 4
    assert value(m, "dpp_record_processing_seconds_bucket", route="people", le=le(0.1)) == 16
    assert value(m, "dpp_record_processing_seconds_bucket", route="people", le="+Inf") == 18


def test_histogram_from_hand_made_stats(cp):
    route = cp.route()
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    buckets[0], buckets[3], buckets[-1] = 2, 5, 1
    m = Metrics()
    m.publish(route, RouteStats(transforms=[0] * 4, unmatched=[0] * 4, latency_buckets=buckets, latency_sum=1.5))
    m.publish(route, RouteStats(transforms=[0] * 4, unmatched=[0] * 4, latency_buckets=buckets, latency_sum=0.5))
    cumulative = list(itertools.accumulate(buckets))
    for bound, n in zip(list(LATENCY_BUCKETS) + [float("inf")], cumulative):
        assert value(m, "dpp_record_processing_seconds_bucket", route="people", le=le(bound)) == 2 * n
    assert value(m, "dpp_record_processing_seconds_count", route="people") == 16
    assert value(m, "dpp_record_processing_seconds_sum", route="people") == 2.0


# ----------------------------------------------------------------------------- register_policy and labels
def test_register_policy_creates_zero_series(cp):
    m = Metrics()
    m.register_policy(cp)
    lp = cp.loaded
    assert value(m, "dpp_policy_info", policy="unit-metrics", version="rev-7", sha256=lp.sha256) == 1
    assert value(m, "dpp_records_consumed_total", route="people") == 0
    assert value(m, "dpp_records_produced_total", route="people") == 0
    for label, action in zip(cp.route().rule_labels, cp.route().rule_actions):
        assert value(m, "dpp_field_transforms_total", route="people", rule=label, action=action) == 0
        assert value(m, "dpp_rule_unmatched_total", route="people", rule=label) == 0
    for reason in Reason:                                         # alerts see the first increase
        assert value(m, "dpp_records_dead_lettered_total", route="people", reason=reason.value) == 0
    assert value(m, "dpp_records_blocked_total", route="people", reason="consent-withdrawn") == 0
    for kind in ("sink", "dead_letter"):                          # alert DppDeliveryFailures
        assert value(m, "dpp_delivery_failures_total", route="people", topic_kind=kind) == 0
    assert value(m, "dpp_delivery_failures_total", route="people", topic_kind="transaction") is None  # at_least_once
    # registering again (a reload) replaces policy_info instead of adding a second series
    m.register_policy(cp)
    infos = [s for mf in m.registry.collect() if mf.name == "dpp_policy_info" for s in mf.samples]
    assert len(infos) == 1


def test_exactly_once_routes_count_transaction_failures_from_zero():
    text = POLICY.replace("    dead_letter_key: k\n", "    dead_letter_key: k\n    processing_guarantee: exactly_once\n")
    cp = compile_policy(load_policy_text(text, "m.yaml"), environ={"K": "5a" * 32})
    assert cp.route().exactly_once
    m = Metrics()
    m.register_policy(cp)
    for kind in ("sink", "dead_letter", "transaction"):
        assert value(m, "dpp_delivery_failures_total", route="people", topic_kind=kind) == 0


def test_label_values_are_bounded_and_never_record_data(cp):
    route = cp.route()
    records = [
        {"name": CANARY, "email": CANARY + "@x.org", "card": "4111111111111111", CANARY: CANARY},
        {"name": {"x": CANARY}},                                  # unsupported-type
        {"card": CANARY + "12"},                                  # domain too small
        {"consent": False, "name": CANARY},
    ]
    for r in records:
        route.process(orjson.dumps(r))
    route.process(CANARY.encode())
    m = Metrics()
    m.register_policy(cp)
    m.publish(route, route.stats.drain())
    allowed = {
        "route": {"people"},
        "rule": set(route.rule_labels),
        "action": set(route.rule_actions),
        "reason": {r.value for r in Reason} | {"consent-withdrawn"},
        "result": {"success", "error"},
        "purpose": {""},  # from the policy only (a slug, or none declared)
        "topic_kind": {"sink", "dead_letter", "transaction"},
        "policy": {"unit-metrics"}, "version": {"rev-7"}, "sha256": {cp.loaded.sha256},
        "le": {le(b) for b in LATENCY_BUCKETS} | {"+Inf"},
    }
    seen_reasons = set()
    for mf in m.registry.collect():
        for s in mf.samples:
            for k, v in s.labels.items():
                assert CANARY not in v
                assert k in allowed, (mf.name, k)
                assert v in allowed[k], (mf.name, k, v)
                if k == "reason" and s.name.endswith("_total") and s.value:
                    seen_reasons.add(v)
    assert seen_reasons == {"unsupported-type", "fpe-domain-too-small", "invalid-json", "consent-withdrawn"}
