"""Subject keys in a compacted Kafka topic (crypto-shredding store of :mod:`proxy.crypto.subjects`).

One partition; record key = the subject reference (keyed hash, never the id), value = the wrapped
subject key, or a "forgotten" marker written by ``dpp forget``. Every worker reads the topic from
the beginning before it processes records and keeps following it, so a forget event reaches running
workers within about a second, without restart. Rules:

* the first key record of a subject in the log is its key (a later, different one is a conflict:
  logged and counted, and ignored; it can only happen when two workers meet a new subject at the
  same moment, which keying the source topic by subject id rules out);
* a "forgotten" marker is final: the key is dropped from memory and later key records are ignored;
  compaction then removes the wrapped key from the log (``min.cleanable.dirty.ratio`` 0.01,
  ``segment.ms`` 60 s, so within minutes of the log cleaner's next pass).
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from typing import Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from .clientconfig import client_config

from ..crypto import subjects as sj

log = logging.getLogger("proxy.subjects")

TOPIC_CONFIG = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "segment.ms": "60000"}
"""Configuration of the subject-key topic (created by ``dpp run --create-topics``)."""


class KafkaSubjectKeys:
    """Subject-key store backed by a compacted topic (see module doc). Thread-safe."""

    def __init__(self, bootstrap: str, topic: str, kek: bytes, *, follow: bool = True, timeout_s: float = 30.0):
        self.topic, self._kek, self.timeout = topic, kek, timeout_s
        self.keys: dict[str, bytes | None] = {}
        self.conflicts = 0
        self._next_offset = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._consumer = Consumer({**client_config(bootstrap), "group.id": "dpp-subject-keys-reader",
                                   "enable.auto.commit": False, "enable.partition.eof": True})
        self._producer = Producer({**client_config(bootstrap), "enable.idempotence": True, "acks": "all",
                                   "linger.ms": 2})
        self._consumer.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING
        self.catch_up()
        self._thread = None
        if follow:
            self._thread = threading.Thread(target=self._follow, name=f"dpp-subject-keys-{topic}", daemon=True)
            self._thread.start()

    # reading ------------------------------------------------------------------------------
    def _apply(self, m) -> None:
        ref = (m.key() or b"").decode("ascii", "replace")
        value = m.value()
        try:
            key = sj.unwrap(self._kek, ref, value) if value is not None else sj.FORGOTTEN
        except Exception as e:  # noqa: BLE001 - a corrupt record must not stop the worker
            log.error("unreadable subject-key record", extra={"topic": self.topic, "offset": m.offset(),
                                                              "error_class": type(e).__name__})
            return
        with self._cond:
            if key is sj.FORGOTTEN:
                self.keys[ref] = sj.FORGOTTEN
            elif ref not in self.keys:
                self.keys[ref] = key
            elif self.keys[ref] is not None and self.keys[ref] != key:
                self.conflicts += 1
                log.error("conflicting subject key ignored (first key wins)",
                          extra={"topic": self.topic, "offset": m.offset()})
            self._next_offset = m.offset() + 1
            self._cond.notify_all()

    def _poll_once(self, timeout: float) -> bool:
        """Read one record; returns False at the end of the partition."""
        m = self._consumer.poll(timeout)
        if m is None:
            return False
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                with self._cond:
                    self._next_offset = max(self._next_offset, m.offset())
                    self._cond.notify_all()
                return False
            if m.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return False
            log.warning("subject-key reader error", extra={"topic": self.topic, "error_class": m.error().name()})
            return False
        self._apply(m)
        return True

    def catch_up(self) -> None:
        """Read until the high watermark at call time (start-up: before any record is processed)."""
        _, hi = self._consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        while self._next_offset < hi:
            if time.monotonic() > deadline:
                raise TimeoutError(f"subject-key topic {self.topic} not read to its end in {self.timeout} s")
            self._poll_once(0.5)

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._poll_once(0.5)

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self._consumer.close()

    # store API ----------------------------------------------------------------------------
    def lookup(self, ref: str) -> bytes | None:
        with self._cond:
            return self.keys[ref]

    def keys_for(self, refs: Iterable[str]) -> Mapping[str, bytes | None]:
        """Known keys for ``refs``; creates, stores (acknowledged) and reads back keys for new subjects."""
        with self._cond:
            new = [r for r in refs if r not in self.keys]
        if new:
            offsets: list[int] = []
            errors: list = []

            def done(err, msg):
                (errors.append(err) if err else offsets.append(msg.offset()))
            for r in new:
                self._producer.produce(self.topic, sj.wrap(self._kek, r, sj.new_subject_key()), r.encode(),
                                       on_delivery=done)
            self._producer.flush(self.timeout)
            if errors or len(offsets) != len(new):
                raise RuntimeError(f"subject keys not acknowledged by {self.topic}")
            self._wait_for(max(offsets) + 1)
        return self.keys

    def _wait_for(self, offset: int) -> None:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while self._next_offset < offset:
                if self._thread is None:
                    self._cond.release()
                    try:
                        self._poll_once(0.5)
                    finally:
                        self._cond.acquire()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"subject-key topic {self.topic} not read back in {self.timeout} s")
                self._cond.wait(left)

    def forget(self, ref: str) -> None:
        """Write the final "forgotten" marker for ``ref`` (acknowledged)."""
        ts = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        errors: list = []
        self._producer.produce(self.topic, sj.forgotten_record(ts), ref.encode(),
                               on_delivery=lambda e, m: errors.append(e) if e else None)
        if self._producer.flush(self.timeout) or errors:
            raise RuntimeError(f"forget event not acknowledged by {self.topic}")
