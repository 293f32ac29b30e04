"""The hot-path shortcuts (issue 5) compute exactly what the general code computes.

* ``pseudonymize._base32`` (10 bits at a time, only the characters needed) is RFC 4648 base32 as
  the standard library writes it, lower case, unpadded, cut to the length;
* ``CompiledRoute._key_step`` (rules on object-key paths, rewritten inline) and the inline block
  condition of ``_compile_block`` select, rewrite and count exactly the nodes ``compile_visit``
  does, on arbitrary JSON-like records, and fail with the same error;
* ``RouteWorker._next_batch`` takes what is already fetched without waiting, otherwise waits for
  the first record and then at most ``batch_linger_s`` for more, as the arrival rate warrants (AdaptiveLinger);
* ``RouteWorker._commit``: a commit the broker refuses because the group is rebalancing does not
  stop the worker; the offsets are committed with the next batch for partitions still owned
  (dropped for revoked ones); any other commit error still stops it.
"""
from __future__ import annotations

import threading

import base64
import copy
import os
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import Reason, RecordError, Stage, TransformError
from proxy.policy.compiler import CompiledRoute, _compile_block, _json_equal
from proxy.policy.paths import PathShapeError, compile_visit, parse_path
from proxy.transforms.pseudonymize import _base32, encode_digest


# ----------------------------------------------------------------------------------- base32
@pytest.mark.parametrize("size", [0, 1, 4, 5, 6, 16, 20, 31, 32, 33, 64])
@pytest.mark.parametrize("length", [None, 0, 1, 2, 7, 8, 20, 24, 51, 52, 53, 128])
def test_base32_matches_the_standard_library(size, length):
    for _ in range(20):
        digest = os.urandom(size)
        full = base64.b32encode(digest).decode().rstrip("=").lower()
        assert _base32(digest, length) == (full[:length] if length else full)
        assert encode_digest(digest, "base32", length) == (full[:length] if length else full)


@pytest.mark.parametrize("encoding", ["hex", "base64url"])
def test_encode_digest_length_cuts_the_full_text(encoding):
    digest = os.urandom(32)
    full = encode_digest(digest, encoding)
    for length in (8, 20, 43, 64, 100):
        assert encode_digest(digest, encoding, length) == full[:length]


# ----------------------------------------------------------------------------- rule steps
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text("ab", max_size=3))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abc"), inner, max_size=3)), max_leaves=12)
records = st.dictionaries(st.sampled_from("abc"), json_value, max_size=3)
key_paths = st.lists(st.sampled_from("abc"), min_size=1, max_size=3).map(".".join)


def _apply(value):
    """A transform stand-in: strings are tagged, ``"b"`` fails, other values are wrapped."""
    if value == "b":
        raise TransformError(Reason.TRANSFORM_FAILED, "test")
    return f"<{value}>" if isinstance(value, str) else ["wrapped", value]


def _generic_step(segs, apply, label):
    """The general path: compile_visit(strict=True) with a set_node like CompiledRoute._step's."""
    visit = compile_visit(segs, strict=True)

    def set_node(c, k):
        try:
            c[k] = apply(c[k])
        except TransformError as e:
            raise RecordError(Stage.TRANSFORM, e.reason, label) from None

    def step(obj, hits):
        try:
            return visit(obj, set_node)
        except PathShapeError:
            raise RecordError(Stage.TRANSFORM, Reason.UNEXPECTED_SHAPE, label) from None
    return step


def _run(step, obj):
    try:
        return ("ok", step(obj, []), obj)
    except RecordError as e:
        return ("error", e.reason, e.rule)


@settings(max_examples=400, deadline=None)
@given(records, key_paths)
def test_key_step_equals_compile_visit(record, path):
    segs = parse_path(path)
    fast = CompiledRoute._key_step(segs, _apply, "rule-x")
    slow = _generic_step(segs, _apply, "rule-x")
    assert _run(fast, copy.deepcopy(record)) == _run(slow, copy.deepcopy(record))


@settings(max_examples=400, deadline=None)
@given(records, key_paths, st.lists(json_leaf, min_size=1, max_size=3))
def test_inline_block_condition_equals_compile_visit(record, path, wanted):
    when = SimpleNamespace(field=path, equals=wanted[0], in_=None if len(wanted) == 1 else wanted)
    hit = _compile_block(when)
    found: list = []
    compile_visit(parse_path(path))(record, lambda c, k: found.append(c[k]))
    want = [when.equals] if when.in_ is None else list(when.in_)
    assert hit(record) == any(_json_equal(v, w) for v in found for w in want)


def test_key_step_counts_and_rewrites_nested_fields():
    step = CompiledRoute._key_step(("address", "postcode"), _apply, "r")
    rec = {"address": {"postcode": "a"}}
    assert step(rec, []) == 1 and rec == {"address": {"postcode": "<a>"}}
    for absent in ({}, {"address": None}, {"address": {}}):
        before = copy.deepcopy(absent)
        assert step(absent, []) == 0 and absent == before
    for wrong_shape in ({"address": "x"}, {"address": [{"postcode": "a"}]}):  # fail closed
        with pytest.raises(RecordError) as e:
            step(wrong_shape, [])
        assert e.value.reason is Reason.UNEXPECTED_SHAPE
    with pytest.raises(RecordError) as e:
        step({"address": {"postcode": "b"}}, [])
    assert e.value.rule == "r"


# ------------------------------------------------------------------------------ batches
class _FakeConsumer:
    """``consume(n, timeout)`` from a list of 'fetched' records; records every call."""

    def __init__(self, fetched, arrive_later=()):
        self.fetched, self.later, self.calls = list(fetched), list(arrive_later), []

    def consume(self, n, timeout):
        self.calls.append((n, timeout))
        if not self.fetched and timeout > 0 and self.later:
            self.fetched, self.later = self.later, []
        out, self.fetched = self.fetched[:n], self.fetched[n:]
        return out


def _next_batch(consumer, batch_size=1000, rate=0.0, adaptive=True):
    from proxy.stream.engine import AdaptiveLinger, EngineConfig, RouteWorker
    cfg = EngineConfig("127.0.0.1:1", batch_size=batch_size, batch_linger_adaptive=adaptive)
    linger = AdaptiveLinger(batch_size, cfg.batch_linger_s, cfg.linger_min_gain)
    linger.rate = rate
    return RouteWorker._next_batch(SimpleNamespace(consumer=consumer, cfg=cfg, _linger=linger)), cfg


def test_next_batch_takes_what_is_fetched_without_waiting():
    c = _FakeConsumer(range(2500))
    got, cfg = _next_batch(c)
    assert got == list(range(1000)) and c.calls == [(1000, 0)]


@pytest.mark.parametrize("rate, linger", [
    (0.0, 0.0),          # nothing known yet: the record leaves at once
    (100.0, 0.0),        # light load: 0.5 records expected in 5 ms, not worth waiting
    (50_000.0, 0.005),   # heavy: 250 expected in 5 ms, the batch needs 20 ms: the whole linger
    (1_000_000.0, 0.000999),  # very heavy: the batch is full after 999 µs, no longer
])
def test_next_batch_waits_for_the_first_record_then_lingers_as_the_rate_warrants(rate, linger):
    c = _FakeConsumer([], arrive_later=range(5))
    got, cfg = _next_batch(c, rate=rate)
    assert got == list(range(5))
    assert c.calls[:2] == [(1000, 0), (1, cfg.poll_timeout_s)]
    assert c.calls[2][0] == 999 and c.calls[2][1] == pytest.approx(linger)
    assert cfg.batch_linger_s <= 0.01


@pytest.mark.parametrize("rate", [0.0, 100.0, 50_000.0, 1_000_000.0])
def test_next_batch_with_the_fixed_linger_always_waits_the_whole_linger(rate):
    c = _FakeConsumer([], arrive_later=range(5))
    got, cfg = _next_batch(c, rate=rate, adaptive=False)
    assert got == list(range(5))
    assert c.calls[2] == (999, cfg.batch_linger_s)


@pytest.mark.parametrize("argv, want", [([], "adaptive"), (["--batch-linger", "fixed"], "fixed"),
                                         (["--batch-linger", "adaptive"], "adaptive")])
def test_dpp_run_batch_linger_option(monkeypatch, tmp_path, argv, want):
    from click.testing import CliRunner

    import proxy.cli as cli
    seen = {}
    monkeypatch.setattr(cli, "_run_engine", lambda **params: seen.update(params))
    out = CliRunner().invoke(cli.main, ["run", "--policy", str(tmp_path / "p.yaml"), "--bootstrap-servers", "x:1", *argv])
    assert out.exit_code == 0, out.output
    assert seen["batch_linger"] == want
    bad = CliRunner().invoke(cli.main, ["run", "--policy", "p", "--bootstrap-servers", "x:1", "--batch-linger", "slow"])
    assert bad.exit_code == 2


def _arrivals(pattern):
    """``[(seconds between fetches, records per fetch, fetches), ...]`` → the AdaptiveLinger after them."""
    from proxy.stream.engine import AdaptiveLinger
    lg, now = AdaptiveLinger(1000, 0.005, 16), 0.0
    for gap, n, times in pattern:
        for _ in range(times):
            now += gap
            lg.observe(n, now)
    return lg


@pytest.mark.parametrize("pattern, have, want", [
    ([(1.0, 1, 20)], 1, 0.0),                           # 1 record/s: leave at once
    ([(0.01, 1, 50)], 1, 0.0),                          # 100/s: 0.5 expected per 5 ms
    ([(0.002, 10, 50)], 10, 0.005),                     # 5,000/s: 25 expected in 5 ms, batch needs 0.2 s
    ([(0.01, 1000, 50)], 1, 0.005),                     # 100,000/s in full batches: linger capped at 5 ms
    ([(0.001, 1000, 50)], 500, 0.0005),                 # 1,000,000/s: the other 500 arrive in 0.5 ms
    ([(0.001, 1000, 50)], 1000, 0.0),                   # the batch is full already
    ([(0.01, 1000, 50), (1.0, 1, 30)], 1, 0.0),         # a burst, then 30 s quiet: the estimate decayed, no wait
    ([(1.0, 1, 20), (0.002, 10, 30)], 1, 0.005),        # quiet, then load: the wait comes back
])
def test_adaptive_linger_rule(pattern, have, want):
    assert _arrivals(pattern).wait_s(have) == pytest.approx(want, rel=0.05, abs=1e-6)


def test_next_batch_returns_nothing_after_one_timeout():
    c = _FakeConsumer([])
    got, cfg = _next_batch(c)
    assert got == [] and c.calls == [(1000, 0), (1, cfg.poll_timeout_s)]


# ------------------------------------------------------------------- commits and rebalances
class _CommitConsumer:
    def __init__(self, fail_with=None):
        self.fail_with, self.commits = fail_with, []

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        if self.fail_with is not None:
            err, self.fail_with = self.fail_with, None
            from confluent_kafka import KafkaException
            raise KafkaException(err)


def _worker(consumer, assigned):
    from proxy.stream.engine import RouteWorker
    w = RouteWorker.__new__(RouteWorker)   # no Kafka clients: only what _commit/_on_revoke use
    w.consumer, w.assigned, w._uncommitted = consumer, set(assigned), {}
    w.stop_event, w.waiting_for = threading.Event(), None
    w.route = SimpleNamespace(name="r")
    w.metrics = SimpleNamespace(lag=SimpleNamespace(remove=lambda *a: None))
    return w


@pytest.mark.parametrize("code", ["REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID"])
def test_commit_refused_during_a_rebalance_is_retried_with_the_next_batch(code):
    from confluent_kafka import KafkaError
    c = _CommitConsumer(fail_with=KafkaError(getattr(KafkaError, code)))
    w = _worker(c, {("t", 0), ("t", 1)})
    w._commit({("t", 0): 10, ("t", 1): 5})           # refused: kept
    assert w._uncommitted == {("t", 0): 10, ("t", 1): 5}
    w._commit({("t", 0): 12})                          # next batch: partition 1's offset rides along
    assert c.commits[-1] == {("t", 0): 12, ("t", 1): 5}
    assert w._uncommitted == {}


def test_pending_offsets_of_revoked_partitions_are_dropped():
    from confluent_kafka import KafkaError, TopicPartition
    c = _CommitConsumer(fail_with=KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
    w = _worker(c, {("t", 0), ("t", 1)})
    w._commit({("t", 0): 10, ("t", 1): 5})
    w._on_revoke(None, [TopicPartition("t", 1)])
    w._commit({("t", 0): 11})
    assert c.commits[-1] == {("t", 0): 11}             # never commits a partition it no longer owns


def test_other_commit_errors_still_stop_the_worker():
    from confluent_kafka import KafkaError, KafkaException
    c = _CommitConsumer(fail_with=KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    w = _worker(c, {("t", 0)})
    with pytest.raises(KafkaException):
        w._commit({("t", 0): 1})
