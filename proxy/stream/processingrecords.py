"""Records of processing (PIPL Art. 55-56): each ``dpp run`` worker writes, per route, one JSON
document to the audit topic (default ``dpp.audit``) every ``interval_s`` (``--processing-record-interval``,
60 s) and at shutdown.

The counts are the drained :class:`proxy.policy.compiler.RouteStats` that
:meth:`proxy.metrics.Metrics.publish` adds to the Prometheus counters (the recorder is one of its
``listeners``), so a run's windows sum to its metrics by construction. Each document holds the
window's deltas: summing the windows of a run gives the run's totals. A window whose document
the broker did not acknowledge is kept and merged into the next one (nothing lost; its start
stays); at shutdown the last window is written after the routes stopped (flushed before close).

Document (one per route and window; record key = the route name)::

    {"type": "processing", "version": 1,
     "window": {"start": ISO 8601 UTC, "end": ISO 8601 UTC},
     "worker": "HOST:PID" | the --instance-id, "route": NAME, "purpose": SLUG | "",
     "policy": {"name": NAME, "revision": REV, "sha256": HEX, "provenance": "NAME@REV"},
     "keys": {KEY_NAME: VERSION, ...},                  # names and versions, never material
     "records": {"consumed": N, "produced": N,
                 "blocked": {REASON: N, ...}, "dead_lettered": {REASON: N, ...}},
     "transforms": [{"rule": LABEL, "action": ACTION, "count": N}, ...],   # non-zero only
     "final": true | false}                             # true: written at shutdown

A policy hot-reloaded within a window splits it: the counts of batches processed under each
revision go to a document of their own (same window). No value of a record is ever in a
document; labels come from the policy (route, rule, action, block reason) or the bounded
dead-letter reason codes (:class:`proxy.errors.Reason`).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Iterator

import orjson
from confluent_kafka import Producer

from ..policy.compiler import CompiledPolicy, CompiledRoute, RouteStats
from ..report import Totals
from .clientconfig import client_config
from .control import AUDIT_TOPIC, now_iso

log = logging.getLogger("proxy.processingrecords")

DEFAULT_INTERVAL_S = 60.0


def default_worker_id(instance_id: str | None = None) -> str:
    """``instance_id`` when given, else ``HOST:PID``."""
    return instance_id or f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Window(Totals):
    """Counts of one route under one policy revision since ``start`` (ISO 8601)."""

    start: str = ""
    route: CompiledRoute | None = None
    policy: CompiledPolicy | None = None

    def add_stats(self, stats: RouteStats, produced: int | None = None) -> None:
        """Add one drained batch, exactly as :meth:`proxy.metrics.Metrics.publish` does."""
        labels, actions = self.route.rule_labels, self.route.rule_actions
        self.add({"consumed": stats.consumed, "produced": stats.produced if produced is None else produced,
                  "blocked": stats.blocked, "dead_lettered": stats.dead_lettered},
                 [{"rule": labels[i], "action": actions[i], "count": n} for i, n in enumerate(stats.transforms) if n])

    def merge(self, other: "Window") -> None:
        """Add ``other``'s counts (a window not acknowledged, carried into the next one)."""
        super().merge(other)
        self.start = min(self.start, other.start)

    def document(self, end: str, worker: str, final: bool = False) -> dict:
        """The processing record of this window (shape: module doc)."""
        lp = self.policy.loaded
        return {"type": "processing", "version": 1, "window": {"start": self.start, "end": end},
                "worker": worker, "route": self.route.name, "purpose": self.route.purpose,
                "policy": {"name": lp.policy.name, "revision": lp.revision, "sha256": lp.sha256,
                           "provenance": lp.provenance},
                "keys": dict(self.route.key_versions),
                "records": {"consumed": self.consumed, "produced": self.produced,
                            "blocked": dict(self.blocked), "dead_lettered": dict(self.dead_lettered)},
                "transforms": [{"rule": r, "action": a, "count": n} for (r, a), n in self.transforms.items()],
                "final": final}


class ProcessingRecorder:
    """Collects the published stats of every route and writes the processing records.

    ``send(docs) -> bool`` writes the documents (default: :meth:`_produce` to ``topic`` on
    ``bootstrap``, acknowledged within ``timeout_s``); a ``False`` keeps the windows for the next
    attempt. Thread-safe:
    :meth:`on_publish` runs on the route threads, :meth:`flush` on the recorder's own."""

    def __init__(self, policy: CompiledPolicy, *, bootstrap: str | None = None, topic: str = AUDIT_TOPIC,
                 interval_s: float = DEFAULT_INTERVAL_S, worker: str | None = None, send=None,
                 clock=now_iso, timeout_s: float = 10.0):
        self.topic, self.interval_s, self.timeout_s = topic, interval_s, timeout_s
        self.worker = worker or default_worker_id()
        self.clock = clock
        self._bootstrap = bootstrap
        self._producer: Producer | None = None
        self._send = send or self._produce
        self._lock = threading.Lock()
        self._policy_of: dict[int, tuple[CompiledRoute, CompiledPolicy]] = {}
        self._windows: dict[tuple[str, str], Window] = {}
        self._start = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        """Documents acknowledged so far."""
        self.set_policy(policy)

    def set_policy(self, policy: CompiledPolicy) -> None:
        """The policy now in force (start, hot reload): its routes' batches count under its revision.
        Windows with no counts yet are opened for every route, so each route reports every window."""
        with self._lock:
            keep = {id(r): (r, p) for r, p in self._policy_of.values() if p is self._current} \
                if self._policy_of else {}
            self._current = policy
            self._policy_of = {**keep, **{id(r): (r, policy) for r in policy.routes}}
            for r in policy.routes:
                self._window(r, policy)

    _current: CompiledPolicy | None = None

    def _window(self, route: CompiledRoute, policy: CompiledPolicy) -> Window:
        key = (route.name, policy.provenance)
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = Window(start=self._start, route=route, policy=policy)
        return w

    def on_publish(self, route: CompiledRoute, stats: RouteStats, produced: int | None = None) -> None:
        """:class:`proxy.metrics.Metrics` listener: add one drained batch of ``route``."""
        with self._lock:
            _, policy = self._policy_of.get(id(route), (route, self._current))
            self._window(route, policy).add_stats(stats, produced)

    def flush(self, final: bool = False) -> bool:
        """Write one document per open window (ends now) and open the next windows. Returns
        whether the broker acknowledged them (else they are carried into the next window)."""
        with self._lock:
            end = self.clock()
            windows, self._windows, self._start = self._windows, {}, end
            for r in self._current.routes:
                self._window(r, self._current)
        docs = [w.document(end, self.worker, final) for w in windows.values()]
        if not docs:
            return True
        ok = False
        try:
            ok = self._send(docs)
        except Exception as e:  # noqa: BLE001 - a broker outage must not stop the routes
            log.error("processing records not written", extra={"topic": self.topic, "error_class": type(e).__name__})
        if ok:
            self.written += len(docs)
            return True
        with self._lock:  # carried over: the next window starts where the lost one did
            for key, w in windows.items():
                nxt = self._windows.get(key)
                if nxt is None:
                    self._windows[key] = w
                else:
                    nxt.merge(w)
        log.warning("processing records not acknowledged: kept for the next window",
                    extra={"topic": self.topic, "documents": len(docs)})
        return False

    def _produce(self, docs: list[dict]) -> bool:
        if self._producer is None:
            from confluent_kafka import KafkaException

            from .admin import ensure_topics
            try:  # one partition, like dpp halt creates it; a principal without Create needs it to exist
                ensure_topics(self._bootstrap, {self.topic: 1}, timeout_s=self.timeout_s)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                log.warning("audit topic not created (it must exist, or be created by the broker)",
                            extra={"topic": self.topic, "error_class": err.name() if hasattr(err, "name") else
                                   type(e).__name__})
            self._producer = Producer({**client_config(self._bootstrap), "enable.idempotence": True, "acks": "all",
                                       "linger.ms": 5})
        errs: list = []
        for d in docs:
            self._producer.produce(self.topic, orjson.dumps(d), d["route"].encode(),
                                   on_delivery=lambda e, m: errs.append(e) if e else None)
        return self._producer.flush(self.timeout_s) == 0 and not errs

    def start(self) -> "ProcessingRecorder":
        """Write a window every ``interval_s`` on a thread, until :meth:`close`."""
        self._thread = threading.Thread(target=self._loop, name="dpp-processing-records", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self, attempts: int = 2) -> bool:
        """Stop the thread and write the last window (``final``), retrying ``attempts`` times.
        Call after the routes stopped (their last batches published). Returns whether written.
        A worker that consumed nothing and never wrote a window writes nothing (it may not even
        reach the broker)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 5)
        with self._lock:
            idle = self.written == 0 and all(w.empty for w in self._windows.values())
        if idle:  # nothing processed and nothing written (e.g. a worker that could not log in): nothing to record
            return True
        ok = any(self.flush(final=True) for _ in range(attempts))
        if not ok:
            log.error("last processing records lost: the audit topic did not acknowledge them",
                      extra={"topic": self.topic})
        return ok


def read_audit(bootstrap: str, topic: str = AUDIT_TOPIC, timeout_s: float = 10.0) -> Iterator[dict]:
    """Every JSON object on the audit topic (all partitions, up to the high watermarks at call
    time; no consumer group offsets committed), for ``dpp report``. Records that are not a JSON
    object are skipped. Raises ``LookupError`` (at once) when the topic does not exist."""
    from .admin import partition_count
    n = partition_count(bootstrap, topic)
    if not n:
        raise LookupError(f"audit topic {topic} does not exist")
    return _read_audit(bootstrap, topic, n, timeout_s)


def _read_audit(bootstrap: str, topic: str, partitions: int, timeout_s: float) -> Iterator[dict]:
    from .read import read_range
    for p in range(partitions):
        for _, _, value, _ in read_range(bootstrap, topic, p, 0, None, timeout_s=timeout_s):
            try:
                doc = orjson.loads(value or b"")
            except orjson.JSONDecodeError:
                continue
            if type(doc) is dict:
                yield doc
