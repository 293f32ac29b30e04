"""The batch path the engine runs (:mod:`proxy.policy.fastpath`, with and without the C accelerator
``proxy._native``) computes exactly what the reference record path computes.

* ``proxy._native``'s mask and pseudonym equal the Python transforms on arbitrary text and settings;
* on generated policies (every action, nested/array/wildcard paths, block conditions, allow-lists)
  and generated records (every JSON type, missing and wrong-shaped fields, invalid JSON,
  tombstones), ``protect_batch`` (pure Python, with ``Plan``, with ``JsonPlan`` first) gives the
  same bytes and outcomes as ``process`` record by record,
  and the same counters (consumed, produced, blocked, dead-lettered, per-rule transformed/unmatched);
* the generated source never contains policy text (a field name cannot become code).
"""
from __future__ import annotations

import os

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hostilekit import EVENT_TIMES, RETENTION_NOW, one_route_policies
from policykit import policy_text
from proxy.errors import PolicyError
from proxy.policy import fastpath
from proxy.policy.compiler import SINK, Outcome, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.transforms.mask import masker
from proxy.transforms.pseudonymize import Pseudonymize
from test_ff1 import VECTORS

KEYS = {"K": "11" * 32, "DLQ": "22" * 32}
native = pytest.mark.skipif(fastpath._native is None, reason="proxy._native not built (no C compiler)")


def test_native_is_built_where_ci_requires_it():
    """``.ci/run`` sets DPP_REQUIRE_NATIVE=1: the accelerator must not silently go missing."""
    if os.environ.get("DPP_REQUIRE_NATIVE") == "1":
        assert fastpath._native is not None
        assert fastpath.native_available()


# ---------------------------------------------------------------------------------- primitives
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["13900001111", "139-0000-1111", "+1 (555) 010-9999", "1969-11-03", " Bob@Example.COM\t", "王小明",
     "李四", "a", "", "--", "x\x1cy", "ⓑⓞⓑ ⓢⓜⓘⓣⓗ", "🅑🅞🅑", "⠃⠕⠃", "e\u0301", "北京市，朝阳区", "\tAl@X.org\x1f", "\x1c\x0b a@b.CN", "ÉCOLE", "１２３", "٣٤٥"])


@native
@given(text=TEXT, first=st.integers(0, 6), last=st.integers(0, 6),
       char=st.sampled_from(["*", "#", "0", "x", "é", "王", "\U0001F600"]), all_chars=st.booleans())
def test_native_mask_equals_the_python_mask(text, first, last, char, all_chars):
    fastpath._native_ready()
    assert fastpath._native.mask(text, first, last, char, all_chars) == masker(first, last, char, all_chars)(text)


@native
@pytest.mark.parametrize("key, msg, mac", [  # RFC 4231, test cases 1, 2 and 6
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
])
def test_native_hmac_sha256_rfc4231(key, msg, mac):
    assert fastpath._native.hmac_sha256(key, msg).hex() == mac


@native
@given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
def test_native_hmac_sha256_equals_hashlib(key, msg):
    import hashlib
    import hmac
    assert fastpath._native.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def _built(cls, rule_cls, key: bytes = b"\x07" * 32, **fields):
    """Transform ``cls`` built from a ``rule_cls`` rule on field ``f`` with key ``k`` = ``key``."""
    from proxy.crypto.keys import SecretKey
    from proxy.transforms.base import BuildContext
    rule = rule_cls(field="f", key="k", **fields)
    return cls(rule, BuildContext("p", "r", {"k": SecretKey("k", key)}))


def _pseudonymize(normalize: str, encoding: str, length: int | None, prefix: str) -> Pseudonymize:
    from proxy.policy.models import PseudonymizeRule
    return _built(Pseudonymize, PseudonymizeRule, action="pseudonymize", normalize=normalize, encoding=encoding,
                  length=length, prefix=prefix)


def _assert_plan_equals_apply(t, value):
    """A one-rule ``Plan`` of transform ``t`` gives ``t.apply(value)``, or fails with its reason."""
    plan = fastpath._native.Plan([fastpath._native_rule(0, t, (), "f", "label")], lambda i: None)
    rec = {"f": value}
    try:
        want = t.apply(value)
    except Exception as e:  # noqa: BLE001 - the native path must fail the same way
        with pytest.raises(Exception) as got:
            plan(rec, lambda i, o: None)
        assert type(got.value).__name__ == "RecordError" and got.value.reason == e.reason
        return
    plan(rec, lambda i, o: None)
    assert rec["f"] == want and type(rec["f"]) is type(want)


@native
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT | st.text(st.characters(max_codepoint=127), max_size=40),
       normalize=st.sampled_from(["none", "string", "email", "phone"]),
       encoding=st.sampled_from(["hex", "base32", "base64url"]),
       length=st.none() | st.integers(8, 128), prefix=st.sampled_from(["", "p_", "é-"]))
def test_native_pseudonym_equals_the_python_transform(text, normalize, encoding, length, prefix):
    _assert_plan_equals_apply(_pseudonymize(normalize, encoding, length, prefix), text)


# FF1 (fpe) and AES-SIV (tokenize) in C: the published vectors, then the Python transforms
ALPHABETS = {"digits": "0123456789", "hex": "0123456789abcdef", "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
             "alnum": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "bits": "01",
             "han": "零一二三四五六七八九"}  # a non-ASCII alphabet: every value goes to the closure


@native
@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_native_ff1_nist_sp800_38g_vectors(vec):
    from proxy.crypto.ff1 import max_length, min_length
    radix = len(vec["alphabet"])
    table = fastpath.ff1_table(vec["alphabet"], lambda c: False)
    plan = fastpath._native.Plan([(fastpath.OP_FF1, 0, (), "f", None, (
        bytes.fromhex(vec["key_hex"]), bytes.fromhex(vec["tweak_hex"]), table, vec["alphabet"],
        min_length(radix), max_length(radix)))], None)
    rec = {"f": vec["plaintext"]}
    plan(rec, None)  # no fallback (None): C did it
    assert rec["f"] == vec["ciphertext"]


@native
@pytest.mark.parametrize("key, ad, plaintext, out", [  # RFC 5297, A.1 (deterministic authenticated encryption)
    ("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", "101112131415161718191a1b1c1d1e1f2021222324252627",
     "112233445566778899aabbccddee", "85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"),
])
def test_native_aes_siv_rfc5297(key, ad, plaintext, out):
    assert fastpath._native.aes_siv(bytes.fromhex(key), bytes.fromhex(ad), bytes.fromhex(plaintext)).hex() == out


@native
@given(key=st.binary(min_size=32, max_size=32) | st.binary(min_size=48, max_size=48) | st.binary(min_size=64, max_size=64),
       ad=st.binary(max_size=70), msg=st.binary(max_size=120))
def test_native_aes_siv_equals_cryptography(key, ad, msg):
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV
    assert fastpath._native.aes_siv(key, ad, msg) == AESSIV(key).encrypt(msg, [ad])


@st.composite
def fpe_values(draw):
    """An alphabet name and a value: its characters, separators, variants (other case, full width)."""
    name = draw(st.sampled_from(sorted(ALPHABETS)))
    chars = ALPHABETS[name]
    text = draw(st.lists(st.sampled_from(chars) | st.sampled_from(["-", " ", "/", "é"])
                         | st.sampled_from(["Z", "a", "１", "x"]), max_size=70).map("".join))
    return name, draw(st.just(text) | TEXT | st.integers(0, 10**12) | st.none() | st.booleans())


@native
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(case=fpe_values(), key=st.sampled_from([b"\x07" * 16, b"\x08" * 24, b"\x09" * 32]),
       domain=st.none() | st.just("cards"))
def test_native_ff1_equals_the_python_transform(case, key, domain):
    from proxy.policy.models import FpeRule
    from proxy.transforms.fpe import Fpe
    name, value = case
    fields = {"alphabet": name} if name not in ("bits", "han") else {"alphabet_chars": ALPHABETS[name]}
    _assert_plan_equals_apply(_built(Fpe, FpeRule, key, action="fpe", domain=domain, **fields), value)


@native
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(value=TEXT | st.text(max_size=60) | st.text(st.characters(max_codepoint=127), min_size=14, max_size=40)
       | st.just("\ud800x") | st.integers() | st.none() | st.booleans(),
       prefix=st.sampled_from(["", "tok_", "t.1:"]), domain=st.none() | st.just("people"))
def test_native_token_equals_the_python_transform(value, prefix, domain):
    from proxy.policy.models import TokenizeRule
    from proxy.transforms.tokenize import Tokenize
    _assert_plan_equals_apply(_built(Tokenize, TokenizeRule, action="tokenize", prefix=prefix, domain=domain), value)


@native
def test_a_wiped_plan_fails_closed():
    """``Plan.wipe()`` (a replaced policy) frees the keyed state at once; the plan then raises."""
    from proxy.policy.models import TokenizeRule
    from proxy.transforms.tokenize import Tokenize
    t = _built(Tokenize, TokenizeRule, action="tokenize")
    plan = fastpath._native.Plan([fastpath._native_rule(0, t, (), "f", "label")], lambda i: None)
    plan.wipe()
    with pytest.raises(RuntimeError, match="wipe"):
        plan({"f": "x"}, lambda i, o: None)


# ------------------------------------------------------------------------ routes, end to end
NAMES = ["a", "b", "c"]
SCALAR = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
          | TEXT | EVENT_TIMES | st.sampled_from(["4111-1111-1111-1111", "A1234567", "11010519491231002X", "ABCD-efgh"]))
JSON = st.recursive(SCALAR, lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.sampled_from(NAMES + ["a.b", "d"]), kids, max_size=4), max_leaves=12)
RECORD = st.dictionaries(st.sampled_from(NAMES + ["a.b", "d"]), JSON | EVENT_TIMES, max_size=5)


@st.composite
def paths(draw) -> str:
    segs = [draw(st.sampled_from(NAMES))]
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["key", "key", "key", "[*]", "[0]", "[1]"]))
        segs.append("." + draw(st.sampled_from(NAMES)) if kind == "key" else kind)
    path = "".join(segs)
    return path if not path.endswith("]") or draw(st.booleans()) else path + ".a"


@st.composite
def wild_paths(draw) -> str:
    """Paths with object wildcards and alternations (``*``, ``**``, ``{a,b}``) among keys and
    array selectors: ``*.a``, ``**.b[*].c``, ``{a,c}.b``, ``a.*``..."""
    key = st.sampled_from(NAMES)
    segs = []
    for d in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["key", "*", "**", "{}", "[*]"] if d else ["key", "*", "**", "{}"]))
        if kind == "[*]" and segs and segs[-1] != "**":
            segs[-1] += "[*]"
            continue
        if kind == "**" and not (segs and segs[-1] == "**"):
            segs += ["**", draw(key)]
        elif kind == "{}":
            segs.append("{" + ",".join(draw(st.lists(key, min_size=2, max_size=3, unique=True))) + "}")
        elif kind == "*" and not (segs and segs[-1] == "**"):
            segs.append("*")
        else:
            segs.append(draw(key))
    return ".".join(segs)


@st.composite
def rules(draw, field_paths=None) -> dict:
    field = draw(field_paths if field_paths is not None else paths() | st.just('"a.b"'))
    action = draw(st.sampled_from(["mask", "mask", "pseudonymize", "pseudonymize", "redact", "drop", "keep", "fpe",
                                   "fpe", "tokenize"]))
    rule: dict = {"field": field, "action": action}
    if action == "mask":
        rule.update(keep_first=draw(st.integers(0, 4)), keep_last=draw(st.integers(0, 4)),
                    mask_char=draw(st.sampled_from(["*", "0", "王"])), mask_separators=draw(st.booleans()))
    elif action == "pseudonymize":
        rule.update(key="k", normalize=draw(st.sampled_from(["none", "string", "email", "phone"])),
                    encoding=draw(st.sampled_from(["hex", "base32", "base64url"])),
                    length=draw(st.none() | st.integers(8, 60)), prefix=draw(st.sampled_from(["", "p_"])))
    elif action == "redact":
        rule["value"] = draw(st.sampled_from([None, "[x]", 0, False]))
    elif action == "fpe":
        rule["key"] = "k"
        name = draw(st.sampled_from(["digits", "digits", "alnum", "upper", "han"]))
        rule.update({"alphabet": name} if name != "han" else {"alphabet_chars": ALPHABETS[name]})
    elif action == "tokenize":
        rule.update(key="k", prefix=draw(st.sampled_from(["", "tok_"])))
    return rule


def policies():
    """Policy YAML (name ``fast``): the actions of :func:`rules`, scalar block values."""
    return one_route_policies(rules(), paths(), SCALAR, max_rules=6, name="fast")


def wild_policies():
    """:func:`policies` whose rules and block conditions also use ``*``, ``**`` and ``{a,b}``."""
    return one_route_policies(rules(wild_paths() | paths()), wild_paths() | paths(), SCALAR, max_rules=4, name="fast")


def _route(text: str, native_on: bool, monkeypatch, json_on: bool = True):
    monkeypatch.setenv("DPP_NATIVE", "1" if native_on else "0")
    monkeypatch.setenv("DPP_NATIVE_JSON", "1" if json_on else "0")  # proxy._native.JsonPlan (test_jsonplan.py)
    route = compile_policy(load_policy_text(text, "fast.yaml"), environ=KEYS).route()
    route.clock = lambda: RETENTION_NOW  # retention: one "now" on every path
    return route


def _counters(route) -> tuple:
    s = route.stats.drain()
    return s.consumed, s.produced, s.blocked, s.dead_lettered, s.transforms, s.unmatched


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(text=policies(), records=st.lists(RECORD, min_size=1, max_size=8),
       extra=st.lists(st.sampled_from([None, b"{", b"[1]", b'"s"', b"{}"]), max_size=2))
def test_batch_path_equals_the_reference_path(text, records, extra, monkeypatch):
    _assert_batch_equals_reference(text, records, extra, monkeypatch)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                                  HealthCheck.function_scoped_fixture])
@given(text=wild_policies(), records=st.lists(RECORD, min_size=1, max_size=8),
       extra=st.lists(st.sampled_from([None, b"{", b"[1]", b'"s"', b"{}"]), max_size=2))
def test_batch_path_equals_the_reference_path_with_wildcard_rules(text, records, extra, monkeypatch):
    _assert_batch_equals_reference(text, records, extra, monkeypatch)


def _assert_batch_equals_reference(text, records, extra, monkeypatch):
    try:
        reference = _route(text, False, monkeypatch)
    except PolicyError:
        assume(False)
    values = [orjson.dumps(r) for r in records] + extra
    want = [reference.process(v) for v in values]
    want_counts = _counters(reference)
    # the pure-Python batch path, the batch path with proxy._native.Plan, and with JsonPlan first
    for native_on, json_on in ([(False, False), (True, False), (True, True)] if fastpath._native is not None
                               else [(False, False)]):
        route = _route(text, native_on, monkeypatch, json_on)
        got = route.protect_batch(values)
        assert [Outcome(SINK, g) if type(g) is bytes else g for g in got] == want, f"native={native_on} json={json_on}"
        assert _counters(route) == want_counts, f"native={native_on} json={json_on}"
        assert sum(route.stats.latency_buckets) == 0  # drained with the counters


@pytest.mark.parametrize("native_on", [False, True] if fastpath._native is not None else [False])
def test_alternation_rules_are_written_out_not_called(native_on, monkeypatch):
    """``{a,b}.x`` is expanded at load into its paths (C or inline Python), ``**.x`` calls the
    reference step; the counters stay one per rule (a record with one side: 1 match, no miss)."""
    text = policy_text(["{field: '{a,b}.x', action: mask}", "{field: '**.y', action: redact}"], name="fast")
    route = _route(text, native_on, monkeypatch)
    src = route._fast.source
    assert ("ALTFIX" in src) is native_on and "S0(" not in src and "S1(" in src
    rec = [orjson.dumps({"a": {"x": "secret"}, "b": None}), orjson.dumps({"c": 1}), orjson.dumps({"a": {"x": "s"}, "b": {"x": "t"}})]
    got = route.protect_batch(rec)
    assert orjson.loads(got[0]) == {"a": {"x": "******"}, "b": None}
    assert _counters(route)[4:] == ([3, 0], [1, 3])


def test_generated_source_holds_no_policy_text(monkeypatch):
    evil = "x\\n__import__('os').system('false')"
    text = yaml.safe_dump({"version": 1, "name": "evil", "keys": {"k": {"source": "env", "name": "K"},
                                                                  "dlq": {"source": "env", "name": "DLQ"}},
                           "routes": [{"name": "r", "source": "in.t", "sink": "out.t", "dead_letter": "dlq.t",
                                       "dead_letter_key": "dlq",
                                       "block": [{"when": {"field": f'"{evil}"', "equals": evil}, "reason": "r"}],
                                       "rules": [{"field": f'"{evil}".b', "action": "mask"},
                                                 {"field": f'"{evil}".c', "action": "drop"}]}]})
    for native_on in (False, True):
        route = _route(text, native_on, monkeypatch)
        source = route._fast.source
        assert "__import__" not in source and "evil" not in source
        key = evil  # the path syntax keeps the backslash: the key is x, backslash, n, ...
        out = route.process_batch([orjson.dumps({key: {"b": "secret", "c": 1}})])
        assert out[0].kind == SINK and orjson.loads(out[0].value) == {key: {"b": "******"}}


def test_counters_of_a_batch_with_a_failed_record_skip_its_rules(monkeypatch):
    """A record dead-lettered half-way does not count the rules it passed (as ``process``)."""
    text = yaml.safe_dump({"version": 1, "name": "c", "keys": {"k": {"source": "env", "name": "K"},
                                                               "dlq": {"source": "env", "name": "DLQ"}},
                           "routes": [{"name": "r", "source": "in.t", "sink": "out.t", "dead_letter": "dlq.t",
                                       "dead_letter_key": "dlq",
                                       "rules": [{"field": "a", "action": "mask"},
                                                 {"field": "b", "action": "mask"},
                                                 {"field": "c", "action": "drop"}]}]})
    for native_on in (False, True):
        route = _route(text, native_on, monkeypatch)
        out = route.protect_batch([b'{"a": "xy", "b": [1], "c": 1}', b'{"a": "xy", "b": "zz"}'])
        assert out[0].kind == "dead_letter" and out[0].reason == "unsupported-type" and out[0].rule
        assert orjson.loads(out[1]) == {"a": "**", "b": "**"}
        consumed, produced, _, dead, transforms, unmatched = _counters(route)
        assert (consumed, produced, dead) == (2, 1, {"unsupported-type": 1})
        assert transforms == [1, 1, 0] and unmatched == [0, 0, 1]


@pytest.mark.parametrize("record, unlisted, warns", [
    ({"a.b": "x"}, "keep", True),                 # the rule a.b missed; a top-level key "a.b" is there
    ({"a.b": "x", "c": True}, "keep", False),     # dead-lettered (c is a boolean): no rule counted, no hint
    ({"a.b": "x"}, "drop", False),                # the allow-list removed "a.b" before the check
])
def test_unquoted_dotted_key_hint_as_the_reference(record, unlisted, warns, monkeypatch, caplog):
    text = yaml.safe_dump({"version": 1, "name": "d", "keys": {"k": {"source": "env", "name": "K"},
                                                               "dlq": {"source": "env", "name": "DLQ"}},
                           "routes": [{"name": "r", "source": "in.t", "sink": "out.t", "dead_letter": "dlq.t",
                                       "dead_letter_key": "dlq", "unlisted_fields": unlisted,
                                       "rules": [{"field": "a.b", "action": "mask"},
                                                 {"field": "c", "action": "mask"}]}]})
    for path in ("reference", False, True):
        caplog.clear()
        route = _route(text, path is True, monkeypatch)
        value = orjson.dumps(record)
        route.process(value) if path == "reference" else route.protect_batch([value])
        hinted = any(getattr(r, "problem", "") == "unquoted-dotted-key" for r in caplog.records)
        assert hinted is warns, f"path={path}"


def test_a_stale_native_build_is_not_used(monkeypatch, caplog):
    """An accelerator built from another version of ``_native.c`` (ABI mismatch) falls back to the
    pure-Python path with a warning instead of misreading rule tuples."""
    import importlib
    import types

    stale = types.SimpleNamespace(ABI=fastpath.NATIVE_ABI - 1, Plan=None)
    monkeypatch.setitem(__import__("sys").modules, "proxy._native", stale)
    monkeypatch.setattr(__import__("proxy"), "_native", stale, raising=False)
    try:
        reloaded = importlib.reload(fastpath)
        assert reloaded._native is None and not reloaded.native_available()
        assert any(getattr(r, "problem", "") == "native-abi" for r in caplog.records)
    finally:
        monkeypatch.undo()
        importlib.reload(fastpath)


def _ff1_then_mask(fpe_field: str) -> str:
    return yaml.safe_dump({"version": 1, "name": "f", "keys": {"k": {"source": "env", "name": "K"},
                                                               "dlq": {"source": "env", "name": "DLQ"}},
                           "routes": [{"name": "r", "source": "in.t", "sink": "out.t", "dead_letter": "dlq.t",
                                       "dead_letter_key": "dlq",
                                       "rules": [{"field": fpe_field, "action": "fpe", "key": "k"},
                                                 {"field": "b", "action": "mask"}]}]})


@pytest.mark.parametrize("native_on, field, a", [(False, "a", '"123456"'), (True, "a[*]", '["123456"]')])
def test_a_failed_batch_encryption_keeps_an_earlier_dead_letter_cause(native_on, field, a, monkeypatch):
    """FF1 values are encrypted at the end of the batch (with the accelerator: those on array
    paths; it encrypts those on object keys value by value); if that fails for a record that a
    later rule already dead-lettered, the record keeps that first cause (as ``process`` reports it)."""
    route = _route(_ff1_then_mask(field), native_on, monkeypatch)

    def broken(values):
        raise RuntimeError("AES unavailable")
    monkeypatch.setattr(route.transforms[0], "encrypt_batch", broken)
    out = route.protect_batch([b'{"a": %s, "b": [1]}' % a.encode(), b'{"a": %s, "b": "x"}' % a.encode()])
    assert (out[0].reason, out[0].rule) == ("unsupported-type", route.rule_labels[1])
    assert (out[1].reason, out[1].error_class) == ("transform-failed", "RuntimeError")


@native
def test_ff1_on_object_keys_runs_in_c_not_at_the_end_of_the_batch(monkeypatch):
    """With the accelerator, an FF1 rule on an object-key path is an ``OP_FF1`` of the route's
    plan: the batch's deferred encryption (``encrypt_batch``) is not used for it."""
    route = _route(_ff1_then_mask("a"), True, monkeypatch)
    monkeypatch.setattr(route.transforms[0], "encrypt_batch", None)  # would raise if called
    out = route.protect_batch([b'{"a": "123456", "b": "x"}'])
    assert orjson.loads(out[0])["a"] == route.transforms[0].apply("123456") != "123456"
    assert "_flush_deferred" not in route._fast.source


@native
def test_wipe_native_cleanses_every_plan_of_a_replaced_route(monkeypatch):
    """``CompiledRoute.wipe_native()`` (the engine calls it on the route a reload replaced) wipes
    the route's plans: its batch path then fails closed, the reference path still protects."""
    route = _route(_ff1_then_mask("a"), True, monkeypatch)
    assert route._fast.plans
    route.wipe_native()
    out = route.protect_batch([b'{"a": "123456", "b": "x"}'])
    assert (out[0].kind, out[0].error_class) == ("dead_letter", "RuntimeError")
    assert route.process(b'{"a": "123456", "b": "x"}').kind == SINK
