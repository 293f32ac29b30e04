"""The stream engine on confluent-kafka (librdkafka): one consumer group per route, batch loop.

For each batch: consume up to ``batch_size`` records, run the compiled route on each, produce to
the sink (with a ``dpp-policy`` provenance header) or the dead-letter topic (sealed envelope), wait
until the broker acknowledged every produced record, and only then commit the batch's offsets
(at-least-once, nothing lost). A produce the broker refuses is retried; if it still fails the
worker stops without committing, so the records are consumed again after a restart.

Record size: at start the worker reads the sink and dead-letter topics' ``max.message.bytes``. A
protected record larger than the sink accepts goes to the dead-letter topic instead (reason
``too-large``); one too large for the dead-letter topic even sealed becomes a stub without payload
(:func:`proxy.stream.deadletter.stub`). Should the broker still refuse a record as too large (its
limit was lowered since, or could not be read), the worker reads the limits again (or, when they
did not change, lowers the topic's limit below the refused record's size), rewinds to the batch's
first offsets without committing and processes the batch again, so the record is dead-lettered
and the topic goes on. Retriable coordinator errors (the group
coordinator still loading after a broker start) are retried with backoff; ``/readyz`` is false
meanwhile.

Keys and headers pass through unchanged unless the route has ``key:``/``headers:`` rules
(:mod:`proxy.policy.parts`); a tombstone (``None`` value) stays a tombstone. The sink producer
partitions by the (protected) key with librdkafka's ``murmur2_random`` partitioner, the Java
client's default murmur2 hash, so Java and Python producers and consumers agree on which partition
a key belongs to.
SIGTERM/SIGINT (via :meth:`Engine.stop`) lets the in-flight batch finish and commit.
"""
from __future__ import annotations

import gc
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from .clientconfig import client_config

from ..errors import DependencyUnavailable, Reason, Stage
from ..metrics import Metrics
from ..policy.compiler import DEAD_LETTER, SINK, CompiledPolicy, CompiledRoute, Outcome
from .admin import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, max_message_bytes
from .deadletter import envelope, stub

log = logging.getLogger("proxy.stream")

_RDKAFKA_LOG = logging.getLogger("proxy.librdkafka")
"""librdkafka's own log lines go through Python logging, so they come out as JSON lines too."""

PROVENANCE_HEADER = "dpp-policy"
SUBJECT_HEADER = "dpp-subject"
"""Header with the keyed reference of the record's data subject on crypto-shredding routes."""
KEY_VERSIONS_HEADER = "dpp-key-versions"
"""Header naming the key version each key used by the route had, e.g. ``fpe=2,pseudonym=1``."""


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings. ``consumer``/``producer`` are extra librdkafka properties merged last."""

    bootstrap_servers: str
    batch_size: int = 1000
    poll_timeout_s: float = 0.5
    batch_linger_s: float = 0.005
    """After a wait for the first record of a batch: at most how long to gather more before
    processing (amortizes the per-batch flush, commit and metrics); the wait adapts to the arrival
    rate (:class:`AdaptiveLinger`), so light load gets no wait at all."""
    batch_linger_adaptive: bool = True
    """``False``: always wait up to ``batch_linger_s`` after the first record (``dpp run
    --batch-linger fixed``, the behaviour before :class:`AdaptiveLinger`; for A/B measurements)."""
    linger_min_gain: int = 16
    """:class:`AdaptiveLinger`: wait for more records only when at least this many are expected
    within ``batch_linger_s`` at the measured arrival rate."""
    max_produce_attempts: int = 5
    instance_id: str | None = None
    """Exactly-once routes: this worker's stable name among the route's live workers (default: the
    host name); the producer's ``transactional.id`` is ``dpp.<group>.<instance>``."""
    transaction_timeout_s: float = 60.0
    """Exactly-once routes: how long the broker keeps a transaction of a worker that died open
    (until its restart with the same instance id aborts it sooner)."""
    consumer: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    control_topic: str | None = None
    """The incident switch's control topic (:mod:`proxy.stream.control`; ``dpp run`` default
    ``dpp.control``), read to its end before any route starts; ``None``: no switch."""
    consent_memory_subjects: int = 1_000_000
    """Subjects a consent table holds in memory (about 100 bytes each); further subjects go to an
    on-disk store under ``consent_spill_dir`` (:class:`proxy.policy.consent.ConsentTable`)."""
    consent_spill_dir: str | None = None
    """Directory of the consent tables' on-disk stores (default: a temporary directory per table)."""
    audit_topic: str | None = None
    """Where the records of processing go (:mod:`proxy.stream.processingrecords`; ``dpp run``
    default ``dpp.audit``); ``None``: none written."""
    processing_record_interval_s: float = 60.0
    """Seconds per processing-record window (one document per route and window, and at shutdown)."""
    data_plane: str = "python"
    """Which data plane runs a route's records (:mod:`proxy.stream.nativeworker`): ``auto`` (the
    native plane where the route is eligible, else the Python worker), ``python``, or ``native``
    (a route that is not eligible fails at start, with the reason)."""


_REBALANCE_COMMIT_ERRORS = frozenset({KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                                      KafkaError.UNKNOWN_MEMBER_ID, KafkaError._ASSIGNMENT_LOST})
"""Commit errors that mean "the group is rebalancing", not "the worker is broken"."""


_TOO_LARGE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
"""Produce errors that mean "this record (batch) is larger than the topic accepts": not retriable."""

_COORDINATOR_ERRORS = frozenset({KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                 KafkaError.NOT_COORDINATOR, KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT,
                                 KafkaError._TRANSPORT, KafkaError._WAIT_COORD, KafkaError.NETWORK_EXCEPTION})
"""Commit and transaction errors that pass once the group or transaction coordinator is up
(a broker that is starting, a coordinator moving to another broker)."""

_RECORD_OVERHEAD = 61 + 36
"""Upper bound of what a record batch of one record adds to its key and value (KIP-98 v2 format:
a 61-byte batch header; length, attributes, timestamp and offset deltas, key and value lengths and
header count as varints); each header adds at most 10 bytes to its name and value."""


def record_size(key: bytes | None, value: bytes | None, headers: list | None) -> int:
    """Upper bound, in bytes, of a one-record batch holding this record uncompressed (what the
    broker compares with ``max.message.bytes``)."""
    n = _RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    for name, v in headers or ():
        n += 10 + (len(name.encode("utf-8", "surrogateescape")) if type(name) is str else len(name)) \
            + (len(v) if v else 0)
    return n


def retry_coordinator(what: str, fn: Callable[[], Any], stop: threading.Event,
                      waiting: Callable[[bool], None] = lambda on: None, extra: dict | None = None,
                      first_delay_s: float = 0.2, max_delay_s: float = 5.0) -> Any:
    """Run ``fn`` (a commit, ``init_transactions``), retrying the errors of a coordinator that is
    loading or moving (:data:`_COORDINATOR_ERRORS`, not fatal) with exponential backoff and
    jitter (``first_delay_s`` doubling to ``max_delay_s``, each wait 50-100 % of it) until it
    succeeds; ``waiting(True)`` before the first wait, ``waiting(False)`` after a success that
    followed one. Other errors propagate at once; so does the last one when ``stop`` is set."""
    delay, retried = first_delay_s, False
    while True:
        try:
            out = fn()
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if not isinstance(err, KafkaError) or err.code() not in _COORDINATOR_ERRORS or err.fatal():
                raise
            if not retried:
                retried = True
                waiting(True)
                log.warning("coordinator not available yet: retrying",
                            extra={**(extra or {}), "dependency": what, "error_class": err.name()})
            if stop.wait(delay * (0.5 + random.random() / 2)):
                raise
            delay = min(delay * 2, max_delay_s)
            continue
        if retried:
            waiting(False)
            log.info("coordinator available again", extra={**(extra or {}), "dependency": what})
        return out


class _SizeRefused(Exception):
    """The broker refused a produced record as too large; the batch is processed again."""


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge produced records after retries; offsets were not committed."""


class KafkaAccessFailed(RuntimeError):
    """The cluster refuses this client: SASL authentication failed, the TLS handshake failed (an
    untrusted broker certificate), or an ACL denies a topic, the group or a transactional id.
    Not retried: the worker stops before producing or committing anything more. The message names
    the cause (and the topic), never a credential."""


_AUTHZ_ERRORS = {KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic", KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
                 KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
                 KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster"}


def access_failure(err: KafkaError, what: str = "") -> KafkaAccessFailed | None:
    """The :class:`KafkaAccessFailed` an authentication, TLS or authorization error means, else ``None``."""
    code = err.code()
    if code == KafkaError._AUTHENTICATION:
        return KafkaAccessFailed("Kafka authentication failed: check sasl.mechanism, sasl.username and "
                                 f"sasl.password ({err.str()})")
    if code == KafkaError._SSL:
        return KafkaAccessFailed("TLS handshake with the broker failed: is its certificate signed by the CA in "
                                 f"ssl.ca.location? ({err.str()})")
    if code in _AUTHZ_ERRORS:
        return KafkaAccessFailed(f"not authorized by the cluster's ACLs: {_AUTHZ_ERRORS[code]}"
                                 + (f" {what}" if what else "") + f" ({err.name()})")
    return None


class _AccessNoise(logging.Filter):
    """Drops librdkafka's own repeated lines about a failed SASL/TLS handshake: the worker reports
    the cause once (:class:`KafkaAccessFailed`) and stops."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("SASL authentication error" in msg or "SSL handshake failed" in msg
                    or "certificate verify failed" in msg)


_RDKAFKA_LOG.addFilter(_AccessNoise())


class AdaptiveLinger:
    """How long a batch whose first record just arrived waits for more (the rule of
    ``RouteWorker._next_batch``).

    ``observe(n, now)`` after each fetch keeps an estimate of the arrival rate (records/s): an
    exponentially weighted mean (weight ``alpha`` for the newest fetch) of ``n / (now - previous
    fetch)``. ``wait_s(have)`` is then

    * 0 when fewer than ``min_gain`` records are expected within ``max_s`` at that rate (light
      load: the batch leaves at once; its per-batch cost is affordable on an idle worker);
    * else the time the rest of the batch needs at that rate, ``(batch_size - have) / rate``, at
      most ``max_s`` (heavy load: full batches, and no wait beyond the moment the batch is full).

    Under a sustained heavy load librdkafka's queue already holds a full batch, which is taken
    without any wait. Seconds; a rate of 0 (nothing seen yet) gives 0."""

    def __init__(self, batch_size: int, max_s: float, min_gain: int = 16, alpha: float = 0.2):
        self.batch_size, self.max_s, self.min_gain, self.alpha = batch_size, max_s, min_gain, alpha
        self.rate = 0.0
        self._at: float | None = None

    def observe(self, n: int, now: float) -> None:
        """``n`` records fetched at ``now`` (monotonic seconds)."""
        if self._at is not None and now > self._at:
            self.rate += self.alpha * (n / (now - self._at) - self.rate)
        self._at = now

    def wait_s(self, have: int) -> float:
        """Seconds to wait for more records, given ``have`` records in the batch so far."""
        need = self.batch_size - have
        if need <= 0 or self.rate * self.max_s < self.min_gain:
            return 0.0
        return min(self.max_s, need / self.rate)


class RouteWorker:
    """Runs one route: its own consumer (group ``route.group``) and producer, on one thread."""

    def __init__(self, route: CompiledRoute, policy: CompiledPolicy, cfg: EngineConfig, metrics: Metrics,
                 stop: threading.Event):
        self.route, self.policy, self.cfg, self.metrics, self.stop_event = route, policy, cfg, metrics, stop
        self.provenance = policy.provenance.encode()
        self.error: BaseException | None = None
        self.assigned: set[tuple[str, int]] = set()
        self.joined = False
        self.batches = 0
        self._next: tuple[CompiledRoute, CompiledPolicy] | None = None
        self._lag_at = 0.0
        self._linger = AdaptiveLinger(cfg.batch_size, cfg.batch_linger_s, cfg.linger_min_gain)
        self.consumer = Consumer(self._consumer_config())
        self.producer = self._make_producer()
        self._failed: list = []
        self.limits: dict[str, int] = {route.sink: KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
                                       route.dead_letter: KAFKA_DEFAULT_MAX_MESSAGE_BYTES}
        """Bytes each output topic accepts per record batch (:meth:`_read_limits`; lowered when the
        broker refuses a smaller record)."""
        self._refused: dict[str, int] = {}
        """Topic → size of the largest record the broker refused as too large since the last batch."""
        self._batch_bytes = 1000000
        self._transactions_ready = False
        self._access: KafkaAccessFailed | None = None
        """Set by the error callback on an authentication or TLS failure; raised by :meth:`_check_access`."""
        self.broker_down = False
        self._broker_check_at = 0.0
        self.waiting_for: str | None = None
        """The dependency (``schema-registry``) the current batch waits for, or ``None``."""
        self._uncommitted: dict[tuple[str, int], int] = {}  # offsets refused during a rebalance
        self.control = None
        """The process's :class:`proxy.stream.control.ControlReader` (set by :class:`Engine`), or ``None``."""
        self.halted = False
        """Whether the route is halted by the incident switch: its partitions paused, nothing
        produced or committed (:meth:`_halted_now`)."""
        self.consent = None
        """The :class:`proxy.stream.consent.ConsentReader` of the route's ``consent.topic`` (set by
        :class:`Engine`), or ``None``."""
        if route.subject_mode:
            from .subjects import KafkaSubjectKeys
            route.subject_store = KafkaSubjectKeys(cfg.bootstrap_servers, route.subject_topic, route.subject_kek)

    def _consumer_config(self) -> dict[str, Any]:
        """The route's consumer properties (confluent-kafka's; the native plane gets the same)."""
        cfg = self.cfg
        return {
            **client_config(cfg.bootstrap_servers),
            "group.id": self.route.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 100,
            "logger": _RDKAFKA_LOG,
            "error_cb": self._on_client_error,
            **cfg.consumer,
        }

    def _make_producer(self, batch_bytes: int = 1000000) -> Producer:
        """The sink producer (:meth:`_producer_config`)."""
        return Producer(self._producer_config(batch_bytes))

    def _producer_config(self, batch_bytes: int = 1000000) -> dict[str, Any]:
        """The sink producer. ``message.max.bytes`` is librdkafka's maximum: the worker checks each
        record against the topics' own limits (:meth:`_fits`), so a record too large for the sink
        is dead-lettered instead of failing in the client; ``batch.size`` stays below the smallest
        topic limit, so the broker never refuses a batch of small records."""
        route, cfg = self.route, self.cfg
        return {
            **client_config(cfg.bootstrap_servers),
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",   # the Java client's murmur2: Java and Python agree per key
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "batch.size": batch_bytes,
            "message.max.bytes": 1000000000,
            "queue.buffering.max.messages": max(100000, cfg.batch_size * 4),
            "queue.buffering.max.kbytes": 1048576,
            "logger": _RDKAFKA_LOG,
            "error_cb": self._on_client_error,
            **(self._transactional(route, cfg) if route.exactly_once else {}),
            **cfg.producer,
        }

    def _read_limits(self) -> None:
        """Read the sink and dead-letter topics' ``max.message.bytes`` (DescribeConfigs); a topic
        whose configuration cannot be read keeps its current limit (at start Kafka's default;
        logged). Then :meth:`_fit_batch_size`."""
        r = self.route
        try:
            found = max_message_bytes(self.cfg.bootstrap_servers, [r.sink, r.dead_letter])
        except KafkaException:
            found = {}
        for topic in (r.sink, r.dead_letter):
            if found.get(topic):
                self.limits[topic] = found[topic]
            else:
                log.warning("max.message.bytes unknown (no DescribeConfigs on the topic?): keeping the assumed limit",
                            extra={"route": r.name, "topic": topic, "bytes": self.limits[topic]})
        self._fit_batch_size()
        log.info("topic size limits", extra={"route": r.name, "limits": dict(self.limits)})

    def _fit_batch_size(self) -> None:
        """Rebuild the producer (between batches: nothing in flight) when its ``batch.size`` is
        not below the smallest topic limit, so a batch of small records always fits; an
        exactly-once producer is initialized again (same transactional id)."""
        want = max(1024, min(self.limits.values()) - 4096)
        if want >= self._batch_bytes or "batch.size" in self.cfg.producer:
            return
        self._batch_bytes = want
        self.producer = self._make_producer(want)
        if self.route.exactly_once and self._transactions_ready:
            self._retry_coordinator("transaction coordinator",
                                    lambda: self.producer.init_transactions(max(30.0, self.cfg.transaction_timeout_s)))

    def _after_size_refusal(self) -> None:
        """The broker refused records as too large (the batch is being processed again): read the
        limits again; when that changes neither a limit nor the batch size, the refused record
        itself is the cause, so the topic's limit goes below its size (it will be dead-lettered)."""
        refused, self._refused = self._refused, {}
        before = (dict(self.limits), self._batch_bytes)
        self._read_limits()
        if (dict(self.limits), self._batch_bytes) == before:
            for topic, size in refused.items():
                self.limits[topic] = max(0, min(self.limits[topic], size - 1))
            self._fit_batch_size()
        log.warning("the broker refused a record as too large: limits now", extra={
            "route": self.route.name, "limits": dict(self.limits), "batch_bytes": self._batch_bytes})

    def _fits(self, topic: str, key, value, headers) -> bool:
        return record_size(key, value, headers) <= self.limits[topic]

    # librdkafka callbacks ------------------------------------------------------------------
    def swap(self, route: CompiledRoute, policy: CompiledPolicy) -> None:
        """Use ``route`` from the next batch on (hot reload); the current batch finishes first."""
        self._next = (route, policy)

    def _on_assign(self, consumer, partitions):
        self.joined = True
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("partitions assigned", extra={"route": self.route.name,
                                                "partitions": sorted(p.partition for p in partitions)})

    def _on_revoke(self, consumer, partitions):
        # Batches are committed before the next consume(), so nothing is in flight here.
        self.assigned -= {(p.topic, p.partition) for p in partitions}
        for p in partitions:
            self._uncommitted.pop((p.topic, p.partition), None)  # its next owner resumes from the committed offset
            try:
                self.metrics.lag.remove(self.route.name, str(p.partition))
            except KeyError:
                pass
        log.info("partitions revoked", extra={"route": self.route.name,
                                               "partitions": sorted(p.partition for p in partitions)})

    def _on_client_error(self, err) -> None:
        """librdkafka's error callback (client-level errors, not a record's)."""
        failure = access_failure(err)
        if failure is not None:
            self._access = self._access or failure
            return
        if err.code() == KafkaError._ALL_BROKERS_DOWN and not self._broker_down and self._access is None:
            self.broker_down = True
            log.error("every broker is unreachable: producing and committing nothing until one answers",
                      extra={"route": self.route.name, "dependency": "kafka"})

    def _check_access(self) -> None:
        """Serve the clients' error callbacks; raise :class:`KafkaAccessFailed` if one reported an
        authentication or TLS failure."""
        self.producer.poll(0)
        if self._access is not None:
            raise self._access

    def _check_broker(self) -> None:
        """While :attr:`broker_down`: once a second, a metadata request; an answer clears it."""
        now = time.monotonic()
        if now - self._broker_check_at < 1.0:
            return
        self._broker_check_at = now
        try:
            self.producer.list_topics(timeout=2)
        except KafkaException:
            return
        self.broker_down = False
        log.info("broker reachable again", extra={"route": self.route.name, "dependency": "kafka"})

    def _await_topics(self) -> None:
        """Before consuming: the sink and dead-letter topics must exist (a producer would otherwise
        retry for ``message.timeout.ms`` and fail, or create them with the broker's defaults where
        auto-creation is on). While one is missing: one error line naming it, ``/readyz`` false,
        nothing consumed or committed; checked again every 2 s."""
        r, logged = self.route, set()
        while not self.stop_event.is_set():
            try:
                existing = self.producer.list_topics(timeout=3).topics  # all topics: never auto-creates
            except KafkaException:
                existing = None
            self._check_access()
            if existing is not None:
                missing = [t for t in (r.sink, r.dead_letter) if t not in existing]
                for t in missing:  # absent, or hidden by the ACLs (no Describe): ask for it by name
                    try:  # the consumer's metadata request never auto-creates (allow.auto.create.topics=false)
                        md = self.consumer.list_topics(topic=t, timeout=3).topics.get(t)
                    except KafkaException:
                        md = None
                    if md is not None and md.error is not None:
                        failure = access_failure(md.error, t)
                        if failure is not None:
                            raise failure
                if not missing:
                    if logged:
                        log.info("topics present", extra={"route": r.name, "topics": [r.sink, r.dead_letter]})
                    self.waiting_for = None
                    return
                self.waiting_for = "missing topic " + ", ".join(missing)
                for t in missing:
                    if t not in logged:
                        logged.add(t)
                        log.error("topic missing: create it (or run with --create-topics)",
                                  extra={"route": r.name, "topic": t})
            self.stop_event.wait(2.0)

    def _on_delivery(self, err, msg):
        if err is not None:
            if err.code() in _TOO_LARGE_ERRORS:  # refused for its size (or its batch's): see _after_size_refusal
                size, topic = record_size(msg.key(), msg.value(), msg.headers()), msg.topic()
                self._refused[topic] = max(self._refused.get(topic, 0), size)
            self._failed.append(msg)
            if self._access is None:
                failure = access_failure(err, msg.topic())
                if failure is not None:
                    self._access = failure

    # ---------------------------------------------------------------------------------------
    def run(self) -> None:
        """Consume/process/produce/commit until :attr:`stop_event` is set. Records any fatal
        error in :attr:`error` (the engine reports it and exits non-zero)."""
        r = self.route
        try:
            self._await_topics()
            self._read_limits()
            if r.exactly_once:
                # fences an earlier incarnation with the same transactional.id and aborts its open transaction
                self._retry_coordinator("transaction coordinator",
                                        lambda: self.producer.init_transactions(max(30.0, self.cfg.transaction_timeout_s)))
                self._transactions_ready = True
            if self.control is not None:  # a route halted before the start must not process one record
                self.waiting_for = "control topic"
                if not self.control.wait_caught_up(self.stop_event):
                    return
                self.waiting_for = None
            if self.consent is not None:  # no record before every withdrawal in the topic is known
                self.waiting_for = "consent topic"
                if not self.consent.wait_caught_up(self.stop_event):
                    return
                self.waiting_for = None
                r.consent_table = self.consent.table
            self._subscribe()
            log.info("route started", extra={"route": r.name, "topic": r.source, "group": r.group,
                                              "purpose": r.purpose, "record_path": r.record_path,
                                              "data_plane": self.data_plane})
            while not self.stop_event.is_set():
                if self._next is not None:
                    self._apply_swap()
                if self.broker_down:
                    self._check_broker()
                if self._halted_now():
                    self._hold()
                else:
                    self._step()
                now = time.monotonic()
                if now - self._lag_at >= 1.0:
                    self._lag_at = now
                    self._update_lag()
        except KafkaAccessFailed as e:
            self.error = e
            log.error(f"route stopped: {e}", extra={"route": r.name, "dependency": "kafka",
                                                    "error_class": type(e).__name__})
            self.stop_event.set()
        except BaseException as e:  # noqa: BLE001 - reported by the engine
            self.error = e
            failure = None
            if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
                failure = access_failure(e.args[0])
            if failure is not None:
                self.error = failure
                log.error(f"route stopped: {failure}", extra={"route": r.name, "dependency": "kafka",
                                                              "error_class": type(failure).__name__})
            else:
                log.error("route stopped on error", extra={"route": r.name, "error_class": type(e).__name__})
            self.stop_event.set()
        finally:
            self._close()
            log.info("route stopped", extra={"route": r.name})

    @property
    def broker_down(self) -> bool:
        """librdkafka reported every broker down (``_ALL_BROKERS_DOWN``): ``/readyz`` false until a
        metadata request answers again (:meth:`_check_broker`)."""
        return self._broker_down

    @broker_down.setter
    def broker_down(self, down: bool) -> None:
        self._broker_down = down

    data_plane = "python"
    """Which data plane runs the route's records (``python``: this class; ``native``:
    :class:`proxy.stream.nativeworker.NativeRouteWorker`), in the "route started" line."""

    def _subscribe(self) -> None:
        self.consumer.subscribe([self.route.source], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _close(self) -> None:
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError):
            pass

    def _step(self) -> None:
        """One batch: fetch, then process it (or hold it when a halt arrived meanwhile)."""
        msgs = self._next_batch()
        self._check_access()
        if msgs and self._halted_now():  # halted while the batch was fetched: not processed
            self._hold(msgs)
        elif msgs:
            self.process_batch(msgs)

    def _apply_swap(self) -> None:
        """Between batches: the route and policy :meth:`swap` gave take over."""
        if self._next[0].subject_mode:
            self._next[0].subject_store = self.route.subject_store
        if self.consent is not None:
            self._next[0].consent_table = self.consent.table
        replaced = self.route
        self.route, self.policy = self._next
        self.provenance = self.policy.provenance.encode()
        self._next = None
        if replaced is not self.route:
            replaced.wipe_native()  # its keys' AES/HMAC state, cleansed now
        log.info("policy swapped", extra={"route": self.route.name, "policy": self.policy.provenance})

    def _pause_assigned(self, pause: bool) -> None:
        """Pause (``True``) or resume the assigned partitions (the incident switch)."""
        parts = [TopicPartition(t, p) for t, p in self.assigned]
        if parts:
            (self.consumer.pause if pause else self.consumer.resume)(parts)

    def _halted_now(self) -> bool:
        """Follow the incident switch: on a halt, pause the assigned partitions and set
        ``dpp_route_halted`` 1; on resume, resume them and set it 0. Returns whether halted."""
        doc = self.control.halted(self.route.name) if self.control is not None else None
        name = self.route.name
        if doc is not None and not self.halted:
            self.halted = True
            self._pause_assigned(True)
            self.metrics.halted.labels(name).set(1)
            log.warning("route halted by the incident switch: producing and committing nothing until resumed",
                        extra={"route": name, "at": doc.get("at")})
        elif doc is None and self.halted:
            self.halted = False
            self._pause_assigned(False)
            self.metrics.halted.labels(name).set(0)
            log.warning("route resumed by the incident switch", extra={"route": name})
        return self.halted

    def _hold(self, msgs: list | None = None) -> None:
        """While halted: serve the group protocol (rebalances, heartbeats) without processing.
        Records fetched anyway (``msgs``, or from partitions assigned during the halt) are not
        processed: their partitions are sought back to the first of them (nothing committed) and
        paused, so they are processed on resume, under the policy in force then."""
        if msgs is None:
            msgs = self.consumer.consume(self.cfg.batch_size, min(0.2, self.cfg.poll_timeout_s))
        good = [m for m in msgs if m.error() is None]
        if good:
            self._rewind(good)
            try:
                self.consumer.pause([TopicPartition(t, p) for t, p in {(m.topic(), m.partition()) for m in good}])
            except KafkaException:
                pass

    def _next_batch(self) -> list:
        """Up to ``batch_size`` records without waiting for a full batch: what librdkafka has
        already fetched is taken at once; when nothing is there, wait up to ``poll_timeout_s`` for
        the first record, then up to ``batch_linger_s`` for more. (``consume(n, timeout)`` alone
        waits for ``n`` records or the whole timeout, which adds up to ``poll_timeout_s`` of
        latency whenever traffic is below ``batch_size`` per ``poll_timeout_s``.) Under load the
        batches stay full; under light load records leave at once (:class:`AdaptiveLinger`)."""
        c, n = self.consumer, self.cfg.batch_size
        msgs = c.consume(n, 0)
        if not msgs:
            msgs = c.consume(1, self.cfg.poll_timeout_s)
            if msgs and n > 1:
                wait = self._linger.wait_s(len(msgs)) if self.cfg.batch_linger_adaptive else self.cfg.batch_linger_s
                msgs += c.consume(n - 1, wait)
        self._linger.observe(len(msgs), time.monotonic())
        return msgs

    def _update_lag(self) -> None:
        """Set ``dpp_consumer_lag`` for assigned partitions from cached high watermarks (no broker call)."""
        if not self.assigned:
            return
        try:
            positions = self.consumer.position([TopicPartition(t, p) for t, p in self.assigned])
        except KafkaException:
            return
        for tp in positions:
            try:
                # halted: nothing is fetched, so the cached high watermark would stand still
                _, hi = self.consumer.get_watermark_offsets(tp, cached=not self.halted, timeout=1.0)
            except KafkaException:
                continue
            if hi < 0:
                continue
            pos = tp.offset if tp.offset >= 0 else None
            if pos is None:
                continue
            self.metrics.lag.labels(self.route.name, str(tp.partition)).set(max(0, hi - pos))

    def _produce(self, topic: str, value, key, headers) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def process_batch(self, msgs: list) -> None:
        """Protect, produce, wait for acknowledgement, commit. Raises :class:`DeliveryFailed`."""
        r = self.route
        prov = (PROVENANCE_HEADER, self.provenance)
        kv = (KEY_VERSIONS_HEADER, r.key_versions_header) if r.key_versions_header else None
        extra = [prov, kv] if kv else [prov]  # librdkafka copies headers at produce: one list serves all
        good = [m for m in msgs if m.error() is None]
        if len(good) != len(msgs):
            for m in msgs:
                err = m.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    failure = access_failure(err, m.topic() if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
                                             else r.group)
                    if failure is not None:
                        raise failure
                    log.warning("consumer error", extra={"route": r.name, "topic": m.topic(),
                                                          "partition": m.partition(), "error_class": err.name()})
                    if err.fatal():
                        raise KafkaException(err)
        values = [m.value() for m in good]
        if r.subject_mode:
            r.prepare(values)
        self._produce_all(r, good, values, extra)
        # the last record of each partition (a route reads one topic; a partition's records arrive in order)
        last = {m.partition(): m for m in good}
        offsets = {(m.topic(), p): m.offset() + 1 for p, m in last.items()}
        if r.exactly_once:
            if not self._commit_transaction(offsets, good):
                r.stats.drain()  # aborted: the records are consumed and counted again
                return
        else:
            try:
                self._await_acks()
            except _SizeRefused:
                self._rewind(good)
                r.stats.drain()  # the batch is consumed and counted again
                log.warning("the batch is processed again", extra={"route": r.name, "records": len(good)})
                return
            if last:
                self._commit(offsets)
        self.batches += 1
        self.metrics.publish(r, r.stats.drain())

    @staticmethod
    def _transactional(route: CompiledRoute, cfg: EngineConfig) -> dict[str, Any]:
        import socket
        instance = cfg.instance_id or socket.gethostname()
        return {"transactional.id": f"dpp.{route.group}.{instance}",
                "transaction.timeout.ms": int(cfg.transaction_timeout_s * 1000)}

    def _commit_transaction(self, offsets: dict[tuple[str, int], int], good: list) -> bool:
        """Exactly-once: the batch's sink and dead-letter records and its consumed offsets commit
        as one Kafka transaction (KIP-98; offsets fenced by the group generation, KIP-447). Returns
        ``False`` when the transaction was aborted (a delivery failure, a rebalance that moved a
        partition, a broker that went away): the consumer is rewound to the batch's first offsets,
        so the same records are processed again in a new transaction and read_committed consumers
        never see the aborted ones. A fatal error (another live worker with the same instance id
        fenced this one) raises."""
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        for attempt in range(self.cfg.max_produce_attempts):
            try:
                if tps:
                    self.producer.send_offsets_to_transaction(tps, self.consumer.consumer_group_metadata(), 30)
                self.producer.commit_transaction(60)
                self._failed = []
                return True
            except KafkaException as e:
                err = e.args[0] if e.args else None
                if not isinstance(err, KafkaError):
                    raise
                if err.fatal():
                    log.error("transactional producer fenced or failed: another worker may run with the same "
                              "instance id (--instance-id, DPP_INSTANCE_ID)",
                              extra={"route": self.route.name, "error_class": err.name()})
                    raise
                if err.txn_requires_abort():
                    break
                if not err.retriable():
                    raise
                time.sleep(min(2 ** attempt * 0.1, 2.0))
        self.metrics.delivery_failures.labels(self.route.name, "transaction").inc(max(1, len(self._failed)))
        self._failed = []
        try:
            self.producer.abort_transaction(60)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.fatal():
                raise
        self._rewind(good)
        log.warning("transaction aborted; the batch is processed again", extra={"route": self.route.name,
                                                                               "records": len(good)})
        return False

    def _rewind(self, good: list) -> None:
        """Seek each partition of the batch back to its first record (nothing of it committed);
        after a size refusal, adjust the limits first (:meth:`_after_size_refusal`)."""
        if self._refused:
            self._after_size_refusal()
        first: dict[tuple[str, int], int] = {}
        for m in good:
            first.setdefault((m.topic(), m.partition()), m.offset())
        for (t, p), o in first.items():
            if (t, p) in self.assigned:
                try:
                    self.consumer.seek(TopicPartition(t, p, o))
                except KafkaException:
                    pass  # revoked meanwhile: its new owner resumes from the committed offset

    def _retry_coordinator(self, what: str, fn):
        """:func:`retry_coordinator` for this worker: ``/readyz`` false (``waiting_for``) meanwhile."""
        def waiting(on: bool) -> None:
            self.waiting_for = what if on else None
        return retry_coordinator(what, fn, self.stop_event, waiting, {"route": self.route.name})

    def _protect(self, fn, *args):
        """Run the route's batch function; while a dependency of the record path (the schema
        registry) is unavailable, wait with exponential backoff and jitter (0.2 s doubling to
        5 s) and run it again on the same records: nothing is produced or committed meanwhile,
        ``/readyz`` is false, and the counters of the failed attempt are discarded."""
        delay = 0.2
        while True:
            try:
                if self.consent is not None:
                    self.consent.sync()  # every consent record written before the batch was fetched
                out = fn(*args)
                if self.waiting_for is not None:
                    log.info("dependency available again", extra={"route": self.route.name,
                                                                  "dependency": self.waiting_for})
                    self.waiting_for = None
                return out
            except DependencyUnavailable as e:
                self.route.stats.drain()  # the attempt's counts: the records are processed again
                if self.waiting_for is None:
                    log.error("dependency unavailable: producing and committing nothing until it returns",
                              extra={"route": self.route.name, "dependency": e.dependency})
                self.waiting_for = e.dependency
                if self.stop_event.wait(delay * (0.5 + random.random() / 2)):
                    raise
                delay = min(delay * 2, 5.0)
                self._keep_membership()

    def _keep_membership(self) -> None:
        """While the batch waits for a dependency: serve the consumer group protocol without
        fetching records (partitions paused), so a long outage does not exceed
        ``max.poll.interval.ms``; records of partitions revoked meanwhile are produced anyway
        by their batch (at-least-once: the new owner may produce them again, byte-identical)."""
        parts = [TopicPartition(t, p) for t, p in self.assigned]
        if not parts:
            return
        try:
            self.consumer.pause(parts)
            self.consumer.poll(0)
        finally:
            try:
                self.consumer.resume(parts)
            except KafkaException:
                pass

    def _dead_letter(self, r: CompiledRoute, m, out, key) -> None:
        args = (r, self.policy.provenance, m.topic(), m.partition(), m.offset(), m.value(), out, m.key(), m.headers())
        sealed, hdrs = envelope(*args)
        if not self._fits(r.dead_letter, key, sealed, hdrs):
            if out.reason != Reason.TOO_LARGE.value:  # counted under too-large, as a stub
                r.stats.dead_lettered[out.reason] -= 1
                r.stats.dead_lettered[Reason.TOO_LARGE.value] = r.stats.dead_lettered.get(Reason.TOO_LARGE.value, 0) + 1
                out = Outcome(DEAD_LETTER, reason=Reason.TOO_LARGE.value, stage=Stage.PRODUCE.value,
                              error_class=out.error_class or "RecordTooLarge", rule=out.rule)
            sealed, hdrs = stub(*args[:6], out, *args[7:])
        self._produce(r.dead_letter, sealed, key, hdrs)
        log.warning("record dead-lettered", extra={
            "route": r.name, "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
            "stage": out.stage, "reason": out.reason, "rule": out.rule, "error_class": out.error_class})

    def _produce_all(self, r: CompiledRoute, good: list, values: list, extra: list,
                     mark: Callable[[Any], None] | None = None) -> None:
        """Protect a batch and produce each record's outcome: sink records with their key and
        headers (protected ones for routes with key or header rules, else the source's, unchanged)
        plus ``extra`` (dpp's own headers), dead-letter records sealed, blocks withheld (counted;
        the offset advances). ``mark(m)`` (the native plane's worker) is called before each
        record's output is produced."""
        keys = [m.key() for m in good]
        # retention on the Kafka record timestamp (ms); a record without one (type 0) has None
        stamps = [ts if kind else None for kind, ts in (m.timestamp() for m in good)] if r.uses_record_timestamp else None
        if r.has_parts:
            results, keys, headers = self._protect(r.protect_records, values, keys, [m.headers() for m in good], stamps)
        else:
            results, headers = self._protect(r.protect_batch, values, stamps), [m.headers() for m in good]
        produce, on_delivery, sink = self.producer.produce, self._on_delivery, r.sink
        # below this many bytes of value and key, a record with only dpp's headers surely fits
        small = self.limits[sink] - _RECORD_OVERHEAD - record_size(None, None, extra) - 1024
        if r.exactly_once:  # after protecting: a wait for the registry holds no transaction open
            self.producer.begin_transaction()
        for m, out, key, hdrs in zip(good, results, keys, headers):
            if mark is not None:
                mark(m)
            if type(out) is bytes:
                h = hdrs + extra if hdrs else extra
                if (hdrs or len(out) + (len(key) if key else 0) > small) and not self._fits(sink, key, out, h):
                    self._too_large(r, m, key)
                    continue
                try:
                    produce(sink, out, key, headers=h, on_delivery=on_delivery)
                except BufferError:
                    self._produce(sink, out, key, h)
                continue
            kind = out.kind
            if kind == SINK:
                h = (hdrs or []) + extra
                if out.subject:
                    h.append((SUBJECT_HEADER, out.subject.encode()))
                if not self._fits(sink, key, out.value, h):
                    self._too_large(r, m, key)
                    continue
                self._produce(sink, out.value, key, h)
            elif kind == DEAD_LETTER:
                self._dead_letter(r, m, out, key)
            # BLOCK: deliberately withheld, counted; offset advances.

    def _too_large(self, r: CompiledRoute, m, key) -> None:
        """The protected record ``m`` is larger than the sink accepts: dead-letter it (counted as
        ``too-large`` instead of produced)."""
        r.stats.produced -= 1
        r.stats.dead_lettered[Reason.TOO_LARGE.value] = r.stats.dead_lettered.get(Reason.TOO_LARGE.value, 0) + 1
        self._dead_letter(r, m, Outcome(DEAD_LETTER, reason=Reason.TOO_LARGE.value, stage=Stage.PRODUCE.value,
                                        error_class="RecordTooLarge"), key)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit a batch's offsets (its records are already acknowledged by the broker).

        While the consumer group rebalances (a worker joins or leaves) the broker refuses commits
        (``REBALANCE_IN_PROGRESS``, ``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID``): the worker keeps
        running, and the offsets are committed with the next batch for the partitions it still
        owns. A partition that moved meanwhile is resumed by its new owner from the last committed
        offset, so a few records are protected and produced again (at-least-once; byte-identical).
        """
        pending = {k: o for k, o in self._uncommitted.items() if k in self.assigned and o > offsets.get(k, -1)}
        offsets = {**offsets, **pending}
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._retry_coordinator("group coordinator", lambda: self.consumer.commit(offsets=tps, asynchronous=False))
            self._uncommitted = {}
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if not isinstance(err, KafkaError) or err.code() not in _REBALANCE_COMMIT_ERRORS:
                raise
            self._uncommitted = offsets
            log.warning("offsets not committed: consumer group rebalancing; kept for the next batch",
                        extra={"route": self.route.name, "error_class": err.name(), "partitions": len(offsets)})

    def _await_acks(self) -> None:
        for attempt in range(self.cfg.max_produce_attempts):
            self.producer.flush()
            if self._access is not None:  # refused by the ACLs: retrying cannot help; nothing is committed
                raise self._access
            if not self._failed:
                return
            if self._refused:  # retrying cannot help: the batch goes again, checked against the new limit
                for m in self._failed:
                    self.metrics.delivery_failures.labels(self.route.name, "dead_letter" if m.topic() ==
                                                          self.route.dead_letter else "sink").inc()
                self._failed = []
                raise _SizeRefused()
            failed, self._failed = self._failed, []
            kind = {m.topic(): ("dead_letter" if m.topic() == self.route.dead_letter else "sink") for m in failed}
            for m in failed:
                self.metrics.delivery_failures.labels(self.route.name, kind[m.topic()]).inc()
                self._produce(m.topic(), m.value(), m.key(), m.headers())
            log.warning("retrying unacknowledged records", extra={"route": self.route.name, "count": len(failed),
                                                                   "attempt": attempt + 1})
            time.sleep(min(2 ** attempt * 0.1, 2.0))
        self.producer.flush()
        if self._failed:
            raise DeliveryFailed(f"{len(self._failed)} records not acknowledged; offsets not committed")


class Engine:
    """Runs every route of a compiled policy, a thread per route, until stopped or failed."""

    def __init__(self, policy: CompiledPolicy, cfg: EngineConfig, metrics: Metrics | None = None):
        self.policy, self.cfg = policy, cfg
        self.metrics = metrics or Metrics()
        self.metrics.register_policy(policy)
        self.stop_event = threading.Event()
        from .nativeworker import make_worker
        self.workers = [make_worker(r, policy, cfg, self.metrics, self.stop_event) for r in policy.routes]
        self.control = None
        """The incident switch's :class:`proxy.stream.control.ControlReader` (``cfg.control_topic``)."""
        self.consent: dict[str, Any] = {}
        """Consent topic → its :class:`proxy.stream.consent.ConsentReader` (one per process)."""
        self.recorder = None
        """The :class:`proxy.stream.processingrecords.ProcessingRecorder` (``cfg.audit_topic``)."""

    def ready(self) -> tuple[bool, str]:
        """Readiness for ``/readyz``: policy loaded, every route joined its group, none failed."""
        failed = [w.route.name for w in self.workers if w.error is not None]
        if failed:
            return False, f"route failed: {', '.join(failed)}"
        blocked = [f"{w.route.name} ({w.waiting_for or 'kafka'})" for w in self.workers if w.waiting_for or w.broker_down]
        if blocked:
            return False, f"waiting for a dependency: {', '.join(blocked)}"
        waiting = [w.route.name for w in self.workers if not w.joined]
        if waiting:
            return False, f"waiting for partition assignment: {', '.join(waiting)}"
        halted = [w.route.name for w in self.workers if w.halted]
        # a halted route is healthy and stays ready (restarting it would not help): /readyz says so
        return True, f"ready: policy {self.policy.provenance}" + (f"; halted: {', '.join(halted)}" if halted else "")

    def reload(self, policy: CompiledPolicy) -> None:
        """Swap in a recompiled policy between batches. The routes (names, topics, groups) must be
        the same as the running ones; raises ``ValueError`` otherwise (a restart is needed)."""
        def shape(routes):
            return {r.name: (r.source, r.sink, r.dead_letter, r.group, getattr(r, "subject_topic", None),
                             r.exactly_once, r.consent.topic if r.consent is not None else None) for r in routes}
        old, new = shape(self.policy.routes), shape(policy.routes)
        if old != new:
            raise ValueError("routes, topics or consumer groups changed; restart the worker to apply")
        by_name = {r.name: r for r in policy.routes}
        self.policy = policy
        for w in self.workers:
            w.swap(by_name[w.route.name], policy)
        self.metrics.register_policy(policy)
        if self.recorder is not None:
            self.recorder.set_policy(policy)

    def _start_consent_readers(self) -> None:
        """One :class:`proxy.stream.consent.ConsentReader` per consent topic of the routes, shared
        by them; each route waits until its reader has read the topic to its end."""
        from .consent import ConsentReader
        from ..policy.consent import ConsentTable
        for w in self.workers:
            c = w.route.consent
            if c is None:
                continue
            if c.topic not in self.consent:
                purposes = tuple(sorted({x.consent_purpose for x in self.policy.routes
                                         if x.consent is not None and x.consent.topic == c.topic}))
                table = ConsentTable(self.cfg.consent_memory_subjects, self.cfg.consent_spill_dir and
                                     f"{self.cfg.consent_spill_dir}/{c.topic}")
                self.consent[c.topic] = ConsentReader(self.cfg.bootstrap_servers, c.topic, table, purposes=purposes,
                                                      metrics=self.metrics).start()
            w.consent = self.consent[c.topic]

    def stop(self, *_: Any) -> None:
        """Ask every route to finish its in-flight batch, commit and stop (signal-handler safe)."""
        self.stop_event.set()

    def run(self) -> int:
        """Run until stopped; returns 0 on a clean stop, 1 if a route failed."""
        # Everything allocated so far (modules, the compiled policy, clients) is long-lived: move it
        # out of the cyclic collector's generations, so its full collections stop re-scanning it
        # (measured: ~20 ms pauses and ~10 % of the record path's CPU without this).
        if self.cfg.control_topic and self.control is None:
            from .control import ControlReader
            # read to its end before any route consumes (each waits for it): a route halted before the start stays halted
            self.control = ControlReader(self.cfg.bootstrap_servers, self.cfg.control_topic).start()
        for w in self.workers:
            w.control = self.control
        self._start_consent_readers()
        self._start_recorder()
        gc.freeze()
        threads = [threading.Thread(target=w.run, name=f"route-{w.route.name}", daemon=True) for w in self.workers]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
        if self.control is not None:
            self.control.close()
        for reader in self.consent.values():
            reader.close()
        if self.recorder is not None:  # after the routes stopped: their last batches are in the final window
            self.recorder.close()
        failed = [w for w in self.workers if w.error is not None]
        return 1 if failed else 0

    def _start_recorder(self) -> None:
        """Records of processing (``cfg.audit_topic``): a listener of the metrics, written per window."""
        if self.cfg.audit_topic and self.recorder is None:
            from .processingrecords import ProcessingRecorder, default_worker_id
            self.recorder = ProcessingRecorder(self.policy, bootstrap=self.cfg.bootstrap_servers,
                                               topic=self.cfg.audit_topic,
                                               interval_s=self.cfg.processing_record_interval_s,
                                               worker=default_worker_id(self.cfg.instance_id))
            self.metrics.listeners.append(self.recorder.on_publish)
            self.recorder.start()
