"""``proxy._native.JsonPlan`` (rules over raw JSON bytes in C, :mod:`proxy.policy.jsonplan`) gives
exactly the reference path's bytes, outcomes and counters, or hands the record back.

* a table of tokens: copied verbatim only in orjson's canonical form, every other form handed back;
* on generated policies of the plan's actions (mask, pseudonymize, redact, drop, alternations,
  block conditions) and generated records, also hostile text (escapes, unicode, whitespace,
  duplicates, numbers of every form, truncation, flipped bytes): ``protect_batch`` with the plan
  equals it without (``DPP_NATIVE_JSON=0``) and ``process()``, bytes and counters;
* the parser never crashes on arbitrary bytes, and a sink result is always orjson's bytes;
* which routes get no plan (the builder's refusals), and the C API capsule.
"""
from __future__ import annotations

import ctypes
import json
import random

import orjson
import pytest
import yaml
from hostilekit import one_route_policies
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_fastpath import ALPHABETS, NAMES, RECORD, TEXT, policies
from test_ff1 import VECTORS

from proxy.errors import PolicyError
from proxy.policy import fastpath
from proxy.policy.compiler import SINK, Outcome, compile_policy
from proxy.policy.loader import load_policy_text

pytestmark = pytest.mark.skipif(fastpath._native is None or not hasattr(fastpath._native, "JsonPlan"),
                                reason="proxy._native not built (no C compiler)")

KEYS = {"K": "11" * 32, "DLQ": "22" * 32}
SINK_, HANDBACK, BLOCK_ = 0, 1, 2
RANGE = "range"


def _policy(rules: list, block: list | None = None, **route) -> str:
    r = {"name": "r", "source": "in.t", "sink": "out.t", "dead_letter": "dlq.t", "dead_letter_key": "dlq",
         "rules": rules, **route}
    if block:
        r["block"] = block
    return yaml.safe_dump({"version": 1, "name": "jp", "keys": {"k": {"source": "env", "name": "K"},
                                                                 "dlq": {"source": "env", "name": "DLQ"}},
                           "routes": [r]}, allow_unicode=True, sort_keys=False)


def _route(text: str, json_on: bool, monkeypatch, native: bool = True):
    monkeypatch.setenv("DPP_NATIVE", "1" if native else "0")
    monkeypatch.setenv("DPP_NATIVE_JSON", "1" if json_on else "0")
    return compile_policy(load_policy_text(text, "jp.yaml"), environ=KEYS).route()


UNMATCHED = _policy([{"field": "zz", "action": "mask"}])


# ------------------------------------------------------------------ canonical tokens vs orjson
@pytest.mark.parametrize("token, verbatim", [
    (b"0", True), (b"-0", False), (b"12", True), (b"-12", True), (b"012", False), (b"123456789012345678", True),
    (b"1234567890123456789", RANGE), (b"-123456789012345678", True), (b"1.0", True), (b"591.0", True),
    (b"1.50", False), (b"1e5", False), (b"1E5", False), (b"1.0e0", False), (b"0.1", True), (b"0.0001", True),
    (b"0.00001", RANGE), (b"-0.0", True), (b"0.0", True), (b"1.0000000000000002", True), (b"1.00000000000000002", False),
    (b"100000000000000000.0", False), (b"1e400", False), (b".5", False), (b"1.", False), (b"+1", False),
    (b'"a"', True), (b'"\\n\\r\\t\\b\\f\\"\\\\"', True), (b'"\\u000a"', False), (b'"\\u0008"', False),
    (b'"\\u001f"', True), (b'"\\u0000"', True), (b'"\\u001F"', False), (b'"\\/"', False), (b'"\\u00e9"', False),
    (b'"\\ud83d\\ude00"', False), ('"é王😀"'.encode(), True), (b'"\x7f"', True), (b'"\x01"', False),
    (b'"\xed\xa0\x80"', False), (b'"\xc0\xaf"', False), (b'"\xe0\x80\xaf"', False), (b'"\xf4\x90\x80\x80"', False),
    (b'"\xf5\x80\x80\x80"', False), (b'"\x80"', False), (b'"\xe2\x80"', False), (b'"\xe2\x80\xa8"', True),
    (b"true", True), (b"false", True), (b"null", True), (b"nul", False), (b"True", False),
    (b"[]", True), (b"[1,[2,{}]]", True), (b"[1,]", False), (b"{}", True), (b'{"a":1,}', False),
])
def test_a_token_is_copied_only_in_orjson_canonical_form(token, verbatim, monkeypatch):
    route = _route(UNMATCHED, True, monkeypatch)
    value = b'{"x":' + token + b"}"
    rc, out, _m, _b = route.json_plan.rewrite(value)
    assert (rc == SINK_) is (verbatim is True)
    if verbatim is RANGE:  # canonical, but beyond the plan's safe range (Python's exact path)
        assert orjson.dumps(orjson.loads(value)) == value
    elif verbatim:
        assert out == value == orjson.dumps(orjson.loads(value))  # orjson's own form: verbatim is exact
    else:  # handed back: either invalid JSON or orjson writes it differently
        try:
            assert orjson.dumps(orjson.loads(value)) != value
        except orjson.JSONDecodeError:
            pass


@pytest.mark.parametrize("value, outcome", [
    (b' { "x" : 1 ,\n\t"y":[ 1 , 2 ] } \n', SINK_),   # whitespace dropped
    (b"{} x", HANDBACK), (b"{}{}", HANDBACK), (b"[1]", HANDBACK), (b'"s"', HANDBACK), (b"", HANDBACK),
    (b'{"x":1,"x":2}', HANDBACK), (b'{"a":{"x":1,"x":1}}', HANDBACK), (b'{"x":1', HANDBACK), (b"\xef\xbb\xbf{}", HANDBACK),
    (b'{"a":' * 3 + b"1" + b"}" * 3, SINK_), (b'{"a":' * 5 + b"1" + b"}" * 5, HANDBACK),  # max_depth 4 below
    (b'{"a":' + b"[" * 4 + b"]" * 4 + b"}", HANDBACK),
])
def test_structure_limits_and_trailing_bytes(value, outcome, monkeypatch):
    route = _route(_policy([{"field": "zz", "action": "mask"}], limits={"max_depth": 4}), True, monkeypatch)
    rc, out, _m, _b = route.json_plan.rewrite(value)
    assert rc == outcome
    if rc == SINK_:
        assert out == orjson.dumps(orjson.loads(value))


def test_floats_verbatim_are_orjson_floats():
    """The plan's float rule (Python's repr, plain notation) agrees with orjson on every double it accepts."""
    rng = random.Random(7)
    for _ in range(20000):
        x = rng.choice([rng.uniform(-1e6, 1e6), rng.random() * 10 ** rng.randint(-6, 17), float(rng.randint(-10**6, 10**6))])
        r = repr(x).encode()
        if b"e" not in r and b"inf" not in r:
            assert orjson.dumps(x) == r


# ------------------------------------------------------------------------ generated policies
KEY_PATHS = st.sampled_from(NAMES) | st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(NAMES), st.sampled_from(NAMES))
ALT_PATHS = st.builds(lambda ks, b: "{" + ",".join(ks) + "}." + b,
                      st.lists(st.sampled_from(NAMES), min_size=2, max_size=3, unique=True), st.sampled_from(NAMES))


@st.composite
def plan_rules(draw) -> dict:
    action = draw(st.sampled_from(["mask", "mask", "pseudonymize", "pseudonymize", "redact", "drop", "fpe", "tokenize"]))
    field = draw(KEY_PATHS if action == "drop" else KEY_PATHS | ALT_PATHS | st.just('"a.b"'))
    rule: dict = {"field": field, "action": action}
    if action == "mask":
        rule.update(keep_first=draw(st.integers(0, 4)), keep_last=draw(st.integers(0, 4)),
                    mask_char=draw(st.sampled_from(["*", "0", "王", "\U0001F600"])), mask_separators=draw(st.booleans()))
    elif action == "pseudonymize":
        rule.update(key="k", normalize=draw(st.sampled_from(["none", "string", "email"])),
                    encoding=draw(st.sampled_from(["hex", "base32"])),
                    length=draw(st.none() | st.integers(8, 60)), prefix=draw(st.sampled_from(["", "p_", "é\n\"", "\x01"])))
    elif action == "redact":
        rule["value"] = draw(st.sampled_from([None, "[x]", 0, False, "é\n\u2028", -12, 1.5]))
    elif action == "fpe":
        rule.update(key="k", alphabet=draw(st.sampled_from(["digits", "alnum", "upper"])))
    elif action == "tokenize":
        rule.update(key="k", prefix=draw(st.sampled_from(["", "tok_"])))
    return rule


BLOCK_VALUES = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["x", "a", "é", "\n", ""])


@st.composite
def plan_policies(draw, max_rules: int = 4) -> str:
    """Policies of the plan's actions: rules of :func:`plan_rules`, up to two ``equals``/``in``
    block conditions on object-key paths (the shapes :mod:`proxy.policy.jsonplan` does in C;
    overlapping rules make routes without a plan, which must give the same results too)."""
    rules = draw(st.lists(plan_rules(), min_size=1, max_size=max_rules))
    blocks = draw(st.lists(st.tuples(KEY_PATHS, BLOCK_VALUES, st.booleans()), max_size=2))
    block = [{"when": {"field": f, **({"in": [v, "x"]} if in_ else {"equals": v})}, "reason": f"r{i}"}
             for i, (f, v, in_) in enumerate(blocks)]
    return _policy(rules, block or None, limits={"max_depth": draw(st.sampled_from([3, 128]))})


PLAN_POLICIES = plan_policies() | one_route_policies(plan_rules(), KEY_PATHS, BLOCK_VALUES, max_rules=5, name="jp")
TEXTY = (st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | TEXT
         | st.sampled_from(["4111-1111-1111-1111", "11010519491231002X", "A1234567", "ABCD-efgh", "1234567890"]))
PLAN_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
                         | TEXTY, lambda kids: st.lists(kids, max_size=3)
                         | st.dictionaries(st.sampled_from(NAMES + ["a.b", "d"]), kids, max_size=4), max_leaves=10)
PLAN_RECORD = st.dictionaries(st.sampled_from(NAMES + ["a.b", "d", "f"]), PLAN_JSON, max_size=5)


@st.composite
def hostile_text(draw, record_strategy) -> bytes:
    """A record's JSON text: orjson's, or json.dumps' (escapes, spaces, indentation, floats as
    ``1e-05``), duplicated members, then maybe truncated or with a byte flipped or inserted."""
    rec = draw(record_strategy)
    kind = draw(st.sampled_from(["orjson", "orjson", "json", "dup"]))
    if kind == "orjson":
        try:
            v = orjson.dumps(rec)
        except TypeError:  # an integer beyond 64 bits
            v = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
    elif kind == "json":
        v = json.dumps(rec, ensure_ascii=draw(st.booleans()), indent=draw(st.none() | st.integers(0, 2)),
                       separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))).encode()
    else:
        v = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
        if len(v) > 2:
            k = draw(st.sampled_from(NAMES))
            v = v[:-1] + (b"," if rec else b"") + b'"' + k.encode() + b'":' + draw(st.sampled_from([b"1", b'"x"', b"null"])) + b"}"
    mutate = draw(st.sampled_from(["none", "none", "none", "cut", "flip", "insert"]))
    if mutate != "none" and v:
        at = draw(st.integers(0, len(v) - 1))
        if mutate == "cut":
            v = v[:at]
        elif mutate == "flip":
            v = v[:at] + bytes([v[at] ^ draw(st.sampled_from([1, 0x20, 0x80]))]) + v[at + 1:]
        else:
            v = v[:at] + draw(st.sampled_from([b"\\", b'"', b"\x00", b"\xff", b" ", b"-0", b"1e5", b"\\u0041"])) + v[at:]
    return v


def _counters(route) -> tuple:
    s = route.stats.drain()
    return s.consumed, s.produced, s.blocked, s.dead_lettered, s.transforms, s.unmatched, sum(s.latency_buckets)


def _assert_plan_equals_reference(text, values, monkeypatch):
    try:
        reference = _route(text, False, monkeypatch, native=False)
    except PolicyError:
        assume(False)
    want = [reference.process(v) for v in values]
    want_counts = _counters(reference)
    for json_on in (True, False):
        route = _route(text, json_on, monkeypatch)
        got = route.protect_batch(values)
        assert [Outcome(SINK, g) if type(g) is bytes else g for g in got] == want, f"json={json_on}"
        assert _counters(route) == want_counts, f"json={json_on}"
    return route


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=PLAN_POLICIES, values=st.lists(hostile_text(PLAN_RECORD), min_size=1, max_size=8),
       extra=st.lists(st.sampled_from([None, b"{", b"[1]", b'"s"', b"{}"]), max_size=2))
def test_json_plan_equals_the_reference_path(text, values, extra, monkeypatch):
    _assert_plan_equals_reference(text, values + extra, monkeypatch)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=policies(), values=st.lists(hostile_text(RECORD), min_size=1, max_size=6))
def test_json_plan_equals_the_reference_path_on_every_action(text, values, monkeypatch):
    """test_fastpath's policies (every action, array paths, allow-lists): a plan or none, same results."""
    _assert_plan_equals_reference(text, values, monkeypatch)


ASCII_RECORD = st.dictionaries(st.sampled_from(NAMES + ["d"]), st.recursive(
    st.none() | st.text(st.characters(max_codepoint=127), max_size=12),
    lambda kids: st.dictionaries(st.sampled_from(NAMES), kids, max_size=3), max_leaves=8), max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.filter_too_much])
@given(text=plan_policies(max_rules=3), records=st.lists(ASCII_RECORD, min_size=1, max_size=4))
def test_canonical_records_are_done_in_c(text, records, monkeypatch):
    """Records as orjson writes them (ASCII text and null leaves: a number at a string rule's path
    is the transforms' JSON-text case, Python's; no key spelled like a dotted path):
    every one the reference path sends to the sink or blocks is done by the plan, none handed back
    (so the C path is the common one)."""
    try:
        route = _route(text, True, monkeypatch)
        reference = _route(text, False, monkeypatch, native=False)
    except PolicyError:
        assume(False)
    assume(route.json_plan is not None)
    values = [orjson.dumps(r) for r in records]
    done = route.json_plan.rewrite_batch(values)[0]
    for v, d in zip(values, done):
        if reference.process(v).kind != "dead_letter":
            assert d is not None, v


# -------------------------------------------------------------- keyed rules: the vectors
def _one_rule_plan(op: int, params: tuple):
    """A JsonPlan of one rule on key ``v`` (spec by hand: the C side's own checks)."""
    fastpath._native_ready()
    from proxy.policy.compiler import DL_LIMIT_TIME, LATENCY_BUCKETS
    return fastpath._native.JsonPlan((1, [(op, 0, (), "", None, params)], [(((1, b"v"),), -1, True, ()), ((), 0, False, ())],
                                      (), 128, 1 << 20, 1.0, tuple(LATENCY_BUCKETS), (), DL_LIMIT_TIME))


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_ff1_nist_sp800_38g_vectors_through_the_json_path(vec):
    from proxy.crypto.ff1 import max_length, min_length
    radix = len(vec["alphabet"])
    plan = _one_rule_plan(fastpath.OP_FF1, (bytes.fromhex(vec["key_hex"]), bytes.fromhex(vec["tweak_hex"]),
                                            fastpath.ff1_table(vec["alphabet"], lambda c: False), vec["alphabet"],
                                            min_length(radix), max_length(radix)))
    value = orjson.dumps({"v": vec["plaintext"], "w": 1})
    assert plan.rewrite(value)[:3] == (SINK_, orjson.dumps({"v": vec["ciphertext"], "w": 1}), [1])


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=32, max_size=32) | st.binary(min_size=64, max_size=64), ad=st.binary(max_size=40),
       text=TEXTY | st.text(max_size=60).filter(lambda t: not any(0xD800 <= ord(c) < 0xE000 for c in t)))
def test_aes_siv_tokens_through_the_json_path_equal_cryptography(key, ad, text):
    """A token (prefix + base32(version || V || C), RFC 5297 AES-SIV; the primitive is checked
    against RFC 5297 A.1 in test_fastpath.py) of the value's text, escapes and all, equals
    ``cryptography``'s AES-SIV of its UTF-8 bytes."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESSIV
    plan = _one_rule_plan(fastpath.OP_TOKEN, (key, False, ad, "t_", 3))
    rc, got, matches, _ = plan.rewrite(orjson.dumps({"v": text}))
    assert rc == SINK_ and matches == [1]
    token = orjson.loads(got)["v"]
    raw = base64.b32decode(token[2:].upper() + "=" * (-len(token[2:]) % 8))
    assert token.startswith("t_") and raw == b"\x03" + AESSIV(key).encrypt(text.encode(), [ad])


# --------------------------------------------------------------------------------- fuzzing
def _fuzz_route(monkeypatch):
    text = _policy([{"field": "a", "action": "mask", "keep_first": 1}, {"field": "b.c", "action": "drop"},
                    {"field": "{c,d}.e", "action": "pseudonymize", "key": "k", "normalize": "email"},
                    {"field": "f", "action": "redact", "value": "[r]"}],
                   block=[{"when": {"field": "b.x", "in": [1, "y", None]}, "reason": "blk"}])
    return _route(text, True, monkeypatch), _route(text, False, monkeypatch, native=False)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200) | hostile_text(PLAN_RECORD))
def test_the_parser_survives_any_bytes(data, monkeypatch):
    route, reference = _fuzz_route(monkeypatch)
    rc, out, matches, block = route.json_plan.rewrite(data)
    assert rc in (SINK_, HANDBACK, BLOCK_)
    want = reference.process(data)
    if rc == SINK_:
        assert want.kind == SINK and want.value == out and len(matches) == 4
    elif rc == BLOCK_:
        assert want.kind == "block" and want.reason == "blk" and block == 0


# ------------------------------------------------------------------- builder, API, switches
@pytest.mark.parametrize("rules, block, route_extra", [
    ([{"field": "a[*]", "action": "mask"}], None, {}),
    ([{"field": "*.a", "action": "mask"}], None, {}),
    ([{"field": "a", "action": "fpe", "key": "k", "alphabet_chars": ALPHABETS["han"]}], None, {}),
    ([{"field": "a", "action": "pseudonymize", "key": "k", "normalize": "phone"}], None, {}),
    ([{"field": "a", "action": "pseudonymize", "key": "k", "encoding": "base64url"}], None, {}),
    ([{"field": "a", "action": "keep"}], None, {}),
    ([{"field": "a", "action": "mask"}], None, {"unlisted_fields": "drop"}),
    ([{"field": "{a,b}.c", "action": "drop"}], None, {}),
    ([{"field": "a", "action": "mask"}], [{"when": {"field": "b", "not_equals": True}, "reason": "x"}], {}),
    ([{"field": "a", "action": "mask"}], [{"when": {"field": "b", "equals": 1.5}, "reason": "x"}], {}),
    ([{"field": "a", "action": "mask"}], [{"when": {"field": "b", "equals": 10**19}, "reason": "x"}], {}),
    ([{"field": "a", "action": "redact"}], [{"when": {"field": "a.b", "equals": 1}, "reason": "x"}], {}),
    ([{"field": "a", "action": "mask"}], [{"when": {"field": "b[0]", "equals": 1}, "reason": "x"}], {}),
])
def test_routes_the_plan_does_not_do_get_none(rules, block, route_extra, monkeypatch):
    route = _route(_policy(rules, block, **route_extra), True, monkeypatch)
    assert route.json_plan is None and route.record_path == "native"


def test_switches_and_record_path(monkeypatch):
    text = _policy([{"field": "a", "action": "mask"}])
    assert _route(text, True, monkeypatch).record_path == "native-json"
    assert _route(text, False, monkeypatch).json_plan is None
    assert _route(text, True, monkeypatch, native=False).record_path == "python"


def test_a_wiped_json_plan_hands_every_record_back(monkeypatch):
    """``wipe_native()`` (a replaced policy): the plan's keyed state is gone, every record goes to
    the batch path, whose wiped ``Plan`` fails it closed (dead letter), as before the JsonPlan."""
    route = _route(_policy([{"field": "a", "action": "pseudonymize", "key": "k"}]), True, monkeypatch)
    assert route.json_plan.rewrite(b'{"a":"x"}')[0] == SINK_
    route.wipe_native()
    assert route.json_plan.rewrite(b'{"a":"x"}')[0] == HANDBACK
    out = route.protect_batch([b'{"a":"x"}'])
    assert (out[0].kind, out[0].error_class) == ("dead_letter", "RuntimeError")


def test_matches_count_alternation_paths_and_blocks_decide_in_order(monkeypatch):
    text = _policy([{"field": "{a,b}.c", "action": "mask"}, {"field": "d", "action": "drop"}],
                   block=[{"when": {"field": "x", "equals": 1}, "reason": "one"},
                          {"when": {"field": "y", "in": [True, "z"]}, "reason": "two"}])
    plan = _route(text, True, monkeypatch).json_plan
    assert plan.rewrite(b'{"a":{"c":"xy"},"b":{"c":"z"},"d":1}') == (SINK_, b'{"a":{"c":"**"},"b":{"c":"*"}}', [2, 1], -1)
    assert plan.rewrite(b'{"a":null,"b":{}}') == (SINK_, b'{"a":null,"b":{}}', [0, 0], -1)
    assert plan.rewrite(b'{"y":"z","x":1}')[::3] == (BLOCK_, 0)
    assert plan.rewrite(b'{"y":true,"x":1.0}')[0] == HANDBACK  # a float at a condition's path
    assert plan.rewrite(b'{"y":true}')[::3] == (BLOCK_, 1)
    assert plan.rewrite(b'{"a":"s"}')[0] == HANDBACK  # a string where {a,b}.c needs an object


def test_the_c_api_capsule(monkeypatch):
    """dpp_native.h's table: its ABI and its functions on a JsonPlan (through ctypes)."""
    cap = fastpath._native._C_API
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    ptr = get(cap, b"proxy._native._C_API")

    class Buf(ctypes.Structure):
        _fields_ = [("data", ctypes.POINTER(ctypes.c_ubyte)), ("len", ctypes.c_size_t), ("cap", ctypes.c_size_t)]

    class Api(ctypes.Structure):
        _fields_ = [("abi", ctypes.c_int),
                    ("is_plan", ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object)),
                    ("n_rules", ctypes.PYFUNCTYPE(ctypes.c_ssize_t, ctypes.py_object)),
                    ("n_blocks", ctypes.PYFUNCTYPE(ctypes.c_ssize_t, ctypes.py_object)),
                    ("rewrite", ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p, ctypes.c_size_t,
                                                  ctypes.POINTER(Buf), ctypes.POINTER(ctypes.c_int32),
                                                  ctypes.POINTER(ctypes.c_int)))]
    api = Api.from_address(ptr)
    assert api.abi == fastpath._native.DPP_API_ABI == 1
    plan = _route(_policy([{"field": "a", "action": "mask"}, {"field": "b", "action": "drop"}],
                          block=[{"when": {"field": "c", "equals": "x"}, "reason": "q"}]), True, monkeypatch).json_plan
    assert api.is_plan(plan) == 1 and api.is_plan(object()) == 0
    assert (api.n_rules(plan), api.n_blocks(plan)) == (2, 1)
    buf, matches, block = Buf(), (ctypes.c_int32 * 2)(), ctypes.c_int(-1)
    value = b'{"a":"xyz","b":1}'
    assert api.rewrite(plan, value, len(value), ctypes.byref(buf), matches, ctypes.byref(block)) == SINK_
    assert ctypes.string_at(buf.data, buf.len) == b'{"a":"***"}' and list(matches) == [1, 1]
    matches[0] = matches[1] = 7  # untouched unless DPP_SINK (dpp_native.h)
    value = b'{"c":"x","a":"y"}'
    assert api.rewrite(plan, value, len(value), ctypes.byref(buf), matches, ctypes.byref(block)) == BLOCK_
    assert block.value == 0 and list(matches) == [7, 7]
    value = b'{"a":1.5e3}'
    assert api.rewrite(plan, value, len(value), ctypes.byref(buf), matches, ctypes.byref(block)) == HANDBACK
    assert list(matches) == [7, 7] and buf.len == 0
    ctypes.CDLL(None).free(buf.data)


@pytest.mark.parametrize("key", ["é", "王", "a b", "q\"uote", "back\\slash", "tab\there", "line\u2028sep", "\x01ctl", "x/y"])
@pytest.mark.parametrize("action", [{"action": "mask", "keep_first": 1}, {"action": "drop"},
                                    {"action": "pseudonymize", "key": "k", "normalize": "email", "prefix": "é\""}])
def test_keys_and_values_that_need_escapes(key, action, monkeypatch):
    """A rule on a key orjson escapes (or writes as raw UTF-8), on records whose keys and values
    need escapes: the plan matches the key in its escaped form and writes orjson's bytes."""
    field = '"' + key + '"' if "." in key or " " in key else key
    text = _policy([{"field": field, **action}, {"field": "n", "action": "redact", "value": "\u0000é"}],
                   block=[{"when": {"field": key, "equals": "stop\n"}, "reason": "s"}])
    try:
        reference = _route(text, False, monkeypatch, native=False)
    except PolicyError:
        pytest.skip("the path syntax does not take this key")
    route = _route(text, True, monkeypatch)
    assert route.json_plan is not None
    values = [orjson.dumps(r) for r in ({key: "Ab\"c\\\n\x1f", "n": 1, "o": key}, {key: "stop\n"},
                                        {key: " Bob@X.org ", "k\x02": {"\u2028": "é"}}, {"o": 1})]
    want = [reference.process(v) for v in values]
    assert route.json_plan.rewrite_batch(values)[0].count(None) == 0
    got = route.protect_batch(values)
    assert [Outcome(SINK, g) if type(g) is bytes else g for g in got] == want
    assert _counters(route)[:6] == _counters(reference)[:6]
