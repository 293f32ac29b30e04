"""Rules on record keys and headers (:mod:`proxy.policy.parts`) on the reference path
(``CompiledRoute.process_record``) and the batch path (``protect_records``), and the sealed
dead-letter content (key, headers and value, :mod:`proxy.stream.deadletter`)."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.crypto.aead import DecryptionError
from proxy.policy.compiler import BLOCK, DEAD_LETTER, SINK, Outcome, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.stream import deadletter

KEYS = {"K": "11" * 32, "DLQ": "22" * 32}


def route_of(key: str = "", headers: str = "", rules: str = "      - {field: email, action: mask}\n",
             unlisted_headers: str = "keep", block: str = ""):
    text = f"""version: 1
name: parts
keys:
  k: {{source: env, name: K}}
  dlq: {{source: env, name: DLQ}}
routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: dlq
    unlisted_headers: {unlisted_headers}
{key}{headers}{block}    rules:
{rules}"""
    return compile_policy(load_policy_text(text), environ=KEYS).route()


STRING_KEY = "    key:\n      format: string\n      rules:\n        - {action: pseudonymize, key: k, normalize: phone, length: 20}\n"
JSON_KEY = "    key:\n      format: json\n      rules:\n        - {field: phone, action: fpe, key: k}\n        - {field: tenant, action: keep}\n"
BYTES_KEY = "    key:\n      format: bytes\n      rules:\n        - {action: tokenize, key: k}\n"
EMAIL_HEADER = "    headers:\n      - {header: email, action: pseudonymize, key: k, normalize: email}\n      - {header: 'x-*', action: mask, keep_first: 1}\n"
VALUE = orjson.dumps({"email": "a@example.invalid", "consent": True})


# ------------------------------------------------------------------------------------ keys
def test_string_key_is_pseudonymized_deterministically_and_tombstones_keep_it():
    r = route_of(STRING_KEY)
    a = r.process_record(VALUE, b"+86 139-0000-1111")
    b = r.process_record(None, b"+86 139-0000-1111")           # the tombstone of that record
    c = route_of(STRING_KEY).process_record(VALUE, b"13900001111")  # another worker, same number
    assert a.kind == b.kind == SINK and b.value is None
    assert a.key == b.key == c.key
    assert len(a.key) == 20 and b"139" not in a.key
    assert r.process_record(VALUE, None).key is None           # a null key stays null


def test_key_binding_differs_from_the_value_field_unless_a_domain_joins_them():
    r = route_of(STRING_KEY, rules="      - {field: phone, action: pseudonymize, key: k, normalize: phone, length: 20}\n")
    out = r.process_record(orjson.dumps({"phone": "13900001111"}), b"13900001111")
    assert orjson.loads(out.value)["phone"].encode() != out.key
    key = STRING_KEY.replace("length: 20}", "length: 20, domain: phone}")
    r = route_of(key, rules="      - {field: phone, action: pseudonymize, key: k, normalize: phone, length: 20, domain: phone}\n")
    out = r.process_record(orjson.dumps({"phone": "13900001111"}), b"13900001111")
    assert orjson.loads(out.value)["phone"].encode() == out.key


def test_json_key_fields_are_protected_and_decrypt_back():
    r = route_of(JSON_KEY)
    out = r.process_record(VALUE, b'{"phone":"13900001111","tenant":"t1"}')
    k = orjson.loads(out.key)
    assert k["tenant"] == "t1" and k["phone"] != "13900001111" and len(k["phone"]) == 11
    assert r._key.transforms[0].reverse(k["phone"]) == "13900001111"


def test_bytes_key_is_tokenized_as_hex():
    r = route_of(BYTES_KEY)
    out = r.process_record(VALUE, b"\x00\xffsecret")
    assert out.key.startswith(b"tok_") and b"secret" not in out.key
    assert r._key.transforms[0].reverse(out.key.decode()) == b"\x00\xffsecret".hex()


@pytest.mark.parametrize("key_section, key, reason", [
    (JSON_KEY, b"{not json", "key-decode-failed"),
    (JSON_KEY, b'"a string"', "not-an-object"),
    (JSON_KEY, b'{"phone": [1, 2]}', "unsupported-type"),
    (JSON_KEY, b'{"phone": "123"}', "fpe-domain-too-small"),
    (STRING_KEY, b"\xff\xfe", "key-decode-failed"),
    (STRING_KEY, b"not a phone", "normalize-failed"),
])
def test_a_key_that_cannot_be_protected_dead_letters_the_record_with_no_key(key_section, key, reason):
    r = route_of(key_section)
    out = r.process_record(VALUE, key)
    assert (out.kind, out.reason, out.stage, out.key) == (DEAD_LETTER, reason, "key", None)
    st = r.stats.drain()
    assert st.consumed == 1 and st.dead_lettered == {reason: 1} and st.produced == 0


def test_routes_without_key_rules_pass_keys_and_headers_unchanged():
    r = route_of()
    out = r.process_record(VALUE, b"k1", [("email", b"a@b.c")])
    assert out.key == b"k1" and out.headers == [("email", b"a@b.c")]
    assert not r.has_parts


# --------------------------------------------------------------------------------- headers
def test_headers_with_a_null_value_keep_order_and_the_email_is_protected():
    r = route_of(headers=EMAIL_HEADER)
    src = [("source", None), ("email", b"a@example.invalid"), ("x-trace", b"abc"), ("email", b"B@example.invalid")]
    out = r.process_record(VALUE, b"k", src)
    assert [n for n, _ in out.headers] == ["source", "email", "x-trace", "email"]
    assert out.headers[0] == ("source", None)
    assert b"example" not in out.headers[1][1] and out.headers[2] == ("x-trace", b"a**")
    assert out.headers[1][1] != out.headers[3][1]
    st = r.stats.drain()
    by_label = dict(zip(r.rule_labels, st.transforms))
    assert by_label["header:email"] == 2 and by_label["header:x-*"] == 1


def test_unlisted_headers_drop_and_the_first_matching_rule_wins():
    r = route_of(headers="    headers:\n      - {header: x-keep, action: keep}\n      - {header: 'x-*', action: drop}\n",
                 unlisted_headers="drop")
    out = r.process_record(VALUE, None, [("a", b"1"), ("x-keep", b"2"), ("x-other", b"3")])
    assert out.headers == [("x-keep", b"2")]


def test_redacted_header_and_null_header_values():
    r = route_of(headers="    headers:\n      - {header: phone, action: redact, value: 0}\n      - {header: e, action: mask}\n")
    out = r.process_record(VALUE, None, [("phone", b"139"), ("e", None)])
    assert out.headers == [("phone", b"0"), ("e", None)]


def test_a_header_that_is_not_text_dead_letters_the_record_keeping_the_protected_key():
    r = route_of(STRING_KEY, EMAIL_HEADER)
    out = r.process_record(VALUE, b"13900001111", [("email", b"\xff\xfe")])
    assert (out.kind, out.reason, out.stage, out.rule) == (DEAD_LETTER, "header-decode-failed", "headers", "header:email")
    assert out.key == r.process_record(VALUE, b"13900001111").key


def test_blocked_records_still_count_once():
    r = route_of(STRING_KEY, block="    block:\n      - when: {field: consent, equals: false}\n        reason: consent-withdrawn\n")
    out = r.process_record(orjson.dumps({"consent": False}), b"13900001111")
    assert out.kind == BLOCK
    assert r.stats.drain().consumed == 1


# ------------------------------------------------------------------ batch path = reference path
HEADER = st.tuples(st.sampled_from(["email", "x-a", "x-b", "source", "dpp-policy"]),
                   st.none() | st.sampled_from([b"a@example.invalid", b"B@x.org", b"", b"\xff", "王".encode()]))
KEY = st.none() | st.sampled_from([b"13900001111", b"+1 650 253 0000", b"bad", b"\xff", b""]) | st.binary(max_size=8)
VALUES = st.none() | st.sampled_from([VALUE, b"{", b"[1]", orjson.dumps({"email": 5}), orjson.dumps({"email": True}),
                                      orjson.dumps({"consent": False, "email": "x"})])


@settings(max_examples=150, deadline=None)
@given(records=st.lists(st.tuples(VALUES, KEY, st.none() | st.lists(HEADER, max_size=4)), max_size=12),
       drop=st.booleans())
def test_protect_records_equals_process_record(records, drop):
    kw = dict(key=STRING_KEY, headers=EMAIL_HEADER, unlisted_headers="drop" if drop else "keep",
              block="    block:\n      - when: {field: consent, equals: false}\n        reason: c\n")
    ref, fast = route_of(**kw), route_of(**kw)
    expected = [ref.process_record(v, k, h) for v, k, h in records]
    results, keys, headers = fast.protect_records([v for v, _, _ in records], [k for _, k, _ in records],
                                                  [h for _, _, h in records])
    got = [Outcome(SINK, r) if type(r) is bytes else r for r in results]
    for e, g, k, h in zip(expected, got, keys, headers):
        assert (e.kind, e.value, e.reason, e.stage, e.rule) == (g.kind, g.value, g.reason, g.stage, g.rule)
        assert e.key == k
        if e.kind != DEAD_LETTER or e.stage not in ("key", "headers"):
            assert e.headers == h
    a, b = ref.stats.drain(), fast.stats.drain()
    assert (a.consumed, a.produced, a.blocked, a.dead_lettered, a.transforms, a.unmatched) == \
           (b.consumed, b.produced, b.blocked, b.dead_lettered, b.transforms, b.unmatched)


# --------------------------------------------------------------------------- dead-letter content
@given(key=st.none() | st.binary(max_size=40), value=st.none() | st.binary(max_size=80),
       headers=st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=20)), max_size=5))
def test_dead_letter_content_round_trip(key, value, headers):
    packed = deadletter.pack_record(key, headers, value)
    assert deadletter.unpack_record(packed) == deadletter.SealedRecord(key, headers, value)


def test_dead_letter_envelope_seals_key_headers_and_value():
    r = route_of(STRING_KEY)
    out = r.process_record(b"{bad", b"13900001111", [("x-user-email", b"a@example.invalid")])
    sealed, hdrs = deadletter.envelope(r, "parts@1", "in.t", 2, 7, b"{bad", out, b"13900001111",
                                       [("x-user-email", b"a@example.invalid")])
    blob = sealed + b"".join(v for _, v in hdrs)
    for secret in (b"13900001111", b"a@example.invalid", b"{bad"):
        assert secret not in blob
    assert out.key is not None and b"139" not in out.key   # the dead-letter record's key: protected
    h = {k: v.decode() for k, v in hdrs}
    rec = deadletter.open_record(r.dead_letter_key, sealed, h)
    assert rec == deadletter.SealedRecord(b"13900001111", [("x-user-email", b"a@example.invalid")], b"{bad")
    with pytest.raises(DecryptionError):
        deadletter.open_record(r.dead_letter_key, sealed, {**h, "dpp.source.offset": "8"})
    with pytest.raises(DecryptionError):   # the content header is authenticated too (AAD version)
        deadletter.open_record(r.dead_letter_key, sealed, {k: v for k, v in h.items() if k != "dpp.dlq.content"})


def test_dead_letter_envelopes_of_earlier_versions_still_open():
    from proxy.crypto import aead
    r = route_of()
    sealed = aead.seal_deterministic(r.dead_letter_key, b"payload", deadletter.associated_data("in.t", 0, 1, version=1))
    rec = deadletter.open_record(r.dead_letter_key, sealed,
                                 {"dpp.source.topic": "in.t", "dpp.source.partition": "0", "dpp.source.offset": "1"},
                                 dlq_key=b"k")
    assert rec == deadletter.SealedRecord(b"k", [], b"payload")


def test_a_dead_letter_stub_holds_size_and_keyed_digest_but_no_payload():
    import hashlib
    import hmac
    r = route_of(STRING_KEY)
    original = (b"13900001111", [("x-user-email", b"a@example.invalid")], b'{"email": "a@example.invalid"}')
    out = Outcome(DEAD_LETTER, reason="too-large", stage="produce", error_class="RecordTooLarge")
    value, hdrs = deadletter.stub(r, "parts@1", "in.t", 2, 7, original[2], out, original[0], original[1])
    assert value == b""
    blob = b"".join(v for _, v in hdrs)
    for secret in (b"13900001111", b"a@example.invalid"):
        assert secret not in blob
    h = {k: v.decode() for k, v in hdrs}
    packed = deadletter.pack_record(*original)
    assert h["dpp.dlq.content"] == "dropped" and h["dpp.reason"] == "too-large"
    assert h["dpp.dropped.bytes"] == str(len(packed))
    want = hmac.new(deadletter.digest_key(r.dead_letter_key), packed, hashlib.sha256).hexdigest()
    assert h["dpp.dropped.digest"] == f"hmac-sha256:{want}"
    # keyed: the plain SHA-256 of the content (which anyone could test a guess against) is not it
    assert hashlib.sha256(packed).hexdigest() not in h["dpp.dropped.digest"]
    assert deadletter.digest_key(r.dead_letter_key) != r.dead_letter_key
    with pytest.raises(deadletter.PayloadDropped) as e:
        deadletter.open_record(r.dead_letter_key, value, h)
    assert e.value.size == len(packed) and e.value.digest == h["dpp.dropped.digest"]
