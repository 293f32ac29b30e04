"""Property tests (hypothesis) of the value transforms, through the public build/compile paths:
mask keeps length and separators, FPE through a compiled route round-trips and preserves format,
pseudonyms are deterministic and canonical."""
from __future__ import annotations

import re
import unicodedata

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.policy.compiler import DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.models import MaskRule
from proxy.transforms import BuildContext, build_transform

CTX = BuildContext(policy_name="prop", route_name="r", keys={})
MASK_CHARS = "*#•"

# letters and digits of several scripts, separators, and a few symbols/emoji
TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ0123456789李四张三丰éßÅ١٢٣") + list(" -.@+_/()") + ["😀", "\u200b", "\t"]),
    max_size=40,
)


# ----------------------------------------------------------------------------- mask
@settings(max_examples=300, deadline=None)
@given(text=TEXT, first=st.integers(0, 12), last=st.integers(0, 12), char=st.sampled_from(MASK_CHARS))
def test_mask_keeps_length_and_separators(text, first, last, char):
    import unicodedata
    from proxy.transforms.mask import SEPARATOR_CATEGORIES
    out = build_transform(MaskRule(field="f", action="mask", keep_first=first, keep_last=last, mask_char=char), CTX).apply(text)
    assert len(out) == len(text)
    maskable = [i for i, c in enumerate(text) if unicodedata.category(c) not in SEPARATOR_CATEGORIES]
    for i, (a, b) in enumerate(zip(text, out)):
        if i not in maskable:
            assert b == a                      # separators never change
        else:
            assert b in (a, char)
    m = len(maskable)
    if first + last < m:  # honoured as asked
        k_first, k_last = first, last
    else:  # would keep everything: at most half
        k_first = min(first, m // 2)
        k_last = min(last, m // 2 - k_first)
    kept = set(maskable[:k_first]) | set(maskable[m - k_last:] if k_last else [])
    for i in maskable:
        assert out[i] == (text[i] if i in kept else char)
    assert m == 0 or len(kept) < m


@settings(max_examples=200, deadline=None)
@given(text=TEXT, first=st.integers(0, 12), last=st.integers(0, 12))
def test_mask_separators_masks_by_position(text, first, last):
    out = build_transform(MaskRule(field="f", action="mask", keep_first=first, keep_last=last,
                                   mask_separators=True), CTX).apply(text)
    n = len(text)
    if first + last < n:
        k_first, k_last = first, last
    else:
        k_first = min(first, n // 2)
        k_last = min(last, n // 2 - k_first)
    assert out == text[:k_first] + "*" * (n - k_first - k_last) + (text[n - k_last:] if k_last else "")


# ----------------------------------------------------------------------------- fpe through a compiled route
POLICY = """version: 1
name: prop
keys:
  k: {source: env, name: K}
routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: k
    rules:
      - {field: d, action: fpe, key: k}
      - {field: "l[*].a", action: fpe, key: k, alphabet: alnum}
      - {field: x, action: fpe, key: k, algorithm: ffx}
      - {field: p, action: pseudonymize, key: k, normalize: string, encoding: base32, length: 20, prefix: "p_"}
"""
ROUTE = compile_policy(load_policy_text(POLICY), environ={"K": "c3" * 32}).route()
ROUTE_AGAIN = compile_policy(load_policy_text(POLICY), environ={"K": "c3" * 32}).route()
ROUTE_OTHER_KEY = compile_policy(load_policy_text(POLICY), environ={"K": "3c" * 32}).route()

SEPS = " -/.()+X"


@st.composite
def formatted_digits(draw, min_digits=6, max_digits=40):
    """A digit string with separators (and a stray letter) sprinkled in, e.g. '+86 (139) 0000-1111'."""
    digits = draw(st.text(alphabet="0123456789", min_size=min_digits, max_size=max_digits))
    out = []
    for d in digits:
        out.append(draw(st.text(alphabet=SEPS, max_size=2)))
        out.append(d)
    out.append(draw(st.text(alphabet=SEPS, max_size=2)))
    return "".join(out)


def assert_same_format(plain: str, enc: str, alphabet: str):
    assert len(enc) == len(plain)
    for a, b in zip(plain, enc):
        if a in alphabet:
            assert b in alphabet
        else:
            assert b == a


@settings(max_examples=150, deadline=None)
@given(value=formatted_digits())
def test_fpe_round_trips_and_preserves_format(value):
    out = ROUTE.process(orjson.dumps({"d": value, "x": value}))
    assert out.kind == SINK, out
    prot = orjson.loads(out.value)
    assert_same_format(value, prot["d"], "0123456789")
    assert_same_format(value, prot["x"], "0123456789")
    assert ROUTE_AGAIN.process(orjson.dumps({"d": value, "x": value})).value == out.value   # deterministic
    back, labels = ROUTE.reveal(prot)
    assert back == {"d": value, "x": value}
    assert labels == ["d", "x"]


@settings(max_examples=100, deadline=None)
@given(value=formatted_digits(min_digits=0, max_digits=5))
def test_fpe_refuses_fewer_than_six_digits(value):
    out = ROUTE.process(orjson.dumps({"d": value}))
    assert (out.kind, out.reason, out.rule, out.value) == (DEAD_LETTER, "fpe-domain-too-small", "d", None)


ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.text(alphabet=ALNUM + "-_ ", min_size=0, max_size=30), min_size=1, max_size=4))
def test_fpe_alnum_in_arrays(values):
    rec = {"l": [{"a": v} for v in values]}
    out = ROUTE.process(orjson.dumps(rec))
    if any(sum(c in ALNUM for c in v) < 4 for v in values):        # 62**4 >= 10**6 > 62**3
        assert out.kind == DEAD_LETTER and out.reason == "fpe-domain-too-small"
        return
    assert out.kind == SINK
    prot = orjson.loads(out.value)
    for v, p in zip(values, prot["l"]):
        assert_same_format(v, p["a"], ALNUM)
    assert ROUTE.reveal(prot)[0] == rec


# ----------------------------------------------------------------------------- pseudonymize
PSEUDONYM = re.compile(r"^p_[a-z2-7]{20}$")


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40))
def test_pseudonymize_is_deterministic_canonical_and_keyed(value):
    rec = orjson.dumps({"p": value})
    a = orjson.loads(ROUTE.process(rec).value)["p"]
    assert PSEUDONYM.match(a)
    assert orjson.loads(ROUTE_AGAIN.process(rec).value)["p"] == a
    assert orjson.loads(ROUTE.process(rec).value)["p"] == a
    nfd = orjson.dumps({"p": unicodedata.normalize("NFD", value)})
    assert orjson.loads(ROUTE.process(nfd).value)["p"] == a                # normalize: string is NFC
    assert orjson.loads(ROUTE_OTHER_KEY.process(rec).value)["p"] != a


@settings(max_examples=100, deadline=None)
@given(a=st.text(max_size=20), b=st.text(max_size=20))
def test_distinct_canonical_values_give_distinct_pseudonyms(a, b):
    pa = orjson.loads(ROUTE.process(orjson.dumps({"p": a})).value)["p"]
    pb = orjson.loads(ROUTE.process(orjson.dumps({"p": b})).value)["p"]
    assert (pa == pb) == (unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b))
