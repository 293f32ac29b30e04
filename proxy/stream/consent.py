"""The consent topic on Kafka: a reader that fills a :class:`proxy.policy.consent.ConsentTable`, and
``dpp consent grant|withdraw|show``.

Format of the topic: :mod:`proxy.policy.consent` (key = subject id, value = the subject's whole
consent state; compacted). Every ``dpp run`` process keeps one :class:`ConsentReader` per consent
topic its routes name: it reads every partition from the beginning (no consumer group offsets), to
the end before any of those routes processes a record (``/readyz`` says ``consent topic`` meanwhile),
then follows it on a thread. Before each batch the route calls :meth:`ConsentReader.sync`: the
partitions' end offsets are read from the broker and the batch waits until the table holds every
consent record up to them. So a withdrawal the broker acknowledged before a record was written to
the source topic always applies to that record, on every worker of the group; a consent topic that
cannot be read (missing, no ACL, broker down) stops the route's output and commits
(:class:`proxy.errors.DependencyUnavailable`), never passes records unchecked.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ..errors import DependencyUnavailable
from ..policy import consent as cs
from .clientconfig import client_config
from .follower import TopicFollower

log = logging.getLogger("proxy.consent")

CONSENT_CONFIG = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"}
"""Configuration of a consent topic created by ``dpp consent`` or ``dpp run --create-topics``."""


class ConsentReader(TopicFollower):
    """Follows one consent topic into :attr:`table`. Thread-safe.

    :meth:`start` starts the thread (read to the end, set :attr:`caught_up`, then follow);
    :meth:`sync` is the per-batch barrier; :attr:`applied` counts records applied, :attr:`unreadable`
    records that were not consent documents, :attr:`lag_s` the seconds between each applied
    record's Kafka timestamp and its application (the last 1,000, for metrics and tests)."""

    kind = "consent"

    def __init__(self, bootstrap: str, topic: str, table: cs.ConsentTable | None = None, *,
                 purposes: tuple[str, ...] = (), timeout_s: float = 30.0, metrics=None):
        super().__init__(topic, timeout_s)
        self.metrics = metrics
        self.table = table if table is not None else cs.ConsentTable()
        for p in purposes:  # the routes' purposes always get a bit (MAX_PURPOSES)
            self.table.purpose_index(p)
        self.applied = self.unreadable = 0
        self.lag_s: list[float] = []
        self._next: dict[int, int] = {}
        self._cond = threading.Condition()
        conf = {**client_config(bootstrap), "group.id": "dpp-consent-reader", "enable.auto.commit": False,
                "enable.partition.eof": True, "fetch.wait.max.ms": 50, "topic.metadata.refresh.interval.ms": 10000}
        self._consumer = Consumer(conf)
        self._query = Consumer(conf)  # end offsets for sync(), from the route threads
        self._consumers = [self._consumer, self._query]
        self._last_md = 0.0  # when the partitions were last looked up (time.monotonic())
        self._query_lock = threading.Lock()
        self._partitions: list[int] = []

    def __repr__(self) -> str:
        return f"ConsentReader(topic={self.topic!r}, subjects={len(self.table)})"

    # ------------------------------------------------------------------------------- reading
    def _assign(self) -> None:
        md = self._consumer.list_topics(self.topic, timeout=min(self.timeout, 5.0)).topics.get(self.topic)
        if md is None or md.error is not None or not md.partitions:
            code = md.error.code() if md is not None and md.error is not None else KafkaError.UNKNOWN_TOPIC_OR_PART
            raise KafkaException(KafkaError(code))
        parts = sorted(md.partitions)
        if parts != self._partitions:
            new = [p for p in parts if p not in self._partitions]
            self._consumer.incremental_assign([TopicPartition(self.topic, p, -2) for p in new])  # OFFSET_BEGINNING
            with self._cond:
                for p in new:
                    self._next.setdefault(p, 0)
            self._partitions = parts

    def _ends(self) -> dict[int, int]:
        """Each partition's end offset (high watermark) now, read from the broker."""
        with self._query_lock:
            return {p: self._query.get_watermark_offsets(TopicPartition(self.topic, p), timeout=min(self.timeout, 5.0),
                                                         cached=False)[1] for p in self._partitions}

    def _poll(self, timeout: float) -> None:
        for m in self._consumer.consume(500, timeout):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    with self._cond:
                        self._next[m.partition()] = max(self._next.get(m.partition(), 0), m.offset())
                        self._cond.notify_all()
                elif err.code() != KafkaError.GROUP_AUTHORIZATION_FAILED:  # the reader's group id is never used
                    if self.error != err.name():
                        log.error("consent topic not readable", extra={"topic": self.topic, "error_class": err.name()})
                    self.error = err.name()
                continue
            self.error = None
            self._apply(m)
            with self._cond:
                self._next[m.partition()] = m.offset() + 1
                self._cond.notify_all()

    def _apply(self, m) -> None:
        try:
            subject, purposes = cs.parse_consent(m.key(), m.value())
        except cs.ConsentFormatError as e:
            self.unreadable += 1
            key = m.key()
            outcome = "unreadable"
            if key is not None:
                try:
                    subject = key.decode("utf-8")
                except UnicodeDecodeError:
                    subject = ""
                if 0 < len(subject) <= cs.MAX_SUBJECT_CHARS:
                    self.table.mark_unreadable(subject)  # nothing granted until a valid record follows
                else:
                    outcome = "ignored"
            else:
                outcome = "ignored"
            log.warning("not a consent record: the subject counts as not consenting" if outcome == "unreadable"
                        else "not a consent record (no usable key): ignored",
                        extra={"topic": self.topic, "partition": m.partition(), "offset": m.offset(),
                               "problem": str(e)})
            if self.metrics is not None:
                self.metrics.consent_updates.labels(self.topic, outcome).inc()
            return
        self.table.apply(subject, purposes)
        self.applied += 1
        kind, ts = m.timestamp()
        if kind and ts > 0:
            lag = max(0.0, time.time() - ts / 1000)
            self.lag_s.append(lag)
            if len(self.lag_s) > 1000:
                del self.lag_s[:500]
            if self.metrics is not None and self.caught_up.is_set():
                self.metrics.consent_apply_lag.labels(self.topic).observe(lag)
        if self.metrics is not None:
            self.metrics.consent_updates.labels(self.topic, "applied").inc()

    def _read_to(self, ends: dict[int, int], deadline: float, poll: bool) -> bool:
        """Wait until every partition is read up to ``ends`` (``poll``: read on this thread)."""
        while True:
            with self._cond:
                if all(self._next.get(p, 0) >= o for p, o in ends.items()):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if not poll:
                    self._cond.wait(min(left, 0.5))
                    continue
            self._poll(min(left, 0.2))

    def catch_up(self) -> None:
        """Assign the partitions and read them to their end offsets at call time. Raises
        ``KafkaException`` (topic missing, not authorized) or ``TimeoutError``."""
        self._assign()
        if not self._read_to(self._ends(), time.monotonic() + self.timeout, poll=True):
            raise TimeoutError(f"consent topic {self.topic} not read to its end in {self.timeout} s")

    def _caught_up(self) -> None:
        self._gauge()
        self._last_md = time.monotonic()
        log.info("consent topic read", extra={"topic": self.topic, "subjects": len(self.table),
                                              "on_disk": self.table.on_disk})

    def _tick(self) -> None:
        if time.monotonic() - self._last_md > 10:  # partitions added to the topic
            self._last_md = time.monotonic()
            self._assign()
            self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.consent_subjects.labels(self.topic).set(len(self.table))

    def sync(self, timeout_s: float | None = None) -> None:
        """The per-batch barrier: read the partitions' end offsets now and wait until the table
        holds every record up to them. Raises :class:`DependencyUnavailable` (``consent-topic``)
        when the offsets cannot be read or the reader does not get there within ``timeout_s``
        (default: the reader's timeout)."""
        try:
            ends = self._ends()
        except KafkaException as e:
            err = e.args[0] if e.args else None
            raise DependencyUnavailable("consent-topic", err.name() if isinstance(err, KafkaError) else "") from None
        if not self._read_to(ends, time.monotonic() + (timeout_s or self.timeout), poll=False):
            raise DependencyUnavailable("consent-topic", "not read up to its end offsets")
        self._gauge()

    def close(self) -> None:
        super().close()
        self.table.close()


# --------------------------------------------------------------------------- dpp consent
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def current_state(bootstrap: str, topic: str, subject: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The subject's purposes in the topic now (``{}`` when it has no valid record): the last
    record of its key, read from the beginning of every partition to their end offsets."""
    c = Consumer({**client_config(bootstrap), "group.id": "dpp-consent-cli", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        md = c.list_topics(topic, timeout=min(timeout_s, 10.0)).topics.get(topic)
        if md is None or md.error is not None:
            return {}
        key, found = subject.encode("utf-8"), {}
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in md.partitions}
        todo = {p for p, e in ends.items() if e > 0}
        c.assign([TopicPartition(topic, p, -2) for p in todo])
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"consent topic {topic} not read to its end in {timeout_s} s")
            for m in c.consume(1000, 0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        todo.discard(m.partition())
                    continue
                if m.offset() + 1 >= ends[m.partition()]:
                    todo.discard(m.partition())
                if m.key() == key:
                    try:
                        _, purposes = cs.parse_consent(m.key(), m.value())
                    except cs.ConsentFormatError:
                        purposes = {}
                    found = {n: ("granted" if s == cs.GRANTED else "withdrawn") for n, s in (purposes or {}).items()}
        return found
    finally:
        c.close()


def write_consent(bootstrap: str, topic: str, subject: str, purpose: str, state: str, *,
                  partitions: int = 1, timeout_s: float = 30.0) -> dict:
    """Set one purpose of a subject: read its current state, write the whole new state (acks=all,
    keyed by subject with the Java client's murmur2 partitioner, so records written here and by a
    Java producer land in the same partition). Creates the topic (compacted, ``partitions``) when
    missing. Returns the document written. Raises ``ValueError`` for a bad state or subject,
    ``RuntimeError`` when the broker does not acknowledge."""
    if state not in cs.STATES:
        raise ValueError("state must be granted or withdrawn")
    if not subject or len(subject) > cs.MAX_SUBJECT_CHARS:
        raise ValueError(f"a subject id has 1 to {cs.MAX_SUBJECT_CHARS} characters")
    from .admin import ensure_topics
    ensure_topics(bootstrap, {topic: partitions}, configs={topic: CONSENT_CONFIG})
    purposes = current_state(bootstrap, topic, subject, timeout_s)
    purposes[purpose] = state
    value = cs.consent_document(subject, purposes, _now())
    p = Producer({**client_config(bootstrap), "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random"})
    errs: list = []
    p.produce(topic, value, subject.encode("utf-8"), on_delivery=lambda e, m: errs.append(e) if e else None)
    if p.flush(timeout_s) or errs:
        raise RuntimeError(f"consent record not acknowledged by {topic}")
    return {"subject": subject, "purposes": purposes}
