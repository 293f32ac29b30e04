"""A thread that reads a topic from its beginning to its end, then follows it.

The incident switch's control topic (:mod:`proxy.stream.control`) and the consent topics
(:mod:`proxy.stream.consent`) are read this way: routes wait on :meth:`TopicFollower.wait_caught_up`
(fail closed: nothing runs on a state that was not read to its end), then the thread keeps
applying new records until :meth:`TopicFollower.close`.
"""
from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaError, KafkaException

log = logging.getLogger("proxy.stream")


def error_name(e: BaseException) -> str:
    """``KafkaError.name()`` of a ``KafkaException``, else the exception's class name."""
    err = e.args[0] if isinstance(e, KafkaException) and e.args else None
    return err.name() if isinstance(err, KafkaError) else type(e).__name__


class TopicFollower:
    """Base of the topic readers: :meth:`start` runs a daemon thread that calls :meth:`catch_up`
    until it succeeds (retrying every second; each new error class logged once and kept in
    :attr:`error`), sets :attr:`caught_up`, calls :meth:`_caught_up`, then calls
    :meth:`_poll` (``follow_poll_s``) and :meth:`_tick` until :meth:`close`.

    Subclasses give ``kind`` (``"control"``, ``"consent"``: in thread names and log lines),
    :meth:`catch_up` (raises ``KafkaException`` or ``TimeoutError`` while it cannot read to the
    end), :meth:`_poll` and the consumers :meth:`close` closes (:attr:`_consumers`)."""

    kind = "topic"
    wait_level = logging.ERROR
    """Level of the "not read to its end" line (the control reader's is a warning: a broker that
    refuses the worker's credentials is reported once, as an error, by the route itself)."""
    follow_poll_s = 0.2
    retry_s = 1.0

    def __init__(self, topic: str, timeout_s: float):
        self.topic, self.timeout = topic, timeout_s
        self.error: str | None = None
        """Error class of the last failed read (``None`` when reads succeed)."""
        self.caught_up = threading.Event()
        """Set once the topic was read to its end after :meth:`start`."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumers: list = []

    def catch_up(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _poll(self, timeout: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _caught_up(self) -> None:
        """Called once on the thread after the first successful :meth:`catch_up`."""

    def _tick(self) -> None:
        """Called on the thread after each :meth:`_poll` while following."""

    def start(self):
        """Start the thread (module doc); returns ``self``."""
        self._thread = threading.Thread(target=self._follow, name=f"dpp-{self.kind}-{self.topic}", daemon=True)
        self._thread.start()
        return self

    def wait_caught_up(self, stop: threading.Event) -> bool:
        """Block until the topic was read to its end (``True``) or ``stop`` is set (``False``)."""
        while not self.caught_up.wait(0.2):
            if stop.is_set():
                return False
        return True

    def _follow(self) -> None:
        logged = None
        while not self._stop.is_set() and not self.caught_up.is_set():
            try:
                self.catch_up()
                self.error = None
                self.caught_up.set()
                self._caught_up()
            except (KafkaException, TimeoutError) as e:
                name = error_name(e)
                if name != logged:  # fail closed: the routes wait, /readyz names the topic
                    log.log(self.wait_level, f"{self.kind} topic not read to its end: its routes wait",
                            extra={"topic": self.topic, "error_class": name})
                    logged = name
                self.error = name
                self._stop.wait(self.retry_s)
        while not self._stop.is_set():
            try:
                self._poll(self.follow_poll_s)
                self._tick()
            except (KafkaException, RuntimeError) as e:
                log.error(f"{self.kind} topic reader failed", extra={"topic": self.topic,
                                                                      "error_class": type(e).__name__})
                self._stop.wait(self.follow_poll_s)

    def close(self) -> None:
        """Stop the thread (waits up to 5 s) and close the consumers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for c in self._consumers:
            try:
                c.close()
            except (KafkaException, RuntimeError):
                pass
