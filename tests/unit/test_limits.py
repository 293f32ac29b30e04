"""Limits against poison pills (route ``limits:``; issue 11, item 6): a record over a limit goes to
the dead-letter topic with the limit's own reason code, on the reference path and on both batch
paths (pure Python and the C accelerator) alike (same outcomes, same counters), and the records
around it are untouched. Bad limit values fail at load with ``FILE:LINE: PATH: message``."""
from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from loadtests.fuzz import RecordOracle, _counters  # noqa: E402

from policykit import policy_text  # noqa: E402
from proxy.errors import PolicyError  # noqa: E402
from proxy.policy.compiler import DEAD_LETTER, SINK, depth_exceeds  # noqa: E402
from proxy.policy.fastpath import _native, native_available, over_limits_py  # noqa: E402
from proxy.policy.loader import load_policy_text  # noqa: E402
from proxy.policy.models import Limits  # noqa: E402

RULES = ["{field: email, action: mask, keep_first: 1}", "{field: note, action: detect, detectors: [email, cn_mobile]}"]
SMALL = "    limits: {max_record_bytes: 400, max_depth: 6, max_detect_chars: 60}\n"


def nested(depth: int) -> bytes:
    """A record whose ``deep`` field nests ``depth - 1`` arrays (the record itself is depth 1)."""
    return b'{"email": "a@example.invalid", "deep": ' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"


def oracle(route: str = SMALL) -> RecordOracle:
    return RecordOracle(policy_text(RULES, route=route), "limits.yaml")


def reason(out) -> str:
    return SINK if out.kind == SINK else out.reason


CASES = [
    # (what, value, expected outcome)
    ("an ordinary record", orjson.dumps({"email": "a@example.invalid", "note": "call 13900001111"}), SINK),
    ("a value of exactly max_record_bytes", orjson.dumps({"email": "x", "pad": "p" * (400 - 22)}), SINK),
    ("a value one byte over", orjson.dumps({"email": "x", "pad": "p" * (400 - 21)}), "limit-record-bytes"),
    ("invalid JSON over the size limit (not parsed at all)", b"{" * 500, "limit-record-bytes"),
    ("nesting at max_depth", nested(6), SINK),
    ("nesting one deeper", nested(7), "limit-depth"),
    ("many brackets, shallow (the screen passes, the walk clears it)",
     orjson.dumps({"email": "x", "a": [[1], [2], [3], [4], [5], [6], [7]]}), SINK),
    ("brackets inside strings only", orjson.dumps({"email": "x", "s": "[[[[[[[[[[{{{{"}), SINK),
    ("a detect text of exactly max_detect_chars", orjson.dumps({"email": "x", "note": "n" * 60}), SINK),
    ("a detect text one character over", orjson.dumps({"email": "x", "note": "n" * 61}), "limit-detect-length"),
    ("a long text in a field no detect rule scans", orjson.dumps({"email": "x", "other": "n" * 300}), SINK),
    ("a tombstone", None, SINK),
]


@pytest.mark.parametrize("what, value, want", CASES, ids=[c[0] for c in CASES])
def test_each_limit_on_every_record_path(what, value, want):
    o = oracle()
    ref = o.ref.process(value)
    assert reason(ref) == want, what
    if want != SINK:
        assert ref.kind == DEAD_LETTER and ref.error_class in ("LimitExceeded", "TransformError", "RecordError")
    counts = _counters(o.ref)
    for name, r in o.batches:
        assert r.process_batch([value]) == [ref], name
        assert _counters(r) == counts, name


def test_a_batch_mixing_records_over_and_under_limits_keeps_order_and_counters():
    o = oracle()
    values = [c[1] for c in CASES] * 3
    want = [o.ref.process(v) for v in values]
    counts = _counters(o.ref)
    assert [reason(w) for w in want] == [c[2] for c in CASES] * 3
    assert [name for name, _ in o.batches] == ["python", "native"]   # both batch paths are checked
    for name, r in o.batches:
        assert r.process_batch(values) == want, name
        assert _counters(r) == counts, name


def test_nesting_beyond_what_orjson_parses_is_a_depth_limit_too():
    o = oracle("")
    value = b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert o.ref.process(value).reason == "limit-depth"
    for name, r in o.batches:
        assert r.process_batch([value])[0].reason == "limit-depth", name


def test_the_time_budget_dead_letters_a_slow_record_that_would_reach_the_sink():
    o = oracle("    limits: {time_budget_ms: 0.000001}\n")   # 1 ns: every record is over it
    ok = orjson.dumps({"email": "a@example.invalid"})
    bad = b"{not json"
    assert [reason(o.ref.process(v)) for v in (ok, bad)] == ["limit-time-budget", "invalid-json"]
    counts = _counters(o.ref)
    assert counts[1] == 0 and counts[3] == {"limit-time-budget": 1, "invalid-json": 1}
    for name, r in o.batches:
        assert [reason(x) for x in r.process_batch([ok, bad])] == ["limit-time-budget", "invalid-json"], name
        assert _counters(r) == counts, name


def test_defaults_are_safe_and_documented_in_the_schema():
    d = Limits()
    assert (d.max_record_bytes, d.max_depth, d.max_detect_chars, d.time_budget_ms) == (8 << 20, 128, 1 << 20, 1000.0)
    o = oracle("")
    big = orjson.dumps({"email": "x", "pad": "p" * (8 << 20)})   # just over 8 MiB
    assert o.ref.process(big).reason == "limit-record-bytes"
    assert o.ref.process(nested(128)).kind == SINK and o.ref.process(nested(129)).reason == "limit-depth"


@pytest.mark.parametrize("limits, message", [
    ("{max_depth: 0}", "routes[0].limits.max_depth: Input should be greater than or equal to 1"),
    ("{max_depth: 251}", "routes[0].limits.max_depth: Input should be less than or equal to 250"),
    ("{max_record_bytes: -1}", "routes[0].limits.max_record_bytes: Input should be greater than or equal to 1"),
    ("{time_budget_ms: 0}", "routes[0].limits.time_budget_ms: Input should be greater than 0"),
    ("{max_bytes: 10}", "routes[0].limits.max_bytes: unknown key"),
])
def test_bad_limits_fail_at_load_with_file_line_path(limits, message):
    text = policy_text(RULES, route=f"    limits: {limits}\n")
    with pytest.raises(PolicyError) as e:
        load_policy_text(text, "lim.yaml")
    line = text.splitlines().index(f"    limits: {limits}") + 1
    assert str(e.value).startswith(f"lim.yaml:{line}: {message}"), str(e.value)


@pytest.mark.parametrize("obj, limit, over", [
    ({}, 1, False), ({"a": {}}, 1, True), ({"a": [1, [2]]}, 3, False), ({"a": [1, [2]]}, 2, True),
    ([[[[]]]], 4, False), ([[[[]]]], 3, True), ({"a": "[[[["}, 1, False),
])
def test_depth_exceeds(obj, limit, over):
    assert depth_exceeds(obj, limit) is over


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
                    | st.text(alphabet='[]{}"\\ab', max_size=6),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text('[{"\\k', max_size=3), kids,
                                                                                max_size=3),
                    max_leaves=30)


@settings(max_examples=500, deadline=None)
@given(obj=st.dictionaries(st.text(max_size=3), JSON, max_size=3), limit=st.integers(1, 12))
def test_the_screens_flag_every_record_the_reference_holds_too_deep(obj, limit):
    """``proxy._native.over_limits`` scans the exact nesting outside strings (equal to the parsed
    tree's depth); the pure-Python screen counts brackets (never fewer). Both must flag whatever
    the reference path would refuse, or a deep record would slip past a batch path."""
    value = orjson.dumps(obj)
    deep = depth_exceeds(obj, limit)
    if native_available():
        assert bool(_native.over_limits([value], 1 << 30, limit)) is deep
    assert bool(over_limits_py([value], 1 << 30, limit)) >= deep
    assert over_limits_py([value, None], len(value) - 1, 10_000) == [0]


@pytest.mark.parametrize("route, rule, message", [
    ("    limits: {max_record_bytes: true}\n", "{field: email, action: mask}",
     "routes[0].limits.max_record_bytes: Input should be a valid integer"),
    ("", "{field: email, action: mask, keep_first: true}",
     "routes[0].rules[0].keep_first: Input should be a valid integer"),
    ("", "{field: email, action: mask, keep_first: '2'}",
     "routes[0].rules[0].keep_first: Input should be a valid integer"),
])
def test_a_boolean_or_a_string_is_not_an_integer(route, rule, message):
    """The policy models are strict: ``true`` is not 1 and ``'2'`` not 2 (pydantic's lax mode took them)."""
    with pytest.raises(PolicyError) as e:
        load_policy_text(policy_text([rule], route=route), "strict.yaml")
    assert message in str(e.value)
