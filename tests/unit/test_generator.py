"""Tests for proxy.generator: shape, validity of identifiers, determinism, malformed payloads."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, datetime, timezone

import phonenumbers
import pytest

from proxy.detectors.checksums import cn_resident_id_valid, luhn_valid
from proxy.generator import (
    MALFORMED_KINDS,
    RECORD_KEYS,
    REFERENCE_DATE,
    generate_records,
    malformed_cases,
    malformed_payloads,
)

N = 2000


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(generate_records(N, seed=42))


def _parse_ts(s: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s), s
    dt = datetime.fromisoformat(s)
    assert dt.tzinfo is not None and dt.utcoffset().total_seconds() == 0
    return dt


def _strip(card: str) -> str:
    return card.replace(" ", "").replace("-", "")


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------

def test_deterministic_same_seed():
    a = list(generate_records(300, seed=7))
    b = list(generate_records(300, seed=7))
    assert a == b
    assert json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)


def test_different_seeds_differ():
    a = list(generate_records(50, seed=1))
    b = list(generate_records(50, seed=2))
    assert [r["id_number"] for r in a] != [r["id_number"] for r in b]
    assert [r["name"] for r in a] != [r["name"] for r in b]


def test_prefix_stable_and_interleaving_safe():
    full = list(generate_records(40, seed=3))
    assert list(generate_records(10, seed=3)) == full[:10]
    # Interleave two generators sharing the cached Faker instances.
    g1, g2 = generate_records(40, seed=3), generate_records(40, seed=99)
    mixed = []
    for _ in range(40):
        mixed.append(next(g1))
        next(g2)
    assert mixed == full


def test_deterministic_with_note_chars():
    assert list(generate_records(30, seed=5, note_chars=500)) == list(generate_records(30, seed=5, note_chars=500))


def test_empty_and_bad_arguments():
    assert list(generate_records(0)) == []
    with pytest.raises(ValueError):
        list(generate_records(-1))
    with pytest.raises(ValueError):
        list(generate_records(1, note_chars=-5))


# ---------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------

def test_key_set_exact(records):
    for r in records:
        assert tuple(r) == RECORD_KEYS
        assert set(r["address"]) == {"street", "city", "postcode", "country"}
        assert set(r["consent"]) == {"marketing", "analytics", "updated_at"}
        for o in r["orders"]:
            assert set(o) == {"order_id", "amount", "currency", "card_number", "placed_at"}


def test_json_roundtrip(records):
    for r in records[:200]:
        assert json.loads(json.dumps(r, ensure_ascii=False)) == r


def test_record_and_customer_ids(records):
    assert [r["record_id"] for r in records] == [f"r-42-{i}" for i in range(N)]
    for r in records:
        assert re.fullmatch(r"C\d{10}", r["customer_id"])
    assert len({r["customer_id"] for r in records}) > N * 0.99


def test_locale_mix(records):
    c = Counter(r["locale"] for r in records)
    assert set(c) == {"zh_CN", "en_US"}
    assert abs(c["zh_CN"] - c["en_US"]) <= 1
    for r in records:
        zh = r["locale"] == "zh_CN"
        assert r["address"]["country"] == ("CN" if zh else "US")
        assert all(o["currency"] == ("CNY" if zh else "USD") for o in r["orders"])
        if zh:
            assert re.search(r"[\u4e00-\u9fff]", r["name"])
        else:
            assert re.fullmatch(r"[A-Za-z.' -]+", r["name"])


def test_id_number_valid_and_matches_birth_date(records):
    x_count = 0
    for r in records:
        idn = r["id_number"]
        assert len(idn) == 18
        assert cn_resident_id_valid(idn), idn
        assert cn_resident_id_valid(idn, today=REFERENCE_DATE), idn
        assert idn[4:6] != "00", "county-level address code expected"
        bd = r["birth_date"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", bd)
        assert idn[6:14] == bd.replace("-", "")
        x_count += idn.endswith("X")
    assert x_count > 0, "some IDs must end in X (about 1 in 11)"


def test_birth_date_adult(records):
    for r in records:
        b = date.fromisoformat(r["birth_date"])
        age = REFERENCE_DATE.year - b.year - ((REFERENCE_DATE.month, REFERENCE_DATE.day) < (b.month, b.day))
        assert 18 <= age <= 90, (r["birth_date"], age)


def test_bank_cards_luhn_and_iin(records):
    formats = Counter()
    iins = Counter()
    for r in records:
        card = r["bank_card"]
        assert re.fullmatch(r"\d{16}|\d{19}|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(\1\d{3})?", card), card
        formats["space" if " " in card else "dash" if "-" in card else "plain"] += 1
        digits = _strip(card)
        assert len(digits) in (16, 19)
        assert luhn_valid(digits), card
        if digits.startswith("62"):
            iins["unionpay"] += 1
        elif digits.startswith("4"):
            iins["visa"] += 1
        else:
            assert 51 <= int(digits[:2]) <= 55, card
            iins["mastercard"] += 1
        for o in r["orders"]:
            assert re.fullmatch(r"\d{16}", o["card_number"])
            assert luhn_valid(o["card_number"])
    assert set(formats) == {"plain", "space", "dash"}
    assert set(iins) == {"unionpay", "visa", "mastercard"}
    assert any(len(_strip(r["bank_card"])) == 19 for r in records)


def test_mobiles(records):
    formats = Counter()
    for r in records:
        m = r["mobile"]
        if r["locale"] == "zh_CN":
            mm = re.fullmatch(r"(1[35789]\d)(\d{4})(\d{4})|(1[35789]\d)-(\d{4})-(\d{4})|\+86 (1[35789]\d) (\d{4}) (\d{4})", m)
            assert mm, m
            formats["plain" if mm.group(1) else "dash" if mm.group(4) else "intl"] += 1
            assert m.replace("+86", "").replace(" ", "").replace("-", "")[:2] in {"13", "15", "17", "18", "19"}
            num = phonenumbers.parse(m, "CN")
        else:
            assert re.fullmatch(r"\+1 [2-9]\d\d-[2-9]\d\d-\d{4}", m), m
            num = phonenumbers.parse(m, None)
        assert phonenumbers.is_valid_number(num), m
    assert set(formats) == {"plain", "dash", "intl"}


def test_emails_and_addresses(records):
    for r in records:
        assert re.fullmatch(r"[a-z0-9._-]+@[a-z0-9.-]+\.[a-z]{2,}", r["email"]), r["email"]
        a = r["address"]
        assert a["street"] and a["city"]
        assert re.fullmatch(r"\d{6}" if a["country"] == "CN" else r"\d{5}", a["postcode"]), a


def test_consent(records):
    analytics_off = sum(not r["consent"]["analytics"] for r in records)
    assert 0.02 * N <= analytics_off <= 0.09 * N
    marketing = Counter(r["consent"]["marketing"] for r in records)
    assert set(marketing) == {True, False}
    for r in records:
        assert isinstance(r["consent"]["marketing"], bool)
        assert _parse_ts(r["consent"]["updated_at"]) >= _parse_ts(r["created_at"])


def test_orders(records):
    counts = Counter(len(r["orders"]) for r in records)
    assert set(counts) == {0, 1, 2, 3}
    for r in records:
        created = _parse_ts(r["created_at"])
        for o in r["orders"]:
            assert re.fullmatch(r"O\d{12}", o["order_id"])
            assert isinstance(o["amount"], float) and o["amount"] > 0
            assert round(o["amount"], 2) == o["amount"]
            assert _parse_ts(o["placed_at"]) >= created


def test_timestamps(records):
    ref = datetime(REFERENCE_DATE.year, REFERENCE_DATE.month, REFERENCE_DATE.day, tzinfo=timezone.utc)
    for r in records:
        assert datetime(2018, 1, 1, tzinfo=timezone.utc) <= _parse_ts(r["created_at"]) < ref


def test_segments(records):
    c = Counter(r["segment"] for r in records)
    assert set(c) == {"bronze", "silver", "gold"}
    assert c["bronze"] > c["silver"] > c["gold"]


def test_notes(records):
    mentions = 0
    for r in records:
        note = r["note"]
        assert isinstance(note, str) and note
        if r["locale"] == "zh_CN":
            assert re.search(r"[\u4e00-\u9fff]", note)
        mentions += (r["mobile"] in note) or (r["email"] in note)
    assert 0.2 * N <= mentions <= 0.4 * N


@pytest.mark.parametrize("note_chars", [0, 5, 40, 300, 5000])
def test_note_chars_exact(note_chars):
    recs = list(generate_records(60, seed=11, note_chars=note_chars))
    assert all(len(r["note"]) == note_chars for r in recs)
    if note_chars >= 300:
        zh = [r for r in recs if r["locale"] == "zh_CN"]
        assert all(len(re.findall(r"[\u4e00-\u9fff]", r["note"])) > note_chars * 0.6 for r in zh)


def test_note_chars_keeps_mentions_when_room():
    recs = list(generate_records(400, seed=12, note_chars=80))
    assert sum((r["mobile"] in r["note"]) or (r["email"] in r["note"]) for r in recs) > 0.2 * 400


# ---------------------------------------------------------------------------
# Malformed payloads
# ---------------------------------------------------------------------------

def _strict_object(payload: bytes):
    """Parse as RFC 8259 JSON (UTF-8, no NaN/Infinity); return the object or raise."""

    def reject_constant(name):
        raise ValueError(f"non-standard constant {name}")

    text = payload.decode("utf-8")  # strict: invalid UTF-8 raises
    return json.loads(text, parse_constant=reject_constant)


def _is_acceptable_record(payload: bytes) -> bool:
    try:
        obj = _strict_object(payload)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and isinstance(obj.get("id_number"), str)


def test_malformed_payloads_rejected():
    payloads = malformed_payloads(len(MALFORMED_KINDS) * 3, seed=1)
    assert len(payloads) == len(MALFORMED_KINDS) * 3
    for p in payloads:
        assert isinstance(p, bytes)
        assert not _is_acceptable_record(p), p[:120]


def test_malformed_required_kinds_present():
    cases = malformed_cases(len(MALFORMED_KINDS), seed=0)
    by_kind = {c.kind: c.payload for c in cases}
    assert set(by_kind) == set(MALFORMED_KINDS)
    assert by_kind["empty"] == b""
    with pytest.raises(UnicodeDecodeError):
        by_kind["invalid_utf8"].decode("utf-8")
    assert isinstance(_strict_object(by_kind["array"]), list)
    assert isinstance(_strict_object(by_kind["string"]), str)
    assert isinstance(_strict_object(by_kind["number"]), int)
    obj = _strict_object(by_kind["id_number_int_list"])
    assert isinstance(obj, dict)
    assert isinstance(obj["id_number"], list) and all(isinstance(x, int) for x in obj["id_number"])
    with pytest.raises(ValueError):
        _strict_object(by_kind["truncated"])


def test_malformed_contain_personal_values():
    cases = malformed_cases(len(MALFORMED_KINDS) * 2, seed=4)
    with_pii = [c for c in cases if c.personal]
    assert len(with_pii) >= len(cases) // 2
    for c in with_pii:
        for v in c.personal:
            enc = v.encode("utf-16-le") if c.kind == "utf16" else v.encode("utf-8")
            assert enc in c.payload, (c.kind, v)
    truncated = [c for c in cases if c.kind == "truncated"]
    assert truncated
    for c in truncated:
        assert len(c.personal) == 4  # name, id_number, mobile, email
        assert any(re.search(r"1[3-9]\d", v) for v in c.personal)
        assert any("@" in v for v in c.personal)


def test_malformed_deterministic():
    assert malformed_payloads(50, seed=9) == malformed_payloads(50, seed=9)
    assert malformed_payloads(50, seed=9) != malformed_payloads(50, seed=10)
    assert malformed_payloads(0) == []
