"""The KMS decorators (caching, resilience, instrumentation) on a scripted in-memory provider:
cache bounds (count, age), breaker states, retry counts and backoff bounds, observed outcomes,
and no key material in any repr, str or error message."""
from __future__ import annotations

import os
import random

import pytest

from proxy.crypto import aead
from proxy.crypto.kms import CachingKms, CircuitBreaker, InstrumentedKms, Kms, ResilientKms, Wrapped, decorate
from proxy.crypto.kms.resilience import CLOSED, HALF_OPEN, OPEN
from proxy.errors import KmsRefused, KmsUnavailable


class ScriptedKms(Kms):
    """AES-GCM under an in-memory KEK; ``script`` is a list of exceptions (or None) consumed one per call."""

    provider = "scripted"

    def __init__(self, script=()):
        super().__init__("test-kek")
        self._kek = os.urandom(32)
        self.script = list(script)
        self.calls = 0

    def _step(self):
        self.calls += 1
        if self.script:
            e = self.script.pop(0)
            if e is not None:
                raise e

    def wrap(self, dek):
        self._step()
        return Wrapped(aead.seal(self._kek, dek, b""), 1)

    def unwrap(self, wrapped):
        self._step()
        return aead.open_(self._kek, wrapped, b"")

    def describe_key(self):
        self._step()
        return 1


def down():
    return KmsUnavailable("scripted", "scripted unwrap (kek 'test-kek'): ConnectionError")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


# --------------------------------------------------------------------------- caching
@pytest.mark.parametrize("max_entries, deks, hits_expected", [
    (1, 2, 0),   # the second DEK evicts the first: both unwrapped again
    (2, 2, 2),   # both fit: the second round is all hits
    (8, 3, 3),
])
def test_cache_count_bound(max_entries, deks, hits_expected):
    inner = ScriptedKms()
    wrapped = [inner.wrap(os.urandom(32)).ciphertext for _ in range(deks)]
    inner.calls = 0
    c = CachingKms(inner, max_entries=max_entries, max_age_s=60)
    for w in wrapped:
        c.unwrap(w)
    first = inner.calls
    for w in wrapped:
        c.unwrap(w)
    assert first == deks
    assert inner.calls - first == deks - hits_expected
    assert len(c) <= max_entries


@pytest.mark.parametrize("age, unwrapped_again", [(59.9, False), (60.0, True), (600, True)])
def test_cache_age_bound(age, unwrapped_again):
    inner, clock = ScriptedKms(), Clock()
    dek = os.urandom(32)
    w = inner.wrap(dek).ciphertext
    c = CachingKms(inner, max_entries=4, max_age_s=60, clock=clock)
    assert c.unwrap(w) == dek
    clock.t = age
    before = inner.calls
    assert c.unwrap(w) == dek
    assert (inner.calls > before) is unwrapped_again


def test_cache_hit_survives_an_outage_and_a_miss_does_not():
    inner = ScriptedKms()
    known, unknown = (inner.wrap(os.urandom(32)).ciphertext for _ in range(2))
    c = CachingKms(inner)
    dek = c.unwrap(known)
    inner.script = [down(), down()]
    assert c.unwrap(known) == dek             # in memory: no KMS call
    with pytest.raises(KmsUnavailable):
        c.unwrap(unknown)


@pytest.mark.parametrize("kwargs", [{"max_entries": 0}, {"max_age_s": 0}])
def test_cache_rejects_bad_bounds(kwargs):
    with pytest.raises(ValueError):
        CachingKms(ScriptedKms(), **kwargs)


# --------------------------------------------------------------------------- resilience
@pytest.mark.parametrize("failures, retries, ok, calls", [
    (0, 3, True, 1),
    (2, 3, True, 3),
    (3, 3, True, 4),
    (4, 3, False, 4),
    (1, 0, False, 1),
])
def test_retry_counts(failures, retries, ok, calls):
    inner = ScriptedKms([down()] * failures)
    sleeps = []
    r = ResilientKms(inner, retries=retries, base_delay_s=0.1, max_delay_s=1, sleep=sleeps.append,
                     breaker=CircuitBreaker(failure_threshold=100))
    if ok:
        assert r.describe_key() == 1
    else:
        with pytest.raises(KmsUnavailable):
            r.describe_key()
    assert inner.calls == calls
    assert len(sleeps) == calls - 1


def test_refusal_is_not_retried():
    inner = ScriptedKms([KmsRefused("scripted unwrap (kek 'test-kek'): permission denied")])
    r = ResilientKms(inner, retries=5, sleep=lambda s: None)
    with pytest.raises(KmsRefused):
        r.describe_key()
    assert inner.calls == 1
    assert r.breaker.state == CLOSED


@pytest.mark.parametrize("n, cap", [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (12, 1.0)])
def test_backoff_is_full_jitter_within_the_cap(n, cap):
    r = ResilientKms(ScriptedKms(), base_delay_s=0.1, max_delay_s=1.0, rng=random.Random(n))
    delays = [r.delay(n) for _ in range(300)]
    assert all(0 <= d <= cap for d in delays)
    assert max(delays) > cap * 0.8 and min(delays) < cap * 0.2   # spread over the whole range


def test_breaker_states():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=2, reset_timeout_s=30, clock=clock)
    inner = ScriptedKms([down()] * 3)
    r = ResilientKms(inner, retries=0, breaker=b, sleep=lambda s: None)
    for _ in range(2):
        with pytest.raises(KmsUnavailable):
            r.describe_key()
    assert b.state == OPEN
    with pytest.raises(KmsUnavailable, match="circuit open"):
        r.describe_key()
    assert inner.calls == 2                    # open: no call went out
    clock.t = 30
    assert b.state == HALF_OPEN
    with pytest.raises(KmsUnavailable):        # the trial fails: open again
        r.describe_key()
    assert b.state == OPEN and inner.calls == 3
    clock.t = 61
    assert r.describe_key() == 1               # the trial succeeds: closed
    assert b.state == CLOSED


def test_half_open_lets_one_trial_through():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, reset_timeout_s=5, clock=clock)
    b.failure()
    clock.t = 5
    assert b.allow() is True
    assert b.allow() is False
    b.success()
    assert b.allow() is True and b.state == CLOSED


# --------------------------------------------------------------------------- instrumentation
@pytest.mark.parametrize("script, outcome", [
    ([None], "success"),
    ([down()], "unavailable"),
    ([KmsRefused("scripted describe (kek 'test-kek'): refused")], "refused"),
])
def test_instrumentation_outcomes(script, outcome):
    seen = []
    k = InstrumentedKms(ScriptedKms(script), observer=lambda *a: seen.append(a))
    try:
        k.describe_key()
    except Exception:  # noqa: BLE001 - the outcome is what is checked
        pass
    (provider, operation, got, seconds), = seen
    assert (provider, operation, got) == ("scripted", "describe", outcome)
    assert seconds >= 0


def test_standard_stack_counts_every_attempt_and_no_cache_hit():
    seen = []
    from proxy.crypto.kms import instrumentation
    instrumentation.set_observer(lambda *a: seen.append(a))
    try:
        inner = ScriptedKms()
        w = inner.wrap(os.urandom(32)).ciphertext
        inner.script = [down(), None]
        k = decorate(inner)
        k.inner.base_delay_s = 0            # ResilientKms: no real sleeping in a unit test
        k.unwrap(w)
        k.unwrap(w)                         # a cache hit: no call, no observation
    finally:
        instrumentation.set_observer(None)
    assert [(o, r) for _, o, r, _ in seen] == [("unwrap", "unavailable"), ("unwrap", "success")]


# --------------------------------------------------------------------------- no key material shown
def test_no_key_material_in_reprs_or_errors():
    inner = ScriptedKms()
    dek = os.urandom(32)
    wrapped = inner.wrap(dek)
    c = CachingKms(ResilientKms(InstrumentedKms(inner, observer=lambda *a: None), sleep=lambda s: None))
    c.unwrap(wrapped.ciphertext)
    texts = [repr(c), str(c), repr(wrapped), str(wrapped), repr(c.inner), repr(c.inner.breaker.state),
             repr(c._entries)]
    inner.script = [KmsRefused("scripted unwrap (kek 'test-kek'): refused")]
    c.clear()
    with pytest.raises(KmsRefused) as e:
        c.unwrap(wrapped.ciphertext)
    texts.append(str(e.value))
    for t in texts:
        for secret in (dek, wrapped.ciphertext):
            assert secret.hex() not in t and secret.hex().upper() not in t
            assert repr(secret) not in t
