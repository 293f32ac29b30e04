"""The native data plane running a route: :class:`NativeRouteWorker` (issue 13, item 1).

``proxy._dataplane.Plane`` (``proxy/_dataplane.c``) consumes a batch with librdkafka, runs the
route's rules over each raw JSON value through a ``proxy._native.JsonPlan`` (the C API of
``proxy/dpp_native.h``), keeps the results in C and produces them in offset order; Python sees
only the records native code hands back (no plan, a tombstone, a rule it does not implement, a
record over the time budget or near the sink's size limit) and the per-batch counters. The
handed-back records go through the same code as the Python worker's (:meth:`RouteWorker._produce_all`:
``route.protect_batch``, the sealed dead-letter envelope, the size checks), so the plane's output
is byte-identical to the Python worker's even when every record is handed back.

Python keeps control between batches, as :class:`proxy.stream.engine.RouteWorker` does: halts
(the control topic), hot reload (a new plan), stop, metrics, lag, client errors, commit retries.

:func:`ineligible` says why a route cannot run on the native plane; :func:`make_worker` chooses
the worker by ``EngineConfig.data_plane`` (``auto`` | ``python`` | ``native``).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from ..policy.compiler import CompiledPolicy, CompiledRoute
from . import clientconfig, native
from .engine import (_RECORD_OVERHEAD, _REBALANCE_COMMIT_ERRORS, KEY_VERSIONS_HEADER, PROVENANCE_HEADER,
                     DeliveryFailed, EngineConfig, RouteWorker, access_failure, record_size)

log = logging.getLogger("proxy.stream")

DATA_PLANES = ("auto", "python", "native")


def ineligible(route: CompiledRoute, cfg: EngineConfig, built: str | None = None) -> str | None:
    """Why ``route`` cannot run on the native data plane under ``cfg``, or ``None`` when it can.
    ``built``: why the extension is missing (default :func:`proxy.stream.native.available`)."""
    why = native.available() if built is None else built
    if why:
        return why
    if route.format != "json":
        return f"format {route.format} (the native plane reads JSON values)"
    if route.exactly_once:
        return "processing_guarantee exactly_once (Kafka transactions run in the Python worker)"
    if route.has_parts:
        return "key or header rules"
    if route.subject_mode:
        return "subject_keys (crypto-shredding)"
    if route.consent is not None:
        return "consent (the consent table is read per batch in Python)"
    if route.uses_record_timestamp:
        return "retention on record timestamps"
    props = {**clientconfig.extra(), **cfg.consumer, **cfg.producer}
    if str(props.get("security.protocol", "")).upper().startswith("SASL"):
        # the SASL_SSL integration test's SCRAM login is refused to the system librdkafka 2.0.2 while
        # confluent-kafka's bundled one logs in with the same properties: not yet understood
        return "SASL (the native plane's librdkafka login is not verified yet)"
    return None


def plan_for(route: CompiledRoute) -> Any:
    """The route's ``proxy._native.JsonPlan`` (``route.json_plan``, built by the compiler at
    policy load, :mod:`proxy.policy.jsonplan`), else ``None``: every record is handed back to the
    Python batch path."""
    return getattr(route, "json_plan", None)


def librdkafka_conf(conf: dict[str, Any]) -> dict[str, str]:
    """confluent-kafka's configuration dict as librdkafka strings: callables (``logger``,
    ``error_cb``; the plane has its own) left out, booleans ``true``/``false``."""
    out = {}
    for k, v in conf.items():
        if callable(v) or isinstance(v, logging.Logger):
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def make_worker(route: CompiledRoute, policy: CompiledPolicy, cfg: EngineConfig, metrics, stop) -> RouteWorker:
    """The worker of ``route``: native when ``cfg.data_plane`` allows and the route is eligible.
    ``native`` with an ineligible route, or a client option librdkafka does not know, raises
    ``ValueError`` (the reason); ``auto`` then runs the Python worker after one warning line."""
    mode = cfg.data_plane
    if mode not in DATA_PLANES:
        raise ValueError(f"data_plane must be one of {', '.join(DATA_PLANES)}")
    if mode == "python":
        return RouteWorker(route, policy, cfg, metrics, stop)
    why = ineligible(route, cfg)
    if why is None:
        try:
            return NativeRouteWorker(route, policy, cfg, metrics, stop)
        except ValueError as e:
            why = str(e)
    if mode == "native":
        raise ValueError(f"route {route.name}: data_plane native is not possible: {why}")
    if native.available() is None:  # built, but not for this route: say why once
        log.warning("route runs on the Python data plane", extra={"route": route.name, "reason": why})
    return RouteWorker(route, policy, cfg, metrics, stop)


class _Handed:
    """A handed-back record with the accessors of confluent-kafka's ``Message`` that the Python
    worker's record code uses."""

    __slots__ = ("index", "_topic", "_partition", "_offset", "_key", "_value", "_headers", "_ts")

    def __init__(self, topic, index, partition, offset, key, value, headers, ts):
        self.index, self._topic, self._partition, self._offset = index, topic, partition, offset
        self._key, self._value, self._headers, self._ts = key, value, headers, ts

    def topic(self): return self._topic
    def partition(self): return self._partition
    def offset(self): return self._offset
    def key(self): return self._key
    def value(self): return self._value
    def headers(self): return self._headers
    def error(self): return None
    def timestamp(self): return (0, -1) if self._ts is None else (1, self._ts)


class _Collector:
    """Stands in for the producer while the handed-back records are protected: what
    :meth:`RouteWorker._produce_all` would produce is kept per record (``out``) for
    ``Plane.set_result``."""

    def __init__(self):
        self.out: list = []

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.out.append((topic, key, value, headers))

    def poll(self, timeout=0):
        return 0


class NativeRouteWorker(RouteWorker):
    """:class:`RouteWorker` with the records on ``proxy._dataplane.Plane``. Its confluent-kafka
    clients stay for metadata (topics present, broker reachable, size limits); the plane's own
    consumer (same group, same properties) and idempotent producer carry the records."""

    data_plane = "native"

    def __init__(self, route: CompiledRoute, policy: CompiledPolicy, cfg: EngineConfig, metrics, stop):
        super().__init__(route, policy, cfg, metrics, stop)
        try:
            self.plane = native.plane(librdkafka_conf(self._consumer_config()),
                                      librdkafka_conf(self._producer_config()), route.source, route.sink,
                                      plan_for(route), route.limits.time_budget_ms / 1000.0)
        except ValueError:
            self._close()
            raise
        self._attempts = 0

    @property
    def broker_down(self) -> bool:
        """``/readyz``'s view (read from its thread): also true while the plane waits in a flush
        and its clients reported every broker down (the error reaches Python after the flush)."""
        plane = getattr(self, "plane", None)
        return self._broker_down or (plane is not None and plane.brokers_down())

    @broker_down.setter
    def broker_down(self, down: bool) -> None:
        self._broker_down = down
        plane = getattr(self, "plane", None)
        if not down and plane is not None:
            plane.brokers_down(True)

    # the loop's pieces (RouteWorker.run) -----------------------------------------------------
    def _subscribe(self) -> None:
        self.plane.subscribe()

    def _close(self) -> None:
        plane = getattr(self, "plane", None)
        if plane is not None:
            plane.close()
        super()._close()

    def _apply_swap(self) -> None:
        super()._apply_swap()
        self.plane.set_plan(plan_for(self.route))

    def _fit_batch_size(self) -> None:
        """As :meth:`RouteWorker._fit_batch_size`, for the plane's producer too."""
        before = self._batch_bytes
        super()._fit_batch_size()
        if self._batch_bytes != before and getattr(self, "plane", None) is not None:
            self.plane.set_producer(librdkafka_conf(self._producer_config(self._batch_bytes)))

    def _pause_assigned(self, pause: bool) -> None:
        (self.plane.pause if pause else self.plane.resume)()

    def _hold(self, msgs: list | None = None) -> None:
        self.plane.hold(min(0.2, self.cfg.poll_timeout_s))
        self._sync_assignment()

    def _check_access(self) -> None:
        for code, reason in self.plane.errors():
            self._on_client_error(KafkaError(code, reason))
        super()._check_access()

    def _sync_assignment(self) -> None:
        """Follow the plane's assignment (its rebalance callback ran inside ``step``): log it and
        drop the lag of partitions revoked, as :meth:`RouteWorker._on_assign`/``_on_revoke``."""
        now = {(self.route.source, p) for p in self.plane.assignment()}
        added, removed = now - self.assigned, self.assigned - now
        self.assigned = now
        if added:
            self.joined = True
            log.info("partitions assigned", extra={"route": self.route.name,
                                                    "partitions": sorted(p for _, p in added)})
        if removed:
            for _, p in removed:
                try:
                    self.metrics.lag.remove(self.route.name, str(p))
                except KeyError:
                    pass
            log.info("partitions revoked", extra={"route": self.route.name,
                                                   "partitions": sorted(p for _, p in removed)})

    def _update_lag(self) -> None:
        for p, pos, hi in self.plane.lag(not self.halted):
            if hi >= 0 and pos >= 0:
                self.metrics.lag.labels(self.route.name, str(p)).set(max(0, hi - pos))

    def _step(self) -> None:
        r, cfg, pl = self.route, self.cfg, self.plane
        extra = [(PROVENANCE_HEADER, self.provenance)]
        if r.key_versions_header:
            extra.append((KEY_VERSIONS_HEADER, r.key_versions_header))
        small = self.limits[r.sink] - _RECORD_OVERHEAD - record_size(None, None, extra) - 1024
        n, handed, errors = pl.step(cfg.batch_size, cfg.poll_timeout_s, self._linger.wait_s(1), small)
        self._linger.observe(n, time.monotonic())
        self._sync_assignment()
        self._check_access()
        for code, topic, partition, fatal, _ in errors:
            if partition < 0:  # a client-level error (brokers down, authentication), not a partition's
                self._on_client_error(KafkaError(code, fatal=bool(fatal)))
            else:
                self._consumer_error(KafkaError(code, fatal=bool(fatal)), topic)
        if not n:
            return
        if self._halted_now():  # halted while the batch was fetched: not processed
            pl.rewind()
            pl.pause()
            return
        if handed:
            self._protect_handed(r, handed, extra)
        self._deliver(r, extra)

    def _consumer_error(self, err: KafkaError, topic: str) -> None:
        """A consumer error the plane reported: as :meth:`RouteWorker.process_batch` treats it."""
        if err.code() == KafkaError._PARTITION_EOF:
            return
        failure = access_failure(err, topic if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED else self.route.group)
        if failure is not None:
            raise failure
        log.warning("consumer error", extra={"route": self.route.name, "topic": topic, "error_class": err.name()})
        if err.fatal():
            raise KafkaException(err)

    def _protect_handed(self, r: CompiledRoute, handed: list, extra: list) -> None:
        """Run the Python worker's record code on the handed-back records; each record's output
        goes back to the plane (``set_result``), to be produced in offset order."""
        recs = [_Handed(r.source, *h[:7]) for h in handed]
        outs: dict[int, list] = {}
        collector, producer = _Collector(), self.producer

        def mark(m: _Handed) -> None:
            collector.out = outs[m.index] = []

        self.producer = collector
        try:
            self._produce_all(r, recs, [m.value() for m in recs], extra, mark)
        finally:
            self.producer = producer
        for m in recs:
            self.plane.set_result(m.index, outs.get(m.index, []))

    def _deliver(self, r: CompiledRoute, extra: list) -> None:
        """Produce the batch in offset order, wait for every acknowledgement, commit; retry a
        failed delivery up to ``max_produce_attempts`` (the same bytes again), then raise
        :class:`DeliveryFailed` with nothing committed. Counters are published after the commit."""
        pl = self.plane
        for attempt in range(self.cfg.max_produce_attempts):
            failed, code, refused = pl.commit_batch(extra)
            self._check_access()
            if not failed:
                break
            self.metrics.delivery_failures.labels(r.name, "sink").inc(failed)
            if refused is not None:  # too large for the topic: the batch goes again under the new limit
                self._refused[refused[0]] = refused[1]
                self._after_size_refusal()
                pl.rewind()
                r.stats.drain()
                log.warning("the batch is processed again", extra={"route": r.name})
                return
            log.warning("retrying unacknowledged records", extra={"route": r.name, "count": failed,
                                                                   "attempt": attempt + 1})
            time.sleep(min(2 ** attempt * 0.1, 2.0))
        else:
            raise DeliveryFailed(f"{failed} records not acknowledged; offsets not committed")
        first = [code]

        def commit() -> int:
            c = first.pop() if first else pl.commit()
            if c and c not in _REBALANCE_COMMIT_ERRORS:
                raise KafkaException(KafkaError(c))
            return c

        if self._retry_coordinator("group coordinator", commit):
            log.warning("offsets not committed: consumer group rebalancing; kept for the next batch",
                        extra={"route": r.name, "partitions": len(self.assigned)})
        self._add_native_counters(r)
        self.batches += 1
        self.metrics.publish(r, r.stats.drain())

    def _add_native_counters(self, r: CompiledRoute) -> None:
        """The plane's counters of its native records, added to the route's (which hold the
        handed-back records'), so one :meth:`Metrics.publish` covers the batch."""
        consumed, produced, blocked, transforms, unmatched, buckets, lsum = self.plane.counters()
        if consumed:
            r.add_native_counts(consumed, produced, blocked, transforms, unmatched, buckets, lsum)
