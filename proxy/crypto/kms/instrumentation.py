"""Instrumentation decorator: every KMS call reported to an observer as
``(provider, operation, outcome, seconds)``.

``operation`` is ``wrap``, ``unwrap``, ``describe``, ``generate`` or ``rewrap``; ``outcome`` is
``success``, ``unavailable`` (:class:`~proxy.errors.KmsUnavailable`) or ``refused`` (any other
error, e.g. :class:`~proxy.errors.KmsRefused`); ``seconds`` is the wall time of the call. All are
bounded values, fit for metric labels. The Prometheus metrics are defined in :mod:`proxy.metrics`
(``dpp_kms_operations_total``, ``dpp_kms_operation_seconds``), which installs itself as the
process's observer with :func:`set_observer`; until then observations are dropped.
"""
from __future__ import annotations

import time
from typing import Callable

from ...errors import KmsUnavailable
from .base import Kms, KmsDecorator

Observer = Callable[[str, str, str, float], None]
OPERATIONS = ("wrap", "unwrap", "describe", "generate", "rewrap")
OUTCOMES = ("success", "unavailable", "refused")


def _drop(provider: str, operation: str, outcome: str, seconds: float) -> None:
    pass


_observer: Observer = _drop


def set_observer(observer: Observer | None) -> None:
    """Install the process-wide observer used by :class:`InstrumentedKms` without one of its own
    (``None`` drops observations again)."""
    global _observer
    _observer = observer or _drop


class InstrumentedKms(KmsDecorator):
    """Reports each call of ``inner`` to ``observer`` (default: the process-wide one)."""

    def __init__(self, inner: Kms, observer: Observer | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__(inner)
        self._own, self._clock = observer, clock

    def _run(self, operation: str, fn):
        t0 = self._clock()
        outcome = "refused"
        try:
            out = fn()
            outcome = "success"
            return out
        except KmsUnavailable:
            outcome = "unavailable"
            raise
        finally:
            (self._own or _observer)(self.provider, operation, outcome, self._clock() - t0)
