"""Run a dpp route inside an existing `faust-streaming <https://faust-streaming.github.io/faust/>`_ app.

The same :class:`~proxy.policy.compiler.CompiledRoute` that ``dpp run`` uses protects each record of a
faust stream: a *sink* outcome is sent to the route's sink topic (key and headers kept, plus the
``dpp-policy`` provenance header), a *dead-letter* outcome is sealed with AES-GCM under the route's
dead-letter key (:func:`proxy.stream.deadletter.envelope`) and sent to the dead-letter topic, a
*block* outcome is withheld and counted. Nothing of a record's value is logged.

Delivery and offsets (at-least-once, fail closed): the stream is consumed with manual acks
(``stream.noack()``); an event is acknowledged only after the broker acknowledged what it produced
(a blocked record needs nothing produced), and acknowledgements are released to faust strictly in
offset order per partition, so faust never commits the source offset of a record whose protected
(or sealed) form is not safely in Kafka. (In-order release matters: faust 0.15's commit logic
commits past an unacknowledged offset when later ones are acknowledged before it, e.g. a blocked
record right after a record still in flight.) A produce the broker finally refuses leaves its
event, and every later one of its partition, unacknowledged and stops the agent at once with
:class:`DeliveryFailed` (by default the whole worker, so that its supervisor restarts it); after
the restart the records are consumed and protected again.

Two ways to use it, both on an app you already have::

    import faust
    from proxy.policy.loader import load_policy
    from proxy.policy.compiler import compile_policy
    from proxy.integrations.faust import protect_stream

    app = faust.App("my-app", broker="kafka://localhost:9092")
    policy = compile_policy(load_policy("policies/examples/customer-pii.yaml"))
    protected = protect_stream(app, policy, route="crm-to-analytics")   # registers an agent

or, inside an agent of your own::

    protector = FaustRouteProtector(app, policy.route("crm-to-analytics"), provenance=policy.provenance)

    @app.agent(protector.source_topic)
    async def my_agent(stream):
        await protector.run(stream)        # or: async for event in stream.noack().events():
                                           #         outcome = await protector.handle(event)

(``handle`` sends and acknowledges for you; with a loop of your own a refused delivery surfaces as
:class:`DeliveryFailed` at the next event instead of at once.)

This module imports neither faust nor Kafka clients at import time (it only calls methods of the
app it is given; :func:`protect_stream` imports faust's ``mode`` for its supervisor). Tested with
faust-streaming 0.15.3 (aiokafka 0.14) against Kafka 4.2 with the default ``at_least_once``
processing guarantee (``tests/integration/test_faust_integration.py``); ``exactly_once``
(transactions) is not supported.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..policy.compiler import BLOCK, DEAD_LETTER, SINK, CompiledPolicy, CompiledRoute, Outcome
from ..stream.deadletter import envelope
from ..stream.engine import PROVENANCE_HEADER

if TYPE_CHECKING:  # pragma: no cover - typing only; faust is an optional dependency
    import faust

    from ..metrics import Metrics

log = logging.getLogger("proxy.integrations.faust")

__all__ = ["DeliveryFailed", "FaustCounts", "FaustRouteProtector", "protect_stream", "protect_streams", "raw_topic"]


class DeliveryFailed(RuntimeError):
    """The broker refused a protected or dead-letter record after the producer's own retries.

    The source event was not acknowledged, so its offset (and every later one of its partition)
    stays uncommitted. The message names the route and the topic kind, never a value.
    """


@dataclass
class FaustCounts:
    """Running totals of one protector since it was created (plain integers, single event loop).

    ``consumed``: events handled; ``produced``: sink records the broker acknowledged;
    ``dead_lettered``: sealed records the broker acknowledged; ``blocked``: ``{reason: count}`` of
    records withheld by a block rule; ``dead_letter_reasons``: ``{reason code: count}``;
    ``delivery_failures``: produce attempts the broker finally refused; ``pending``: records sent
    and not yet acknowledged.
    """

    consumed: int = 0
    produced: int = 0
    dead_lettered: int = 0
    blocked: dict[str, int] = field(default_factory=dict)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    delivery_failures: int = 0
    pending: int = 0

    @property
    def blocked_total(self) -> int:
        """Sum of :attr:`blocked` over every reason."""
        return sum(self.blocked.values())


def raw_topic(app: "faust.App", name: str, **kwargs: Any) -> "faust.TopicT":
    """A faust topic of raw bytes keys and values (no faust codec touches the payload).

    ``kwargs`` go to ``app.topic`` (e.g. ``partitions``). Returns the topic object.
    """
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", **kwargs)


def _headers_list(headers: Any) -> list[tuple[str, bytes]]:
    """faust gives headers as a list of pairs or a mapping (or ``None``); return a fresh list."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


class _InOrderAcks:
    """Releases ``event.ack()`` in offset order per topic-partition, whatever order records finish in.

    :meth:`enter` (in consumption order) returns an entry; :meth:`complete` marks it done and acks
    every done entry at the head of its partition's queue. An entry never completed (a refused
    delivery) holds back every later ack of its partition.
    """

    def __init__(self) -> None:
        self._queues: dict[Any, deque] = {}

    def enter(self, event: Any) -> list:
        entry = [event, False]
        self._queues.setdefault(event.message.tp, deque()).append(entry)
        return entry

    def complete(self, entry: list) -> None:
        entry[1] = True
        q = self._queues[entry[0].message.tp]
        while q and q[0][1]:
            q.popleft()[0].ack()

    @property
    def waiting(self) -> int:
        """Events entered and not yet acknowledged (completed or not)."""
        return sum(len(q) for q in self._queues.values())


class FaustRouteProtector:
    """Protects the events of one faust stream with one compiled dpp route.

    Args:
        app: the faust app (``faust.App``) the topics are declared on.
        route: the compiled route (:meth:`proxy.policy.compiler.CompiledPolicy.route`).
        provenance: ``name@revision`` of the policy (``CompiledPolicy.provenance``); written to the
            ``dpp-policy`` header of sink records and to the ``dpp.policy`` dead-letter header.
        source / sink / dead_letter: topic names; default to the route's.
        metrics: optional :class:`proxy.metrics.Metrics`; the route's counters are published to it
            by :meth:`publish_metrics` (called by the agent every ``publish_interval_s`` seconds of
            activity and when the stream ends; :func:`protect_stream` also adds a faust timer).
        publish_interval_s: seconds between metric publications while records flow.

    Attributes: ``route``, ``provenance``, ``source_topic``/``sink_topic``/``dead_letter_topic``
    (faust topics of raw bytes), ``counts`` (:class:`FaustCounts`), ``error`` (the first
    :class:`DeliveryFailed`, or ``None``).
    """

    def __init__(self, app: "faust.App", route: CompiledRoute, *, provenance: str,
                 source: str | None = None, sink: str | None = None, dead_letter: str | None = None,
                 metrics: "Metrics | None" = None, publish_interval_s: float = 1.0):
        if not provenance:
            raise ValueError("provenance (policy name@revision) is required")
        self.app, self.route, self.provenance = app, route, provenance
        self._prov_header = (PROVENANCE_HEADER, provenance.encode())
        self.source_topic = raw_topic(app, source or route.source)
        self.sink_topic = raw_topic(app, sink or route.sink)
        self.dead_letter_topic = raw_topic(app, dead_letter or route.dead_letter)
        self.metrics = metrics
        self.publish_interval_s = publish_interval_s
        self._last_publish = time.monotonic()
        self.counts = FaustCounts()
        self.error: DeliveryFailed | None = None
        self.agent: Any = None
        self._runners: set[asyncio.Task] = set()
        self._acks = _InOrderAcks()

    # -------------------------------------------------------------------------------------------
    def protect(self, value: bytes | None) -> Outcome:
        """Run the route on one raw value (no I/O). Returns the :class:`Outcome`; never raises."""
        return self.route.process(value)

    async def handle(self, event: Any) -> Outcome:
        """Protect one faust event, send its outcome and acknowledge it once delivered.

        ``event`` is a ``faust.Event`` read from a ``noack()`` stream over :attr:`source_topic`
        (``event.value`` raw bytes or ``None``; ``event.message`` has topic, partition, offset,
        key and headers). Sink outcomes go to :attr:`sink_topic`, dead-letter outcomes (sealed)
        to :attr:`dead_letter_topic`; a blocked event is acknowledged at once. Returns the
        :class:`Outcome`. Raises :class:`DeliveryFailed` if an earlier send was refused.
        """
        if self.error is not None:
            raise self.error
        msg = event.message
        value = event.value
        if value is not None and not isinstance(value, (bytes, bytearray)):
            # A source topic declared with a codec would hand us decoded objects: refuse to guess.
            raise TypeError("the source topic must use raw bytes values (see raw_topic)")
        entry = self._acks.enter(event)
        src_headers = _headers_list(msg.headers)
        # the Kafka timestamp in ms (faust gives seconds), for retention.source: record_timestamp
        stamp = int(round(msg.timestamp * 1000)) if isinstance(msg.timestamp, (int, float)) and msg.timestamp > 0 else None
        out = self.route.process_record(value, msg.key, src_headers, stamp)
        self.counts.consumed += 1
        kind = out.kind
        if kind == SINK:
            headers = list(out.headers or [])
            headers.append(self._prov_header)
            fut = await self.sink_topic.send(key=out.key, value=out.value, headers=headers, force=True)
            self._track(fut, entry, "sink")
        elif kind == DEAD_LETTER:
            sealed, headers = envelope(self.route, self.provenance, msg.topic, msg.partition, msg.offset,
                                       value, out, msg.key, src_headers)
            fut = await self.dead_letter_topic.send(key=out.key, value=sealed, headers=headers, force=True)
            self._track(fut, entry, "dead_letter")
            self.counts.dead_letter_reasons[out.reason] = self.counts.dead_letter_reasons.get(out.reason, 0) + 1
            log.warning("record dead-lettered", extra={
                "route": self.route.name, "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                "stage": out.stage, "reason": out.reason, "rule": out.rule, "error_class": out.error_class})
        else:
            assert kind == BLOCK
            self.counts.blocked[out.reason] = self.counts.blocked.get(out.reason, 0) + 1
            self._acks.complete(entry)
        if self.metrics is not None and time.monotonic() - self._last_publish >= self.publish_interval_s:
            self.publish_metrics()
        return out

    def _track(self, fut: Any, entry: list, kind: str) -> None:
        """Complete ``entry`` (see :class:`_InOrderAcks`) when ``fut``, the producer's delivery
        future, succeeds; on failure record :class:`DeliveryFailed` and cancel the agent."""
        self.counts.pending += 1

        def done(f: asyncio.Future) -> None:
            self.counts.pending -= 1
            exc = None if f.cancelled() else f.exception()
            if f.cancelled() or exc is not None:
                self.counts.delivery_failures += 1
                if self.metrics is not None:
                    self.metrics.delivery_failures.labels(self.route.name, kind).inc()
                if self.error is None:
                    self.error = DeliveryFailed(
                        f"route {self.route.name}: the broker refused a {kind} record "
                        f"({'cancelled' if f.cancelled() else type(exc).__name__}); offsets not committed")
                    log.error("delivery failed", extra={"route": self.route.name, "topic_kind": kind,
                                                        "error_class": type(exc).__name__ if exc else "Cancelled"})
                    # Stop the agent now, not at its next event (there may be none for a while).
                    for task in list(self._runners):
                        if not task.done():
                            task.cancel()
                return  # never ack: the source offset must not be committed
            if kind == "sink":
                self.counts.produced += 1
            else:
                self.counts.dead_lettered += 1
            self._acks.complete(entry)

        fut.add_done_callback(done)

    def publish_metrics(self) -> None:
        """Move the route's counters (:class:`~proxy.policy.compiler.RouteStats`) into ``metrics``.

        No-op without metrics. ``dpp_records_produced_total`` counts records the route sent to the
        sink (faust acknowledges delivery asynchronously; :attr:`counts` has the acknowledged
        figures, and a refused record stops the agent).
        """
        self._last_publish = time.monotonic()
        if self.metrics is not None:
            self.metrics.publish(self.route, self.route.stats.drain())

    async def run(self, stream: Any) -> None:
        """Agent body: protect every event of ``stream`` (a faust stream over :attr:`source_topic`).

        Raises :class:`DeliveryFailed` (stopping the agent, offsets not committed past the failed
        record) as soon as the broker refuses a record: the delivery callback cancels this task and
        the cancellation is turned into the :class:`DeliveryFailed`.
        """
        task = asyncio.current_task()
        if task is not None:
            self._runners.add(task)
        try:
            async for event in stream.noack().events():
                await self.handle(event)
        except asyncio.CancelledError:
            if self.error is not None:
                raise self.error from None
            raise
        finally:
            self._runners.discard(task)
            self.publish_metrics()


def protect_stream(app: "faust.App", policy: CompiledPolicy | CompiledRoute, route: str | None = None, *,
                   provenance: str | None = None, source: str | None = None, sink: str | None = None,
                   dead_letter: str | None = None, metrics: "Metrics | None" = None,
                   agent_name: str | None = None, publish_interval_s: float = 1.0,
                   crash_worker: bool = True) -> FaustRouteProtector:
    """Register a faust agent on ``app`` that protects a route's source topic into its sink.

    Args:
        app: an existing ``faust.App``; call before the worker starts (at import time of the app module).
        policy: a :class:`CompiledPolicy` (then ``route`` names the route, optional if it has one,
            and the provenance comes from the policy) or a single :class:`CompiledRoute` (then
            ``provenance`` is required).
        source / sink / dead_letter: topic names overriding the route's.
        metrics: optional :class:`proxy.metrics.Metrics` to publish the route's counters to (serve it
            with ``metrics.serve(port)``).
        agent_name: the faust agent's name (default ``dpp-<route name>``).
        crash_worker: on :class:`DeliveryFailed`, stop the whole worker (mode's ``CrashingSupervisor``)
            so the process supervisor (Kubernetes, systemd) restarts it and the uncommitted records
            are consumed again. ``False``: faust's default supervisor restarts the agent, which
            refuses every event from then on (the worker keeps running, the route makes no progress).

    Returns the :class:`FaustRouteProtector` (its ``agent`` attribute is the faust agent).
    Raises ``KeyError`` for an unknown route, ``ValueError`` when provenance is missing.
    """
    if isinstance(policy, CompiledPolicy):
        compiled = policy.route(route)
        provenance = provenance or policy.provenance
        if metrics is not None:
            metrics.register_policy(policy)
    else:
        compiled = policy
        if route is not None and route != compiled.name:
            raise KeyError(f"route {route!r} given with a compiled route named {compiled.name!r}")
    protector = FaustRouteProtector(app, compiled, provenance=provenance or "", source=source, sink=sink,
                                    dead_letter=dead_letter, metrics=metrics,
                                    publish_interval_s=publish_interval_s)

    async def dpp_protect(stream: Any) -> None:
        await protector.run(stream)

    dpp_protect.__name__ = dpp_protect.__qualname__ = (agent_name or f"dpp-{compiled.name}").replace("-", "_")
    supervisor = None
    if crash_worker:
        from mode import CrashingSupervisor  # faust's service library
        supervisor = CrashingSupervisor
    protector.agent = app.agent(protector.source_topic, name=agent_name or f"dpp-{compiled.name}",
                                supervisor_strategy=supervisor)(dpp_protect)
    if metrics is not None:
        async def dpp_publish_metrics() -> None:
            protector.publish_metrics()
        # Publish also while the stream is idle, so the last records of a burst show up.
        app.timer(publish_interval_s, name=f"dpp-metrics-{compiled.name}")(dpp_publish_metrics)
    return protector


def protect_streams(app: "faust.App", policy: CompiledPolicy, routes: Iterable[str] | None = None,
                    metrics: "Metrics | None" = None) -> list[FaustRouteProtector]:
    """:func:`protect_stream` for every route of ``policy`` (or those named in ``routes``)."""
    names = list(routes) if routes is not None else [r.name for r in policy.routes]
    return [protect_stream(app, policy, n, metrics=metrics) for n in names]
