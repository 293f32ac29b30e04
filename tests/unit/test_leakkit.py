"""The leak audit's search (tests/leakkit.py) finds what it claims to find, so a clean audit
(tests/integration/test_leak_audit.py) means nothing was there, not that nothing was looked for.

* a planted value is found in clear, JSON-escaped, UTF-16, hex, base64 (every alignment, both
  alphabets), percent-encoded, in another case, and a phone number by its digits, E.164 or national form
  (and with separators the source did not have);
* short values (postcodes, dates as digits) match only as whole tokens; near misses match nothing;
* key material is found as bytes in binary data and as hex in either case;
* hits never carry the value; the corpus holds every kind and each value is found in its own source.
"""
from __future__ import annotations

import base64
import json
import os
import urllib.parse

import orjson
import pytest

from leakkit import Secret, all_secrets, corpus, search

NAME_ZH, NAME_EN, EMAIL = "刘建国", "Nathaniel Hernandez", "nathanielhernandez78@gmail.com"
MOBILE_CN, MOBILE_US = "+86 170 5589 5155", "+1 512-489-6260"


def found(kind: str, value, blob: bytes) -> list[str]:
    return [h.form for h in search([Secret(kind, value, "planted")], {"place": [blob]})]


@pytest.mark.parametrize("value", [NAME_ZH, NAME_EN, EMAIL, "450329199603010624", "郭街K座"])
def test_a_planted_value_is_found_in_every_encoding(value):
    raw = value.encode()
    blobs = {
        "clear": b"prefix " + raw + b" suffix",
        "json": json.dumps({"msg": f"x {value} y"}, ensure_ascii=True).encode(),
        "escaped text": b"not json: " + json.dumps(value, ensure_ascii=True).encode() + b" {",
        "utf-16": b"\xff\xfe" + f"<{value}>".encode("utf-16-le"),
        "hex": b"blob=" + (b"ab" + raw + b"cd").hex().encode(),
        "HEX": b"blob=" + (b"ab" + raw + b"cd").hex().upper().encode(),
        "percent": b"GET /?q=" + urllib.parse.quote(value).encode() + b" HTTP/1.1",
    }
    for pad in (b"", b"x", b"xy"):
        enc = base64.b64encode(pad + raw + b"--tail--")
        blobs[f"base64@{len(pad)}"] = b"token: " + enc + b"\n"
        blobs[f"base64url@{len(pad)}"] = b"token=" + base64.urlsafe_b64encode(b"\xfb\xff" + pad + raw).rstrip(b"=")
    for what, blob in blobs.items():
        assert found("name", value, blob), f"not found {what}"


@pytest.mark.parametrize("secret, leaked", [
    (MOBILE_CN, "8617055895155"), (MOBILE_CN, "17055895155"), (MOBILE_CN, "+8617055895155"),
    (MOBILE_CN, "170-5589-5155"), ("17055895155", "170 5589 5155"), ("17055895155", "(170) 5589-5155"),
    (MOBILE_US, "5124896260"), (MOBILE_US, "+15124896260"), (MOBILE_US, "(512) 489-6260"),
    ("6222 0212 3456 7890 128", "6222021234567890128"), ("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
    (EMAIL, EMAIL.upper()), ("１３９０００", "139000"),
])
def test_normalised_forms_are_found(secret, leaked):
    assert found("mobile", secret, f'{{"v": "x {leaked} y"}}'.encode()), leaked
    assert found("mobile", secret, f"log line {leaked}.".encode()), leaked


@pytest.mark.parametrize("blob, hit", [
    (b'{"postcode": "269868"}', True), (b"zip 269868.", True), (b"zip: 26 98 68", True),
    (b"x269868y", True),                                          # a whole run of digits
    (b"1269868", False), (b"2698681", False), (b"O4269868123", False), (b"ab2698681f", False),
    (b'{"postcode": "26****"}', False),
])
def test_short_values_match_only_as_whole_tokens(blob, hit):
    assert bool(found("postcode", "269868", blob)) is hit


def test_birth_date_and_short_names():
    assert found("birth_date", "1996-03-01", b"born 19960301 in")
    assert not found("birth_date", "1996-03-01", b"450329199603010624")      # inside a longer run: not the date
    assert found("name", "王芳", "客户王芳来电".encode())
    assert found("name", "王芳", json.dumps({"n": "客户王芳"}).encode())


@pytest.mark.parametrize("blob", [b"", b"nothing here", f"{NAME_ZH[:-1]}x {EMAIL[:-1]}".encode(),
                                  b"17055895154", "刘**".encode(), b'{"email": "em_ea793e3e6f4f935e187efb3e"}'])
def test_absent_and_near_misses_are_not_found(blob):
    secrets = [Secret("name", NAME_ZH, "a"), Secret("email", EMAIL, "b"), Secret("mobile", MOBILE_CN, "c")]
    assert search(secrets, {"place": [blob]}) == []


def test_key_material_is_found_in_binary_and_hex():
    key = os.urandom(32)
    blob = os.urandom(100) + key + os.urandom(100)
    assert found("key", key, blob)
    assert found("key", key.hex(), b"key=" + key.hex().upper().encode())
    assert found("key", key.hex(), b"k: " + base64.b64encode(key))
    assert found("key", key.hex()[:16], b"prefix " + key.hex()[:16].encode() + b"...")


def test_every_place_is_searched_and_named():
    s = Secret("email", EMAIL, "case-7")
    hits = search([s], {"a": [b"clean", None], "b": [b"x", EMAIL.encode()], "c": [EMAIL.encode()]})
    assert sorted(h.place for h in hits) == ["b", "c"] and {h.case for h in hits} == {"case-7"}


def test_hits_never_show_the_value():
    s = Secret("email", EMAIL, "case-1")
    hits = search([s], {"log": [EMAIL.encode()]})
    assert hits
    for text in (repr(hits), str(hits), repr(s)):
        assert EMAIL not in text and "nathaniel" not in text


def test_the_corpus_holds_every_kind_and_each_value_is_in_its_source():
    cases = corpus()
    secrets = all_secrets(cases)
    assert {s.kind for s in secrets} >= {"customer_id", "name", "id_number", "mobile", "email", "bank_card",
                                         "birth_date", "street", "postcode", "card_number", "note", "note_pii",
                                         "malformed"}
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    assert sum(c.expect == "dead-letter" for c in cases) == 21   # 20 malformed, 1 over limits.max_depth
    assert sum(c.expect == "blocked" for c in cases) >= 3
    for c in cases:
        blobs = [c.value, c.key, *[v for _, v in c.headers]]
        hits = search(c.secrets, {"source": blobs})
        assert {h.index for h in hits} == set(range(len(c.secrets))), f"{c.name}: a listed value is not in it"


def test_the_corpus_is_deterministic():
    a, b = corpus(), corpus()
    assert [(c.name, c.value, c.key, c.headers) for c in a] == [(c.name, c.value, c.key, c.headers) for c in b]
    assert orjson.loads(a[0].value)["record_id"]
