"""``fpe`` (proxy.transforms.fpe): FF1 over the alphabet characters of a value, separators kept,
domain guard, reversible, tweak bound to field or domain; legacy ``ffx`` (pyffx)."""
from __future__ import annotations

import orjson
import pyffx
import pytest

from proxy.crypto.ff1 import FF1
from proxy.crypto.keys import SecretKey
from proxy.errors import KeyLoadError, Reason, TransformError
from proxy.policy.compiler import DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.models import ALPHABETS, FpeRule
from proxy.transforms import BuildContext, build_transform

KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c2b7e151628aed2a6abf7158809cf4f3c")
KEY2 = bytes(range(32))
CTX = BuildContext(policy_name="unit", route_name="r",
                   keys={"k": SecretKey("k", KEY), "k2": SecretKey("k2", KEY2), "short": SecretKey("short", bytes(20))})
DIGITS = "0123456789"


def fpe(**opts):
    opts.setdefault("field", "card")
    opts.setdefault("key", "k")
    return build_transform(FpeRule(action="fpe", **opts), CTX)


def reference(text: str, alphabet: str, tweak: bytes, key: bytes = KEY) -> str:
    """FF1 straight from proxy.crypto.ff1 on the alphabet characters, others put back in place."""
    pos = [i for i, c in enumerate(text) if c in alphabet]
    enc = FF1(key, alphabet).encrypt("".join(text[i] for i in pos), tweak)
    out = list(text)
    for i, c in zip(pos, enc):
        out[i] = c
    return "".join(out)


@pytest.mark.parametrize(
    "value,opts",
    [
        ("4111-1111-1111-1111", dict()),
        ("4111 1111 1111 1111", dict()),
        ("4111111111111111", dict()),
        ("A1234567", dict()),                         # passport-like: the letter stays
        ("11010519491231002X", dict()),               # resident ID: the check character X stays
        ("+86 139-0000-1111", dict()),
        ("(010) 1234 5678", dict()),
        ("123456", dict()),                           # the smallest digits domain: 10**6
        ("000000", dict()),                           # leading zeros are numerals too
        ("deadbeef-00", dict(alphabet="hex")),
        ("DEADBEEF", dict(alphabet="HEX")),
        ("Hello, World", dict(alphabet="alpha")),
        ("abc-defg", dict(alphabet="lower")),
        ("ABC-DEFG", dict(alphabet="upper")),
        ("Order A1b2C3", dict(alphabet="alnum")),
        ("zz9-a0b1c2", dict(alphabet="alnum_lower")),
        ("01101-0011011010010110", dict(alphabet_chars="01")),   # binary: needs 20 numerals
        ("甲乙丙丁戊己庚辛", dict(alphabet_chars="甲乙丙丁戊己庚辛壬癸")),
    ],
)
def test_known_answer_separators_and_round_trip(value, opts):
    t = fpe(**opts)
    alphabet = opts.get("alphabet_chars") or ALPHABETS[opts.get("alphabet", "digits")]
    out = t.apply(value)
    assert out == reference(value, alphabet, b"field:unit:card")
    assert len(out) == len(value)
    for a, b in zip(value, out):
        assert (a in alphabet) == (b in alphabet)
        if a not in alphabet:
            assert a == b
    assert t.reverse(out) == value


def test_examples_from_the_brief():
    t = fpe()
    out = t.apply("4111-1111-1111-1111")
    assert out[4] == out[9] == out[14] == "-" and out != "4111-1111-1111-1111"
    out = t.apply("A1234567")
    assert out[0] == "A" and out[1:].isdigit() and out != "A1234567"


@pytest.mark.parametrize(
    "value,opts,have,need",
    [
        ("12345", dict(), 5, 6),
        ("12-34-5", dict(), 5, 6),
        ("A12345", dict(), 5, 6),
        ("", dict(), 0, 6),
        ("----", dict(), 0, 6),
        ("abcd", dict(alphabet="hex"), 4, 5),        # 16**4 = 65,536 < 10**6 <= 16**5
        ("abc", dict(alphabet="alpha"), 3, 4),       # 52**3 = 140,608
        ("Ab1", dict(alphabet="alnum"), 3, 4),       # 62**3 = 238,328
        ("0101010101010101010", dict(alphabet_chars="01"), 19, 20),
    ],
)
def test_domain_guard_refuses_small_domains(value, opts, have, need):
    t = fpe(**opts)
    with pytest.raises(TransformError) as ei:
        t.apply(value)
    assert ei.value.reason is Reason.FPE_DOMAIN
    assert str(ei.value) == f"fpe-domain-too-small: {have} alphabet characters, need {need}"
    with pytest.raises(TransformError):
        t.reverse(value)


def test_too_long_values_fail_closed_without_echoing():
    value = "9" * 57            # beyond the project's FF1 length bound for radix 10 (56)
    with pytest.raises(TransformError) as ei:
        fpe().apply(value)
    assert ei.value.reason is Reason.FPE_DOMAIN
    assert value not in str(ei.value)
    assert len(fpe().apply("9" * 56)) == 56


def test_numbers_become_strings_null_stays_other_types_refused():
    t = fpe()
    out = t.apply(1234567)
    assert type(out) is str and out == reference("1234567", DIGITS, b"field:unit:card")
    assert t.reverse(out) == "1234567"
    assert t.apply(None) is None and t.reverse(None) is None
    for v in (True, {"a": "1234567"}, ["1234567"]):
        with pytest.raises(TransformError) as ei:
            t.apply(v)
        assert ei.value.reason is Reason.UNSUPPORTED_TYPE
    with pytest.raises(TransformError) as ei:
        t.reverse(1234567)
    assert ei.value.reason is Reason.UNSUPPORTED_TYPE


# ----------------------------------------------------------------------------- tweak binding
def test_tweak_binds_field_path_policy_and_domain():
    v = "4111111111111111"
    base = fpe(field="a").apply(v)
    assert fpe(field="b").apply(v) != base
    assert fpe(field="a", domain="card").apply(v) == fpe(field="b", domain="card").apply(v) == reference(v, DIGITS, b"domain:card")
    assert fpe(field="a", domain="card").apply(v) != base
    assert fpe(field="a", key="k2").apply(v) != base
    other_policy = BuildContext("unit2", "r", {"k": SecretKey("k", KEY)})
    assert build_transform(FpeRule(field="a", action="fpe", key="k"), other_policy).apply(v) != base
    other_route = BuildContext("unit", "r2", {"k": SecretKey("k", KEY)})
    assert build_transform(FpeRule(field="a", action="fpe", key="k"), other_route).apply(v) == base
    # decrypting under another binding does not give the value back
    assert fpe(field="b").reverse(base) != v


# ----------------------------------------------------------------------------- legacy ffx
@pytest.mark.parametrize("value,alphabet", [("4111111111111111", DIGITS), ("4111-1111-1111", DIGITS),
                                            ("123456", DIGITS), ("deadbeef", ALPHABETS["hex"])])
def test_ffx_matches_pyffx_and_round_trips(value, alphabet):
    name = "digits" if alphabet == DIGITS else "hex"
    t = fpe(algorithm="ffx", alphabet=name)
    out = t.apply(value)
    pos = [i for i, c in enumerate(value) if c in alphabet]
    plain = "".join(value[i] for i in pos)
    expected = list(value)
    for i, c in zip(pos, pyffx.String(KEY, alphabet=alphabet, length=len(plain)).encrypt(plain)):
        expected[i] = c
    assert out == "".join(expected)
    assert t.reverse(out) == value
    # no tweak: the field path does not change ffx output
    assert fpe(algorithm="ffx", alphabet=name, field="elsewhere").apply(value) == out


def test_ffx_keeps_the_domain_guard():
    with pytest.raises(TransformError) as ei:
        fpe(algorithm="ffx").apply("12345")
    assert ei.value.reason is Reason.FPE_DOMAIN


def test_ff1_needs_an_aes_key_length():
    with pytest.raises(KeyLoadError) as ei:
        fpe(key="short")
    assert str(ei.value) == "key 'short' for fpe rule card: 20 bytes; AES needs 16, 24 or 32"
    assert fpe(key="short", algorithm="ffx").apply("123456").isdigit()   # pyffx takes any length


@pytest.mark.parametrize("bad", [dict(alphabet="octal"), dict(alphabet_chars="a"), dict(alphabet_chars="abca"),
                                 dict(algorithm="ff3")])
def test_rule_validation(bad):
    with pytest.raises(ValueError):
        FpeRule(field="f", action="fpe", key="k", **bad)


def test_alphabet_chars_override_and_order():
    r = FpeRule(field="f", action="fpe", key="k", alphabet="hex", alphabet_chars="9876543210")
    assert r.chars == "9876543210"
    assert FpeRule(field="f", action="fpe", key="k").chars == DIGITS
    assert fpe().reversible and KEY.hex() not in repr(fpe())


# ----------------------------------------------------------------------------- through a route
POLICY = """version: 1
name: unit
keys:
  k: {source: env, name: K}
routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: k
    rules:
      - {field: card, action: fpe, key: k}
      - {field: "orders[*].card", action: fpe, key: k, domain: card}
      - {field: id, action: fpe, key: k, algorithm: ffx}
"""


def test_route_encrypts_reveals_and_dead_letters_short_values():
    r = compile_policy(load_policy_text(POLICY), environ={"K": KEY.hex()}).route()
    rec = {"card": "4111-1111-1111-1111", "orders": [{"card": "5500000000000004"}, {"card": None}], "id": "A1234567"}
    out = r.process(orjson.dumps(rec))
    assert out.kind == SINK
    prot = orjson.loads(out.value)
    assert prot["card"] == reference("4111-1111-1111-1111", DIGITS, b"field:unit:card")
    assert prot["orders"][0]["card"] == reference("5500000000000004", DIGITS, b"domain:card")
    assert prot["orders"][1]["card"] is None
    assert prot["id"][0] == "A" and prot["id"] != "A1234567"
    restored, labels = r.reveal(prot)
    assert restored == rec
    assert labels == ["card", "orders[*].card", "id"]
    bad = r.process(orjson.dumps({"card": "12345"}))
    assert (bad.kind, bad.reason, bad.stage, bad.rule, bad.value) == (DEAD_LETTER, "fpe-domain-too-small", "transform", "card", None)
