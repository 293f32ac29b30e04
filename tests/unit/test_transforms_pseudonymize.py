"""``pseudonymize`` (proxy.transforms.pseudonymize): keyed HMAC-SHA256 over a canonical form,
checked against an independent HMAC of the documented message."""
from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata

import orjson
import pytest

from proxy.crypto.keys import SecretKey
from proxy.errors import Reason, TransformError
from proxy.policy.compiler import DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.models import PseudonymizeRule
from proxy.transforms import BuildContext, build_transform
from proxy.transforms.pseudonymize import canonical, encode_digest

KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778")   # 24 bytes
OTHER_KEY = bytes(24)
CTX = BuildContext(policy_name="unit", route_name="r", keys={"p": SecretKey("p", KEY), "q": SecretKey("q", OTHER_KEY)})


def rule(**opts) -> PseudonymizeRule:
    opts.setdefault("field", "f")
    opts.setdefault("key", "p")
    return PseudonymizeRule(action="pseudonymize", **opts)


def pseudo(value, ctx=CTX, **opts):
    return build_transform(rule(**opts), ctx).apply(value)


def reference(canon: str, binding: str, key: bytes = KEY) -> bytes:
    """HMAC-SHA256(key, "dpp-pseudonym-v1" 0x00 binding 0x00 value) -- the module's documented message."""
    return hmac.new(key, b"dpp-pseudonym-v1\x00" + binding.encode() + b"\x00" + canon.encode(), hashlib.sha256).digest()


# ----------------------------------------------------------------------------- known answers
@pytest.mark.parametrize(
    "value,opts,canon,binding",
    [
        ("Ada", dict(), "Ada", "field:unit:f"),
        ("Ada", dict(field="person.name"), "Ada", "field:unit:person.name"),
        ("Ada", dict(domain="people"), "Ada", "domain:people"),
        ("  Jose.Doe@Example.COM ", dict(normalize="email"), "jose.doe@example.com", "field:unit:f"),
        ("Ada ", dict(normalize="none"), "Ada ", "field:unit:f"),
        ("jose\u0301", dict(normalize="string"), "jos\u00e9", "field:unit:f"),
        ("13900001111", dict(normalize="phone"), "+8613900001111", "field:unit:f"),
        ("(212) 555-0143", dict(normalize="phone", default_region="US"), "+12125550143", "field:unit:f"),
        (12345, dict(), "12345", "field:unit:f"),                    # numbers through their JSON text
        (2.5, dict(normalize="none"), "2.5", "field:unit:f"),
    ],
)
def test_known_answer_hex(value, opts, canon, binding):
    assert pseudo(value, **opts) == reference(canon, binding).hex()


@pytest.mark.parametrize(
    "encoding,encode",
    [
        ("hex", lambda d: d.hex()),
        ("base32", lambda d: base64.b32encode(d).decode().rstrip("=").lower()),
        ("base64url", lambda d: base64.urlsafe_b64encode(d).decode().rstrip("=")),
    ],
)
def test_encodings(encoding, encode):
    digest = reference("Ada", "field:unit:f")
    out = pseudo("Ada", encoding=encoding)
    assert out == encode(digest)
    assert encode_digest(digest, encoding) == out
    assert {"hex": 64, "base32": 52, "base64url": 43}[encoding] == len(out)
    assert "=" not in out


def test_base64url_alphabet_is_url_safe():
    outs = [pseudo(f"value-{i}", encoding="base64url") for i in range(200)]
    joined = "".join(outs)
    assert "+" not in joined and "/" not in joined
    assert "-" in joined or "_" in joined  # over 200 digests both appear with near certainty


@pytest.mark.parametrize("length", [8, 20, 43, 128])
@pytest.mark.parametrize("prefix", ["", "cus_", "p-"])
def test_length_and_prefix(length, prefix):
    full = encode_digest(reference("Ada", "field:unit:f"), "base64url")
    out = pseudo("Ada", encoding="base64url", length=length, prefix=prefix)
    assert out == prefix + full[:length]


@pytest.mark.parametrize("bad", [dict(length=7), dict(length=129), dict(prefix="x" * 33), dict(default_region="cn"),
                                 dict(encoding="base58"), dict(normalize="soundex"), dict(domain="Not A Slug")])
def test_rule_validation(bad):
    with pytest.raises(ValueError):
        rule(**bad)


def test_unknown_encoding_or_normalize_in_helpers():
    with pytest.raises(ValueError):
        encode_digest(b"x", "base58")
    with pytest.raises(ValueError):
        canonical("x", "soundex")


# ----------------------------------------------------------------------------- equivalences
@pytest.mark.parametrize(
    "a,b,opts",
    [
        ("Jose.Doe@Example.com", "jose.doe@example.com", dict(normalize="email")),
        (" jose.doe@example.com\n", "jose.doe@example.com", dict(normalize="email")),
        (unicodedata.normalize("NFD", "josé@example.com"), unicodedata.normalize("NFC", "josé@example.com"),
         dict(normalize="email")),
        (unicodedata.normalize("NFD", "José"), "José", dict(normalize="string")),
        ("+86 139 0000 1111", "13900001111", dict(normalize="phone", default_region="CN")),
        ("+86-139-0000-1111", "008613900001111", dict(normalize="phone", default_region="CN")),
        ("+1 212-555-0143", "(212) 555-0143", dict(normalize="phone", default_region="US")),
        (13900001111, "139 0000 1111", dict(normalize="phone")),
    ],
)
def test_canonical_forms_link(a, b, opts):
    assert pseudo(a, **opts) == pseudo(b, **opts)


@pytest.mark.parametrize(
    "a,b,opts",
    [
        ("Jose.Doe@Example.com", "jose.doe@example.com", dict(normalize="string")),   # case kept
        (unicodedata.normalize("NFD", "José"), "José", dict(normalize="none")),        # no NFC
        ("jose@example.com", "jose@example.org", dict(normalize="email")),
        ("13900001111", "13900001112", dict(normalize="phone")),
        ("+1 212-555-0143", "212-555-0143", dict(normalize="phone", default_region="CN")),  # other region
        ("12", "012", dict()),
    ],
)
def test_different_canonical_forms_do_not_link(a, b, opts):
    assert pseudo(a, **opts) != pseudo(b, **opts)


def test_deterministic_across_builds_and_key_dependent():
    a = build_transform(rule(), CTX)
    b = build_transform(rule(), BuildContext("unit", "other-route", {"p": SecretKey("p", KEY)}))
    assert a.apply("Ada") == b.apply("Ada") == a.apply("Ada")          # route name is not bound
    assert pseudo("Ada", key="q") == reference("Ada", "field:unit:f", OTHER_KEY).hex()
    assert pseudo("Ada", key="q") != pseudo("Ada")
    other_policy = BuildContext("unit2", "r", {"p": SecretKey("p", KEY)})
    assert pseudo("Ada", ctx=other_policy) != pseudo("Ada")            # policy name is bound


def test_same_value_in_two_fields_differs_unless_shared_domain():
    assert pseudo("Ada", field="a") != pseudo("Ada", field="b")
    assert pseudo("Ada", field="a", domain="person") == pseudo("Ada", field="b", domain="person")
    assert pseudo("Ada", field="a", domain="person") != pseudo("Ada", field="a", domain="customer")
    # a domain also links across policies
    other_policy = BuildContext("another", "r", {"p": SecretKey("p", KEY)})
    assert pseudo("Ada", ctx=other_policy, domain="person") == pseudo("Ada", domain="person")


# ----------------------------------------------------------------------------- failures
@pytest.mark.parametrize("text", ["hello", "123", "", "+999 1", "secret-phone-canary"])
def test_unparseable_phone_fails_closed(text):
    with pytest.raises(TransformError) as ei:
        pseudo(text, normalize="phone")
    assert ei.value.reason is Reason.NORMALIZE_FAILED
    assert text not in str(ei.value) or text == ""


@pytest.mark.parametrize("value", [True, {"a": 1}, ["x"]])
def test_unsupported_types(value):
    with pytest.raises(TransformError) as ei:
        pseudo(value)
    assert ei.value.reason is Reason.UNSUPPORTED_TYPE


def test_null_stays_null_and_is_one_way():
    t = build_transform(rule(), CTX)
    assert t.apply(None) is None
    assert not t.reversible
    with pytest.raises(TransformError):
        t.reverse(t.apply("Ada"))
    assert KEY.hex() not in repr(t)


# ----------------------------------------------------------------------------- through a route
POLICY = """version: 1
name: unit
keys:
  p: {source: env, name: P}
  dlq: {source: env, name: DLQ}
routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: dlq
    rules:
      - {field: email, action: pseudonymize, key: p, normalize: email}
      - {field: contact.email, action: pseudonymize, key: p, normalize: email}
      - {field: shared1, action: pseudonymize, key: p, domain: person}
      - {field: "list[*].shared2", action: pseudonymize, key: p, domain: person}
      - {field: phone, action: pseudonymize, key: p, normalize: phone}
"""


def test_route_binding_and_failures():
    r = compile_policy(load_policy_text(POLICY), environ={"P": KEY.hex(), "DLQ": "00" * 16}).route()
    out = orjson.loads(r.process(orjson.dumps({
        "email": "Jose.Doe@Example.com", "contact": {"email": "jose.doe@example.com"},
        "shared1": "x", "list": [{"shared2": "x"}, {"shared2": "y"}], "phone": "+86 139 0000 1111"})).value)
    assert out["email"] == reference("jose.doe@example.com", "field:unit:email").hex()
    assert out["contact"]["email"] == reference("jose.doe@example.com", "field:unit:contact.email").hex()
    assert out["email"] != out["contact"]["email"]
    assert out["shared1"] == out["list"][0]["shared2"] == reference("x", "domain:person").hex()
    assert out["list"][1]["shared2"] != out["shared1"]
    assert out["phone"] == reference("+8613900001111", "field:unit:phone").hex()
    bad = r.process(orjson.dumps({"email": "ok@example.com", "phone": "call-me-maybe"}))
    assert (bad.kind, bad.reason, bad.stage, bad.rule, bad.value) == (DEAD_LETTER, "normalize-failed", "transform", "phone", None)
    assert r.process(orjson.dumps({"phone": None})).kind == SINK
