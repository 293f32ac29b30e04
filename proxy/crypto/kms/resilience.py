"""Resilience decorator: retries with exponential backoff and full jitter, behind a circuit breaker.

Only :class:`~proxy.errors.KmsUnavailable` (unreachable, timeout, throttled, 5xx) is retried and
counted by the breaker; :class:`~proxy.errors.KmsRefused` means the KMS answered, so it passes at
once and counts as a success for the breaker.

Backoff before retry ``n`` (1-based): a uniform random delay in ``[0, min(max_delay_s,
base_delay_s * 2**(n-1))]`` seconds ("full jitter"). Breaker: ``closed`` → ``open`` after
``failure_threshold`` consecutive failed calls (each call = all its attempts); while ``open`` every
call fails fast with ``KmsUnavailable`` ("circuit open") for ``reset_timeout_s``; then
``half_open``: one trial call, success → ``closed``, failure → ``open`` again.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Callable

from ...errors import KmsUnavailable
from .base import Kms, KmsDecorator

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker (thread-safe). ``state`` is ``closed``, ``open`` or ``half_open``."""

    def __init__(self, failure_threshold: int = 5, reset_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout_s > 0")
        self.failure_threshold, self.reset_timeout_s, self._clock = failure_threshold, reset_timeout_s, clock
        self._failures, self._opened_at, self._state = 0, 0.0, CLOSED
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
                self._state = HALF_OPEN
                self._trial = False
            return self._state

    def allow(self) -> bool:
        """May a call go out now? In ``half_open`` only one trial call at a time."""
        state = self.state
        with self._lock:
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._trial:
                self._trial = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._failures, self._state, self._trial = 0, CLOSED, False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state, self._opened_at, self._trial = OPEN, self._clock(), False


class ResilientKms(KmsDecorator):
    """Every operation with up to ``retries`` retries (so ``retries + 1`` attempts) behind ``breaker``."""

    def __init__(self, inner: Kms, retries: int = 3, base_delay_s: float = 0.2, max_delay_s: float = 5.0,
                 breaker: CircuitBreaker | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        if retries < 0 or base_delay_s < 0 or max_delay_s < 0:
            raise ValueError("retries and delays must be >= 0")
        super().__init__(inner)
        self.retries, self.base_delay_s, self.max_delay_s = retries, base_delay_s, max_delay_s
        self.breaker = breaker or CircuitBreaker()
        self._sleep, self._rng = sleep, rng or random.Random()

    def delay(self, n: int) -> float:
        """The jittered delay before retry ``n`` (1-based), seconds."""
        return self._rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (n - 1)))

    def _run(self, operation: str, fn):
        if not self.breaker.allow():
            raise KmsUnavailable(self.provider, f"{self.where(operation)}: circuit open")
        for n in range(self.retries + 1):
            if n:
                self._sleep(self.delay(n))
            try:
                out = fn()
            except KmsUnavailable:
                if n == self.retries:
                    self.breaker.failure()
                    raise
                continue
            except BaseException:
                self.breaker.success()  # the KMS answered (a refusal): it is up
                raise
            self.breaker.success()
            return out
        raise AssertionError("unreachable")

    def __repr__(self) -> str:
        return f"ResilientKms({self.inner!r}, retries={self.retries}, breaker={self.breaker.state})"
