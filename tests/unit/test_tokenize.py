"""``tokenize`` (proxy.transforms.tokenize): deterministic AES-SIV tokens, ``prefix`` + base32 of
``version byte || SIV || ciphertext``, bound to the field or domain, reversible with the right key
version only.

Known answers are recomputed here from the documented construction with ``cryptography``'s AESSIV
and HKDF directly, not through the transform."""
from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from proxy.crypto.keys import KeyRing, SecretKey
from proxy.errors import Reason, TransformError
from proxy.policy.models import TokenizeRule
from proxy.transforms import BuildContext, build_transform

K1 = bytes(range(0x00, 0x20))
K2 = bytes(range(0x20, 0x40))
POLICY = "unit"


def ctx(*, versions: dict[int, bytes] | None = None, current: int | None = None) -> BuildContext:
    versions = versions or {1: K1}
    ring = KeyRing("tok", {v: SecretKey("tok", k) for v, k in versions.items()}, current)
    return BuildContext(policy_name=POLICY, route_name="r", keys={"tok": ring.key}, keyrings={"tok": ring})


def tok(field: str = "name", c: BuildContext | None = None, **opts):
    return build_transform(TokenizeRule(action="tokenize", field=field, key="tok", **opts), c or ctx())


def reference_token(value: str, binding: str, key: bytes = K1, version: int = 1, prefix: str = "tok_") -> str:
    """The documented construction, independently: HKDF-SHA256(key, info) → AES-SIV(value, [binding])."""
    siv = AESSIV(HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"dpp-token-aes-siv-v1").derive(key))
    raw = bytes((version,)) + siv.encrypt(value.encode("utf-8"), [binding.encode()])
    return prefix + base64.b32encode(raw).decode().rstrip("=").lower()


def decode(token: str, prefix: str = "tok_") -> bytes:
    body = token[len(prefix):].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


# ----------------------------------------------------------------------------- form and determinism
@pytest.mark.parametrize("value", ["Ada Lovelace", "a", "", "jose.doe@example.com", "张三", "🙂 emoji", "x" * 300])
def test_known_answer(value):
    assert tok().apply(value) == reference_token(value, f"field:{POLICY}:name")


def test_deterministic_across_instances():
    a, b = tok(), tok()
    assert a.apply("Ada") == a.apply("Ada") == b.apply("Ada")
    assert a.apply("Ada") != a.apply("Ada ")


@pytest.mark.parametrize("prefix", ["tok_", "", "cus:", "T-"])
def test_prefix_and_base32_form(prefix):
    t = tok(prefix=prefix)
    for value in ("Ada", "张三丰", "a" * 40):
        out = t.apply(value)
        assert out.startswith(prefix)
        body = out[len(prefix):]
        assert re.fullmatch(r"[a-z2-7]+", body), out           # lower-case RFC 4648 base32, no padding
        n = len(value.encode())
        assert len(body) == -(-(17 + n) * 8 // 5)                # documented length formula
        assert decode(out, prefix)[0] == 1                       # version byte


def test_round_trip():
    t = tok()
    for value in ("Ada Lovelace", "", " spaces kept ", "line\nbreak", "tab\tand \"quotes\""):
        assert t.reverse(t.apply(value)) == value


@pytest.mark.parametrize("value", ["张三", "欧阳娜娜", "北京市朝阳区建国路88号", "東京都", "김민준", "Zoë Ñúñez",
                                   "jose\u0301", "𠀀𪚥", "🙂👍🏽"])
def test_unicode_round_trip_is_exact(value):
    """No normalization: NFD stays NFD, astral-plane characters survive."""
    t = tok()
    out = t.apply(value)
    assert value not in out
    assert t.reverse(out) == value


def test_numbers_become_strings_and_null_passes():
    t = tok()
    out = t.apply(42)
    assert out == t.apply("42") == reference_token("42", f"field:{POLICY}:name")
    assert t.reverse(out) == "42"
    assert t.reverse(t.apply(2.5)) == "2.5"
    assert t.apply(None) is None and t.reverse(None) is None


@pytest.mark.parametrize("value", [True, {"a": 1}, [1, 2]])
def test_unsupported_types_fail_closed(value):
    with pytest.raises(TransformError) as e:
        tok().apply(value)
    assert e.value.reason is Reason.UNSUPPORTED_TYPE


# ----------------------------------------------------------------------------- integrity
def _flip(token: str, pos: int) -> str:
    c = token[pos]
    return token[:pos] + ("a" if c != "a" else "b") + token[pos + 1:]


def test_tampered_token_is_invalid():
    t = tok()
    good = t.apply("Ada Lovelace")
    body_start = len("tok_")
    # every position after the version byte's characters: SIV or ciphertext changed → tag fails
    for pos in range(body_start + 2, len(good)):
        bad = _flip(good, pos)
        if decode(bad) == decode(good):      # a flip in the padding bits of the last character
            continue
        with pytest.raises(TransformError) as e:
            t.reverse(bad)
        assert e.value.reason is Reason.TOKEN_INVALID, pos
        assert "Ada" not in str(e.value)


@pytest.mark.parametrize("bad,reason", [
    ("xyz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Reason.TOKEN_INVALID),     # wrong prefix
    ("tok_not!base32", Reason.TOKEN_INVALID),
    ("tok_aeaqcai", Reason.TOKEN_INVALID),                             # too short for a SIV tag
    ("tok_", Reason.TOKEN_INVALID),
])
def test_malformed_tokens(bad, reason):
    with pytest.raises(TransformError) as e:
        tok().reverse(bad)
    assert e.value.reason is reason


def test_non_string_token():
    with pytest.raises(TransformError) as e:
        tok().reverse(12345)
    assert e.value.reason is Reason.UNSUPPORTED_TYPE


# ----------------------------------------------------------------------------- binding (field / domain)
def test_token_from_another_field_does_not_reveal():
    a, b = tok("name"), tok("alias")
    ta = a.apply("Ada")
    assert ta != b.apply("Ada")                      # unrelated fields do not link
    with pytest.raises(TransformError) as e:
        b.reverse(ta)
    assert e.value.reason is Reason.TOKEN_INVALID


def test_token_from_another_policy_does_not_reveal():
    other = BuildContext(policy_name="other", route_name="r", keys=ctx().keys, keyrings=ctx().keyrings)
    with pytest.raises(TransformError) as e:
        tok("name", other).reverse(tok("name").apply("Ada"))
    assert e.value.reason is Reason.TOKEN_INVALID


def test_shared_domain_links_fields_and_reveals_across_them():
    a, b = tok("crm.customer_id", domain="customer"), tok("orders[*].customer", domain="customer")
    assert a.apply("C-1001") == b.apply("C-1001") == reference_token("C-1001", "domain:customer")
    assert b.reverse(a.apply("C-1001")) == "C-1001"
    other = tok("crm.customer_id", domain="supplier")
    assert other.apply("C-1001") != a.apply("C-1001")
    with pytest.raises(TransformError) as e:
        other.reverse(a.apply("C-1001"))
    assert e.value.reason is Reason.TOKEN_INVALID


def test_wrong_key_does_not_reveal():
    theirs = tok("name", ctx(versions={1: K2}))
    with pytest.raises(TransformError) as e:
        tok().reverse(theirs.apply("Ada"))
    assert e.value.reason is Reason.TOKEN_INVALID


# ----------------------------------------------------------------------------- key versions
def test_version_byte_selects_the_key_after_rotation():
    before = tok("name", ctx(versions={1: K1}))
    after = tok("name", ctx(versions={1: K1, 2: K2}))
    old, new = before.apply("Ada"), after.apply("Ada")
    assert old != new
    assert decode(old)[0] == 1 and decode(new)[0] == 2
    assert new == reference_token("Ada", f"field:{POLICY}:name", key=K2, version=2)
    # the rotated transform reveals both; `version` is not needed: the token carries it
    assert after.reverse(old) == "Ada" and after.reverse(new) == "Ada"
    assert after.reverse(old, 2) == "Ada"
    # the old keyring cannot reveal a token of a version it lacks
    with pytest.raises(TransformError) as e:
        before.reverse(new)
    assert e.value.reason is Reason.KEY_UNAVAILABLE and "version 2" in str(e.value)


def test_pinned_older_current_version():
    pinned = tok("name", ctx(versions={1: K1, 2: K2}, current=1))
    out = pinned.apply("Ada")
    assert decode(out)[0] == 1 and out == reference_token("Ada", f"field:{POLICY}:name", key=K1, version=1)


def test_version_byte_rewritten_to_another_existing_version_fails():
    """Re-labelling a v1 token as v2 makes it decrypt under the wrong key: authentication fails."""
    t = tok("name", ctx(versions={1: K1, 2: K2}))
    raw = bytearray(decode(t.apply("Ada")))
    raw[0] = 1
    forged = "tok_" + base64.b32encode(bytes(raw)).decode().rstrip("=").lower()
    with pytest.raises(TransformError) as e:
        t.reverse(forged)
    assert e.value.reason is Reason.TOKEN_INVALID


def test_versions_above_255_refused():
    with pytest.raises(ValueError, match="255"):
        tok("name", ctx(versions={256: K1}))


def test_repr_has_no_key_or_value():
    t = tok()
    assert repr(t) == "Tokenize(field='name')"
