"""The incident switch: ``dpp halt ROUTE`` / ``dpp resume ROUTE`` through a compacted control topic.

Control topic (default ``dpp.control``; one partition, ``cleanup.policy=compact``): record key = the
route name (UTF-8), value = JSON ``{"route": NAME, "state": "halted" | "running", "reason": TEXT,
"actor": TEXT, "at": ISO 8601 UTC}``; the last record of a route is its state (compaction keeps it).
Each switch is also appended to the audit topic (default ``dpp.audit``) as one JSON document
``{"ts", "action": "halt" | "resume", "route", "reason", "actor", "policy", "control_topic"}``.

Every ``dpp run`` process reads the control topic with a consumer of its own (partition assigned,
no consumer group offsets committed), to its end before any route processes a record, then every
``poll_s`` (0.5 s) on a thread. While a route is halted its worker produces and commits nothing
(:class:`proxy.stream.engine.RouteWorker`). A control topic that does not exist yet means no route
is halted (``dpp halt`` creates it); a record that is not a valid control document is logged and
ignored (the route's earlier state stands). The reason and actor are operator text: never logged
by the workers, never in a metric label.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
import time

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from .clientconfig import client_config
from .follower import TopicFollower

log = logging.getLogger("proxy.control")

CONTROL_TOPIC = "dpp.control"
AUDIT_TOPIC = "dpp.audit"
CONTROL_CONFIG = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "segment.ms": "60000"}
"""Configuration of the control topic (created by ``dpp halt``/``dpp resume`` when missing)."""
STATES = ("halted", "running")


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds (``2026-12-07T10:00:00.000+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def control_doc(route: str, state: str, reason: str, actor: str, at: str | None = None) -> dict:
    """The control record's value (before JSON encoding). Raises ``ValueError`` for a state
    other than ``halted``/``running`` or an empty route name."""
    if state not in STATES or not route:
        raise ValueError("state must be halted or running, with a route name")
    return {"route": route, "state": state, "reason": reason, "actor": actor, "at": at or now_iso()}


def parse_control(key: bytes | None, value: bytes | None) -> dict | None:
    """The control document of a record, or ``None`` when it is not one (tombstone, bad JSON,
    another state, a key that is not its route)."""
    if key is None or value is None:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if (type(doc) is not dict or doc.get("state") not in STATES or type(doc.get("route")) is not str
            or doc["route"].encode() != key):
        return None
    return doc


def write_switch(bootstrap: str, route: str, state: str, reason: str, actor: str, *, policy: str,
                 control_topic: str = CONTROL_TOPIC, audit_topic: str = AUDIT_TOPIC,
                 timeout_s: float = 30.0) -> dict:
    """Write one switch: the control record (key ``route``), then its audit record, each
    acknowledged by the broker (``acks=all``, idempotent). Creates the control topic (compacted,
    one partition) and the audit topic (one partition) when missing. Returns the control
    document. Raises ``RuntimeError`` when a record is not acknowledged."""
    from .admin import ensure_topics
    ensure_topics(bootstrap, {control_topic: 1}, configs={control_topic: CONTROL_CONFIG})
    ensure_topics(bootstrap, {audit_topic: 1})
    doc = control_doc(route, state, reason, actor)
    audit = {"ts": doc["at"], "action": "halt" if state == "halted" else "resume", "route": route,
             "reason": reason, "actor": actor, "policy": policy, "control_topic": control_topic}
    p = Producer({**client_config(bootstrap), "enable.idempotence": True, "acks": "all"})
    for topic, value in ((control_topic, doc), (audit_topic, audit)):
        errs: list = []
        p.produce(topic, orjson.dumps(value), route.encode(), on_delivery=lambda e, m: errs.append(e) if e else None)
        if p.flush(timeout_s) or errs:
            raise RuntimeError(f"switch record not acknowledged by {topic}")
    return doc


class ControlReader(TopicFollower):
    """Follows the control topic: :meth:`halted` answers from memory. Thread-safe.

    ``start()`` starts a thread that reads to the end (then :attr:`caught_up` is set; routes wait
    for it with :meth:`wait_caught_up`), then polls every ``poll_s`` seconds until :meth:`close`
    (:class:`~proxy.stream.follower.TopicFollower`). :attr:`changes` counts applied records."""

    kind = "control"
    wait_level = logging.WARNING

    def __init__(self, bootstrap: str, topic: str = CONTROL_TOPIC, *, poll_s: float = 0.5, timeout_s: float = 30.0):
        super().__init__(topic, timeout_s)
        self.poll_s = self.follow_poll_s = poll_s
        self.states: dict[str, dict] = {}
        self.changes = 0
        self._lock = threading.Lock()
        self._consumer = Consumer({**client_config(bootstrap), "group.id": "dpp-control-reader",
                                   "enable.auto.commit": False, "enable.partition.eof": True,
                                   "topic.metadata.refresh.interval.ms": 5000})
        self._consumer.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING; never committed
        self._consumers = [self._consumer]
        self._next = 0

    def catch_up(self) -> None:
        """Read until the high watermark at call time (none: the topic does not exist yet)."""
        try:
            _, hi = self._consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=min(self.timeout, 2.0))
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION):
                return
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                # the workers may not read it (no ACL): fail closed, the routes wait until they may
                # (a halt written there must not go unseen); --control-topic '' turns the switch off
                if self.error != err.name():
                    log.error("control topic not readable: routes wait (grant Read on it, or run with "
                              "--control-topic '')", extra={"topic": self.topic, "error_class": err.name()})
                self.error = err.name()
            raise
        deadline = time.monotonic() + self.timeout
        while self._next < hi:
            if time.monotonic() > deadline:
                raise TimeoutError(f"control topic {self.topic} not read to its end in {self.timeout} s")
            self._poll(0.2)

    def _poll(self, timeout: float) -> None:
        for m in self._consumer.consume(100, timeout):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._next = max(self._next, m.offset())
                elif err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                    pass  # the reader's group id is never used (no commits, explicit offsets): no ACL needed
                elif err.code() not in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION):
                    if self.error != err.name():
                        log.error("control topic not readable: halts are not seen meanwhile",
                                  extra={"topic": self.topic, "error_class": err.name()})
                    self.error = err.name()
                continue
            self.error = None
            self._next = m.offset() + 1
            doc = parse_control(m.key(), m.value())
            if doc is None:
                log.warning("not a control record: ignored", extra={"topic": self.topic, "offset": m.offset()})
                continue
            with self._lock:
                self.states[doc["route"]] = doc
                self.changes += 1

    def halted(self, route: str) -> dict | None:
        """The control document halting ``route``, or ``None`` when it runs."""
        with self._lock:
            doc = self.states.get(route)
        return doc if doc is not None and doc["state"] == "halted" else None
