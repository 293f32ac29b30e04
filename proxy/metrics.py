"""Every Prometheus metric dpp exports, in one place (prefix ``dpp_``; bounded labels only).

Labels come from the policy (route, rule, action, block reason) or from :mod:`proxy.errors`
(dead-letter reason codes), never from record values. The record path counts in plain integers
(:class:`proxy.policy.compiler.RouteStats`); :func:`publish` moves them here once per batch.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .crypto.kms import instrumentation as kms_instrumentation
from .errors import Reason
from .policy.compiler import LATENCY_BUCKETS, CompiledPolicy, CompiledRoute, RouteStats


KMS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds; a KMS call is a network round trip (ms), a timeout ends at the request timeout."""


class Metrics:
    """The metric set, registered in ``registry`` (a fresh one by default, so tests can isolate)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.listeners: list = []
        """Callables ``(route, stats, produced)`` given every batch :meth:`publish` adds (the records
        of processing, :mod:`proxy.stream.processingrecords`: the same counts as the metrics)."""
        r = self.registry
        self.consumed = Counter("dpp_records_consumed", "Records consumed from a route's source topic", ["route"], registry=r)
        self.produced = Counter("dpp_records_produced", "Protected records acknowledged by the sink topic", ["route"], registry=r)
        self.blocked = Counter("dpp_records_blocked", "Records withheld by a block rule", ["route", "reason"], registry=r)
        self.dead_lettered = Counter("dpp_records_dead_lettered", "Records sent (sealed) to the dead-letter topic",
                                     ["route", "reason"], registry=r)
        self.transforms = Counter("dpp_field_transforms", "Field values transformed by a rule", ["route", "rule", "action"], registry=r)
        self.unmatched = Counter("dpp_rule_unmatched", "Records in which a rule's field path was absent", ["route", "rule"], registry=r)
        self.detections = Counter("dpp_pii_detections", "Personal data found in free text by a detector",
                                  ["route", "detector"], registry=r)
        self.latency = Histogram("dpp_record_processing_seconds", "Policy engine time per record (parse, protect, serialize)",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.policy_info = Gauge("dpp_policy_info", "Active policy (value 1)", ["policy", "version", "sha256"], registry=r)
        self.route_info = Gauge("dpp_route_info", "A route of the active policy and its declared purpose (value 1; "
                                "purpose empty when none is declared)", ["route", "purpose"], registry=r)
        self.halted = Gauge("dpp_route_halted", "1 while the route is halted by the incident switch (dpp halt), else 0",
                            ["route"], registry=r)
        self.consent_subjects = Gauge("dpp_consent_subjects", "Data subjects in the consent table of a consent topic",
                                      ["topic"], registry=r)
        self.consent_updates = Counter("dpp_consent_updates", "Consent records read (applied, unreadable: the subject "
                                       "counts as not consenting, ignored: no usable key)", ["topic", "outcome"], registry=r)
        self.consent_apply_lag = Histogram("dpp_consent_apply_lag_seconds", "Seconds from a consent record's Kafka "
                                           "timestamp to its application in the worker's consent table", ["topic"],
                                           buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0), registry=r)
        self.reloads = Counter("dpp_policy_reloads", "Policy reload attempts", ["result"], registry=r)
        for result in ("success", "error"):
            self.reloads.labels(result)
        self.lag = Gauge("dpp_consumer_lag", "Records in a source partition not yet processed (high watermark - position)",
                         ["route", "partition"], registry=r)
        self.delivery_failures = Counter("dpp_delivery_failures", "Produce attempts the broker did not acknowledge",
                                         ["route", "topic_kind"], registry=r)
        self.kms_operations = Counter("dpp_kms_operations", "Calls to a KMS (each attempt; outcome success, "
                                      "unavailable or refused)", ["provider", "operation", "outcome"], registry=r)
        self.kms_latency = Histogram("dpp_kms_operation_seconds", "Wall time of one KMS call",
                                     ["provider", "operation"], buckets=KMS_BUCKETS, registry=r)

    def observe_kms(self, provider: str, operation: str, outcome: str, seconds: float) -> None:
        """One KMS call (the observer of :mod:`proxy.crypto.kms.instrumentation`)."""
        self.kms_operations.labels(provider, operation, outcome).inc()
        self.kms_latency.labels(provider, operation).observe(seconds)

    def watch_kms(self, providers=("vault", "aws")) -> None:
        """Receive this process's KMS calls, with every ``unwrap`` series of ``providers`` at zero
        (the alert on KMS failures sees the first one)."""
        for p in providers:
            for outcome in kms_instrumentation.OUTCOMES:
                self.kms_operations.labels(p, "unwrap", outcome)
        kms_instrumentation.set_observer(self.observe_kms)

    def register_policy(self, policy: CompiledPolicy) -> None:
        """Set ``policy_info`` and create every route/rule series at zero, so dashboards see them."""
        lp = policy.loaded
        self.policy_info.clear()
        self.policy_info.labels(lp.policy.name, lp.revision, lp.sha256).set(1)
        self.route_info.clear()
        for route in policy.routes:
            self.route_info.labels(route.name, route.purpose).set(1)
        for route in policy.routes:
            self.consumed.labels(route.name)
            self.produced.labels(route.name)
            self.halted.labels(route.name)  # 0 until a halt (a reload keeps a halted route's 1)
            for label, action in zip(route.rule_labels, route.rule_actions):
                self.transforms.labels(route.name, label, action)
                self.unmatched.labels(route.name, label)
            # Outcome series start at zero too: increase()/rate() (alerts DppDeadLetters, DppBlockedSpike)
            # never see the first records of a series that appears with a non-zero value.
            for reason in Reason:
                self.dead_lettered.labels(route.name, reason.value)
            # likewise the delivery failures (alert DppDeliveryFailures): sink, dead letters and, on
            # exactly_once routes, transactions (a commit that failed and was aborted)
            for kind in ("sink", "dead_letter", *(("transaction",) if route.exactly_once else ())):
                self.delivery_failures.labels(route.name, kind)
            for model in lp.policy.routes:
                if model.name == route.name:
                    for b in model.block:
                        self.blocked.labels(route.name, b.reason)
            if route.retention is not None:  # records older than retention.max_age
                self.blocked.labels(route.name, Reason.RETENTION_EXPIRED.value)
            if route.subject_mode:  # crypto-shredding routes block records of forgotten subjects
                self.blocked.labels(route.name, Reason.SUBJECT_FORGOTTEN.value)
            for rule in route.rules:
                for det in getattr(rule, "detectors", ()):  # detect rules: pii_detections at zero
                    self.detections.labels(route.name, det)

    def publish(self, route: CompiledRoute, stats: RouteStats, produced: int | None = None) -> None:
        """Add a drained :class:`RouteStats` to the counters. ``produced`` overrides the count of
        sink records (the engine passes what the broker acknowledged)."""
        name = route.name
        for listener in self.listeners:
            listener(route, stats, produced)
        if stats.consumed:
            self.consumed.labels(name).inc(stats.consumed)
        p = stats.produced if produced is None else produced
        if p:
            self.produced.labels(name).inc(p)
        for reason, n in stats.blocked.items():
            self.blocked.labels(name, reason).inc(n)
        for reason, n in stats.dead_lettered.items():
            self.dead_lettered.labels(name, reason).inc(n)
        for i, n in enumerate(stats.transforms):
            if n:
                self.transforms.labels(name, route.rule_labels[i], route.rule_actions[i]).inc(n)
        for i, n in enumerate(stats.unmatched):
            if n:
                self.unmatched.labels(name, route.rule_labels[i]).inc(n)
        for det, n in stats.detections.items():
            if n:
                self.detections.labels(name, det).inc(n)
        if any(stats.latency_buckets):
            self._add_histogram(name, stats)

    def _add_histogram(self, name: str, stats: RouteStats) -> None:
        # prometheus-client has no bulk observe; add bucket counts and sum to the child directly.
        child = self.latency.labels(name)
        for i, n in enumerate(stats.latency_buckets):
            if n:
                child._buckets[i].inc(n)
        child._sum.inc(stats.latency_sum)

    def serve(self, port: int, addr: str = "0.0.0.0", ready=None):
        """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` (0 = any free port).

        ``ready()`` returns ``(ok, reason)``; default: always ready. Returns the HTTP server
        (``.server_port``, ``.shutdown()``)."""
        from .httpserver import serve
        return serve(self.registry, ready or (lambda: (True, "ok")), port, addr)


class SupervisorMetrics:
    """The metrics of the ``dpp run --workers N`` supervisor (:mod:`proxy.supervisor`), served with
    the workers' own (each labelled ``worker``)."""

    def __init__(self, workers: int, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        self.running = Gauge("dpp_workers_running", "Worker processes of this supervisor that are running", registry=r)
        self.configured = Gauge("dpp_workers_configured", "Worker processes this supervisor keeps running (--workers)",
                                registry=r)
        self.configured.set(workers)
        self.restarts = Counter("dpp_worker_restarts", "Worker processes restarted after they exited unexpectedly",
                                ["worker"], registry=r)
        for i in range(workers):
            self.restarts.labels(str(i))
