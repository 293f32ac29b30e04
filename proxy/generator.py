"""Deterministic fake customer records (and malformed payloads) for demos, tests and load tests.

Every value is synthetic: names, addresses and e-mail user names come from
Faker, identifiers are built here so that they pass the same checksums the
detectors use (:mod:`proxy.detectors.checksums`). The same ``(count, seed,
note_chars)`` always yields identical records in the same environment
(same Faker version), and record ``i`` does not depend on ``count``.

Record shape (keys are exact, in this order)::

    record_id:   str   "r-<seed>-<index>"  (unique, not personal)
    customer_id: str   "C" + 10 digits
    locale:      "zh_CN" | "en_US"         (alternating: even index zh_CN)
    name:        str   Faker name of that locale
    id_number:   str   18-char PRC resident ID (GB 11643-1999), county-level
                       GB/T 2260 address code, birth date == birth_date,
                       MOD 11-2 check char ('X' about 1 in 11)
    mobile:      str   zh_CN "13912345678" | "139-1234-5678" | "+86 139 1234 5678";
                       en_US "+1 212-555-0143"
    email:       str
    address:     {"street": str, "city": str, "postcode": str, "country": "CN" | "US"}
    birth_date:  "YYYY-MM-DD", age 18..90 on REFERENCE_DATE
    bank_card:   str   16 or 19 digits, Luhn-valid (ISO/IEC 7812), IIN 62 (UnionPay),
                       4 (Visa) or 51-55 (Mastercard); ~30% grouped by 4 with
                       spaces or dashes
    consent:     {"marketing": bool, "analytics": bool (False ~5%),
                  "updated_at": "YYYY-MM-DDTHH:MM:SSZ"}
    orders:      list of 0..3 {"order_id": "O" + 12 digits, "amount": float (2 dp),
                  "currency": "CNY" | "USD", "card_number": 16 plain digits (Luhn),
                  "placed_at": "YYYY-MM-DDTHH:MM:SSZ"}
    note:        str   free text in the locale's language; ~30% mention the
                       record's mobile and/or email; exactly ``note_chars``
                       characters long when ``note_chars`` is given
    segment:     "bronze" | "silver" | "gold"  (~60/30/10 %)
    created_at:  "YYYY-MM-DDTHH:MM:SSZ"  (UTC, 2018-01-01 .. REFERENCE_DATE)

Timestamps and ages are relative to the fixed :data:`REFERENCE_DATE`, never
the wall clock, so output does not drift from day to day.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Iterator

from proxy.detectors.checksums import CN_PROVINCE_CODES, cn_resident_id_check_char, luhn_check_digit

__all__ = [
    "REFERENCE_DATE",
    "RECORD_KEYS",
    "LOCALES",
    "generate_records",
    "CUSTOMER_AVRO_SCHEMA",
    "avro_datum",
    "CUSTOMER_PROTO",
    "protobuf_doc",
    "customer_message_class",
    "MalformedCase",
    "MALFORMED_KINDS",
    "malformed_cases",
    "malformed_payloads",
]

#: Fixed "today" for ages and timestamps (keeps output deterministic).
REFERENCE_DATE = date(2025, 1, 1)
LOCALES = ("zh_CN", "en_US")
RECORD_KEYS = (
    "record_id", "customer_id", "locale", "name", "id_number", "mobile", "email",
    "address", "birth_date", "bank_card", "consent", "orders", "note", "segment", "created_at",
)

_UTC = timezone.utc
_REF_DT = datetime(REFERENCE_DATE.year, REFERENCE_DATE.month, REFERENCE_DATE.day, tzinfo=_UTC)
_REF_TS = int(_REF_DT.timestamp())
_CREATED_MIN_TS = int(datetime(2018, 1, 1, tzinfo=_UTC).timestamp())
# Adults: 18..90 years old on REFERENCE_DATE.
_BIRTH_MAX = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - 18).toordinal()
_BIRTH_MIN = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - 91).toordinal() + 1

# Mainland mobile prefixes currently allocated (MIIT numbering plan) within
# 13x/15x/17x/18x/19x; 154, 172 (IoT), 174 (satellite), 179, 194 excluded.
_CN_MOBILE_PREFIXES = (
    tuple(str(p) for p in range(130, 140))
    + ("150", "151", "152", "153", "155", "156", "157", "158", "159")
    + ("170", "171", "173", "175", "176", "177", "178")
    + tuple(str(p) for p in range(180, 190))
    + ("190", "191", "192", "193", "195", "196", "197", "198", "199")
)
# Real, in-service US area codes (NANPA).
_US_AREA_CODES = (
    "201", "202", "205", "206", "212", "213", "214", "215", "216", "281", "303", "305",
    "310", "312", "313", "314", "404", "407", "412", "415", "469", "503", "512", "602",
    "617", "619", "646", "702", "713", "718", "720", "773", "804", "818", "857", "917",
)
# Issuer identification numbers (first 6 digits).
_UNIONPAY_IINS = (
    "622202", "622848", "621700", "622700", "621226", "622588",
    "621483", "622262", "621661", "623668", "622609", "621559",
)
_UNIONPAY_CREDIT_IINS = ("625965", "625908", "628288", "622155")  # 16-digit products

_ZH_NOTE_TEMPLATES = (
    "客户来电，要求改用{mobile}联系。",
    "如有问题请拨打{mobile}，工作日均可。",
    "发票请发送至{email}。",
    "客户表示以后请通过{email}通知发货。",
    "联系人电话{mobile}，邮箱{email}。",
    "送货前请先致电{mobile}确认。",
)
_EN_NOTE_TEMPLATES = (
    "Customer asked to be reached at {mobile}.",
    "Please call {mobile} before delivery.",
    "Send the invoice to {email}.",
    "Customer prefers e-mail: {email}.",
    "Contact: {mobile} / {email}.",
    "Changed preferred contact number to {mobile} on request.",
)
_ZH_STOCK = (
    "客户希望尽快发货。", "订单已确认，等待付款。", "客户对上次服务表示满意。",
    "请注意包装，避免破损。", "客户要求开具增值税发票。", "已提醒客户会员积分即将过期。",
    "退货申请已受理。", "客户咨询了分期付款方案。",
)
_EN_STOCK = (
    "Customer wants expedited shipping.", "Order confirmed, awaiting payment.",
    "Customer was happy with the last support call.", "Please pack carefully.",
    "Requested a VAT invoice.", "Reminded customer that loyalty points expire soon.",
    "Return request accepted.", "Asked about installment plans.",
)


@lru_cache(maxsize=None)
def _faker(locale: str):
    """Cached per-locale Faker generator (creating one costs milliseconds)."""
    from faker import Faker  # imported lazily: only demos/tests need Faker

    return Faker(locale)[locale]


@lru_cache(maxsize=None)
def _cn_area_codes() -> tuple[str, ...]:
    """County-level GB/T 2260 address codes (last two digits != 00)."""
    from faker.providers.ssn.zh_CN import Provider

    codes = tuple(
        c for c in Provider.area_codes
        if len(c) == 6 and c.isdigit() and c[:2] in CN_PROVINCE_CODES and c[4:] != "00"
    )
    return codes


@lru_cache(maxsize=None)
def _lorem_words(locale: str) -> tuple[str, ...]:
    if locale == "zh_CN":
        from faker.providers.lorem.zh_CN import Provider
    else:
        from faker.providers.lorem.en_US import Provider
    return tuple(Provider.word_list)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, _UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def _card(rng: random.Random, iin: str, length: int) -> str:
    partial = iin + _digits(rng, length - len(iin) - 1)
    return partial + luhn_check_digit(partial)


def _card_digits(rng: random.Random, locale: str, *, force16: bool = False) -> str:
    r = rng.random()
    unionpay_share = 0.8 if locale == "zh_CN" else 0.05
    if r < unionpay_share:
        if force16 or rng.random() < 0.25:
            return _card(rng, rng.choice(_UNIONPAY_CREDIT_IINS), 16)
        return _card(rng, rng.choice(_UNIONPAY_IINS), 19)
    if rng.random() < 0.55:
        return _card(rng, "4" + _digits(rng, 5), 16)  # Visa
    return _card(rng, str(rng.randint(51, 55)) + _digits(rng, 4), 16)  # Mastercard


def _group(digits: str, sep: str) -> str:
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


def _mobile(rng: random.Random, locale: str) -> str:
    if locale == "zh_CN":
        prefix = rng.choice(_CN_MOBILE_PREFIXES)
        a, b = _digits(rng, 4), _digits(rng, 4)
        r = rng.random()
        if r < 0.7:
            return f"{prefix}{a}{b}"
        if r < 0.85:
            return f"{prefix}-{a}-{b}"
        return f"+86 {prefix} {a} {b}"
    area = rng.choice(_US_AREA_CODES)
    exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
    if exchange[1:] == "11":  # N11 codes are not assignable exchanges
        exchange = exchange[0] + "21"
    return f"+1 {area}-{exchange}-{_digits(rng, 4)}"


_NAME_AFFIXES = frozenset(
    {"mr", "mrs", "ms", "miss", "dr", "jr", "sr", "ii", "iii", "iv", "v", "md", "dds", "phd", "dvm"}
)


def _en_user(name: str, rng: random.Random) -> str:
    parts = [p for p in name.lower().replace(".", "").replace("'", "").split() if p.isalpha()]
    parts = [p for p in parts if p not in _NAME_AFFIXES]
    if not parts:
        parts = ["user"]
    first, last = parts[0], parts[-1]
    style = rng.randrange(4)
    if style == 0:
        user = f"{first}.{last}"
    elif style == 1:
        user = f"{first[0]}{last}"
    elif style == 2:
        user = f"{first}{last}{rng.randint(1, 99)}"
    else:
        user = f"{first}_{rng.randint(1960, 2006)}"
    return user


def _filler(rng: random.Random, locale: str, min_chars: int) -> str:
    """Cheap locale-flavoured filler text of at least ``min_chars`` characters.

    One ``rng.choices`` call for all words keeps large notes (load tests with
    ``note_chars`` in the kilobytes) fast.
    """
    words = _lorem_words(locale)
    zh = locale == "zh_CN"
    # zh lorem words average ~2 chars, en ~6.5 incl. the space; overshoot a bit.
    n_words = min_chars // (2 if zh else 5) + 8
    chosen = rng.choices(words, k=n_words)
    out: list[str] = []
    i = 0
    while i < n_words:
        k = rng.randint(4, 12)
        chunk = chosen[i:i + k]
        i += k
        if zh:
            out.append("".join(chunk))
            out.append("。" if k % 3 else "，")
        else:
            s = " ".join(chunk)
            out.append(s[0].upper() + s[1:] + ". ")
    text = "".join(out)
    while len(text) < min_chars:  # pathological word draws only
        text += text
    return text


def _note(rng: random.Random, locale: str, mobile: str, email: str, note_chars: int | None) -> str:
    zh = locale == "zh_CN"
    stock = _ZH_STOCK if zh else _EN_STOCK
    sentences = rng.sample(stock, rng.randint(1, 2))
    mention = None
    if rng.random() < 0.30:
        mention = rng.choice(_ZH_NOTE_TEMPLATES if zh else _EN_NOTE_TEMPLATES).format(
            mobile=mobile, email=email
        )
        sentences.insert(rng.randint(0, len(sentences)), mention)
    sep = "" if zh else " "
    text = sep.join(sentences)
    if note_chars is None:
        return text
    if note_chars <= 0:
        return ""
    if len(text) < note_chars:
        text = text + sep + _filler(rng, locale, note_chars - len(text))
    elif mention is not None and len(text) > note_chars:
        # Keep the personal mention intact when truncating, if it fits.
        text = sep.join([mention] + [s for s in sentences if s is not mention])
    return text[:note_chars]


def _record(seed: int, index: int, note_chars: int | None) -> dict[str, Any]:
    # Per-record RNG keyed by (seed, index): str seeds hash via SHA-512, so
    # this is stable across processes and independent of PYTHONHASHSEED.
    rng = random.Random(f"dpp-generator:{seed}:{index}")
    locale = LOCALES[index % 2]
    zh = locale == "zh_CN"
    fake = _faker(locale)
    # Re-seed the shared, cached Faker for every record, so that interleaved
    # generators (or different counts) cannot change each other's output.
    fake.seed_instance(rng.getrandbits(64))

    name = fake.name()
    birth = date.fromordinal(rng.randint(_BIRTH_MIN, _BIRTH_MAX))
    first17 = rng.choice(_cn_area_codes()) + birth.strftime("%Y%m%d") + _digits(rng, 3)
    id_number = first17 + cn_resident_id_check_char(first17)

    mobile = _mobile(rng, locale)
    if zh:
        email = f"{fake.user_name()}@{fake.free_email_domain()}"
        address = {
            "street": fake.street_address(),
            "city": fake.city(),
            "postcode": fake.postcode(),
            "country": "CN",
        }
    else:
        email = f"{_en_user(name, rng)}@{fake.free_email_domain()}"
        address = {
            "street": fake.street_address(),
            "city": fake.city(),
            "postcode": fake.postcode(),
            "country": "US",
        }

    card = _card_digits(rng, locale)
    r = rng.random()
    bank_card = card if r < 0.7 else _group(card, " " if r < 0.85 else "-")

    created_ts = rng.randrange(_CREATED_MIN_TS, _REF_TS)
    consent = {
        "marketing": rng.random() < 0.45,
        "analytics": rng.random() >= 0.05,
        "updated_at": _iso(rng.randrange(created_ts, _REF_TS)),
    }

    orders = []
    for _ in range(rng.randint(0, 3)):
        if len(card) == 16 and rng.random() < 0.7:
            order_card = card
        else:
            order_card = _card_digits(rng, locale, force16=True)
        amount = rng.randint(990, 500000) if zh else rng.randint(100, 80000)
        orders.append(
            {
                "order_id": "O" + _digits(rng, 12),
                "amount": round(amount / 100, 2),
                "currency": "CNY" if zh else "USD",
                "card_number": order_card,
                "placed_at": _iso(rng.randrange(created_ts, _REF_TS)),
            }
        )

    note = _note(rng, locale, mobile, email, note_chars)
    segment = rng.choices(("bronze", "silver", "gold"), weights=(60, 30, 10))[0]

    return {
        "record_id": f"r-{seed}-{index}",
        "customer_id": "C" + _digits(rng, 10),
        "locale": locale,
        "name": name,
        "id_number": id_number,
        "mobile": mobile,
        "email": email,
        "address": address,
        "birth_date": birth.isoformat(),
        "bank_card": bank_card,
        "consent": consent,
        "orders": orders,
        "note": note,
        "segment": segment,
        "created_at": _iso(created_ts),
    }


def generate_records(count: int, seed: int = 0, *, note_chars: int | None = None) -> Iterator[dict]:
    """Yield ``count`` synthetic customer records (shape in the module docstring).

    Deterministic: the same ``(seed, index, note_chars)`` gives the same record,
    so ``list(generate_records(n, s))`` is a prefix of
    ``list(generate_records(n + k, s))``. Locales alternate zh_CN / en_US.
    ``note_chars`` makes every ``note`` exactly that many characters long
    (padding with locale filler text, truncating otherwise) -- useful for
    load tests with a controlled payload size.

    Identifiers satisfy :mod:`proxy.detectors.checksums`: ``id_number`` passes
    ``cn_resident_id_valid`` (GB 11643-1999) and every card number passes
    ``luhn_valid`` (ISO/IEC 7812-1) after removing spaces and dashes.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if note_chars is not None and note_chars < 0:
        raise ValueError("note_chars must be >= 0 or None")
    for index in range(count):
        yield _record(seed, index, note_chars)


# ---------------------------------------------------------------------------
# Malformed payloads
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MalformedCase:
    """A payload that a proxy must reject, and the personal values inside it.

    ``personal`` lists the (str) personal values embedded in ``payload``; a
    reject path (error message, log line, dead-letter header, metric label)
    must never echo any of them. Except for kind ``utf16``, each value occurs
    in ``payload`` as UTF-8 bytes.
    """

    kind: str
    payload: bytes
    personal: tuple[str, ...] = ()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def _case(kind: str, rec: dict, rng: random.Random) -> MalformedCase:
    name, mobile, email, idn = rec["name"], rec["mobile"], rec["email"], rec["id_number"]
    pii = (name, idn, mobile, email)
    small = {"name": name, "id_number": idn, "mobile": mobile, "email": email}
    if kind == "truncated":
        full = _dumps(rec)
        end_of_email = full.index(_dumps(email)) + len(_dumps(email))
        cut = rng.randint(end_of_email, max(end_of_email, len(full) - 2))
        return MalformedCase(kind, full[:cut].encode(), pii)
    if kind == "trailing_comma":
        return MalformedCase(kind, (_dumps(small)[:-1] + ",}").encode(), pii)
    if kind == "single_quotes":
        body = ", ".join(f"'{k}': '{v}'" for k, v in small.items())
        return MalformedCase(kind, ("{" + body + "}").encode(), pii)
    if kind == "unquoted_keys":
        body = ", ".join(f"{k}: {_dumps(v)}" for k, v in small.items())
        return MalformedCase(kind, ("{" + body + "}").encode(), pii)
    if kind == "raw_newline_in_string":
        text = _dumps({"name": name, "note": f"call me\n{mobile}"}).replace("\\n", "\n")
        return MalformedCase(kind, text.encode(), (name, mobile))
    if kind == "nan_value":
        # RFC 8259 has no NaN; Python's json accepts it, strict parsers don't.
        return MalformedCase(kind, ('{"name": ' + _dumps(name) + ', "amount": NaN}').encode(), (name,))
    if kind == "trailing_garbage":
        return MalformedCase(kind, (_dumps(small) + " " + mobile).encode(), pii)
    if kind == "concatenated_objects":
        return MalformedCase(kind, (_dumps({"name": name}) + _dumps({"mobile": mobile})).encode(), (name, mobile))
    if kind == "array":
        return MalformedCase(kind, _dumps([small]).encode(), pii)
    if kind == "string":
        return MalformedCase(kind, _dumps(email).encode(), (email,))
    if kind == "phone_string":
        return MalformedCase(kind, _dumps(mobile).encode(), (mobile,))
    if kind == "number":
        # A bare JSON number that looks like the mobile number (e.g. 13912345678).
        digits = "".join(c for c in mobile if c.isdigit())
        return MalformedCase(kind, digits.encode(), (digits,))
    if kind == "null":
        return MalformedCase(kind, b"null")
    if kind == "boolean":
        return MalformedCase(kind, b"true")
    if kind == "empty":
        return MalformedCase(kind, b"")
    if kind == "whitespace":
        return MalformedCase(kind, b" \n\t ")
    if kind == "invalid_utf8":
        payload = b'{"name": "' + name.encode() + b'\xff\xfe", "email": "' + email.encode() + b'\xc3\x28"}'
        return MalformedCase(kind, payload, (name, email))
    if kind == "utf16":
        return MalformedCase(kind, b"\xff\xfe" + _dumps(small).encode("utf-16-le"), pii)
    if kind == "id_number_int_list":
        obj = dict(small)
        obj["id_number"] = [int(c) if c.isdigit() else 10 for c in idn]
        return MalformedCase(kind, _dumps(obj).encode(), (name, mobile, email))
    if kind == "deeply_nested":
        depth = 5000
        return MalformedCase(kind, b"[" * depth + _dumps(email).encode() + b"]" * depth, (email,))
    raise AssertionError(kind)


#: Kinds produced by :func:`malformed_cases`, cycled in this order.
MALFORMED_KINDS = (
    "truncated", "invalid_utf8", "array", "string", "number", "empty", "id_number_int_list",
    "trailing_comma", "single_quotes", "unquoted_keys", "raw_newline_in_string", "nan_value",
    "trailing_garbage", "concatenated_objects", "phone_string", "null", "boolean",
    "whitespace", "utf16", "deeply_nested",
)


def malformed_cases(count: int, seed: int = 0) -> list[MalformedCase]:
    """Return ``count`` :class:`MalformedCase` items, cycling :data:`MALFORMED_KINDS`.

    None of the payloads is a well-formed RFC 8259 JSON object with a string
    ``id_number``: they are invalid JSON, truncated JSON, non-object JSON
    (array, string, number, null, boolean), invalid UTF-8, empty or
    whitespace-only, or an object whose ``id_number`` is a list of ints.
    Most embed personal-looking values taken from :func:`generate_records`
    (listed in ``MalformedCase.personal``) so tests can assert they never
    leak from the reject path. Deterministic for ``(count, seed)``.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(f"dpp-malformed:{seed}")
    return [
        _case(MALFORMED_KINDS[i % len(MALFORMED_KINDS)], rec, rng)
        for i, rec in enumerate(generate_records(count, seed=seed))
    ]


def malformed_payloads(count: int, seed: int = 0) -> list[bytes]:
    """Return ``count`` raw payloads a proxy must reject (see :func:`malformed_cases`)."""
    return [c.payload for c in malformed_cases(count, seed)]


# ---------------------------------------------------------------------------
# The same records as Avro (Confluent wire format through a schema registry)
# ---------------------------------------------------------------------------

CUSTOMER_AVRO_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Customer", "namespace": "dpp.example",
    "doc": "A generated customer record (proxy.generator), Avro form",
    "fields": [
        {"name": "record_id", "type": "string"},
        {"name": "customer_id", "type": "string"},
        {"name": "locale", "type": "string"},
        {"name": "name", "type": "string", "confluent:tags": ["PII"]},
        {"name": "id_number", "type": "string", "confluent:tags": ["PII"]},
        {"name": "mobile", "type": "string", "confluent:tags": ["PII"]},
        {"name": "email", "type": ["null", "string"], "default": None, "confluent:tags": ["PII"]},
        {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
            {"name": "street", "type": "string"}, {"name": "city", "type": "string"},
            {"name": "postcode", "type": "string"}, {"name": "country", "type": "string"}]}},
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "bank_card", "type": "string", "confluent:tags": ["PII"]},
        {"name": "consent", "type": {"type": "record", "name": "Consent", "fields": [
            {"name": "marketing", "type": "boolean"}, {"name": "analytics", "type": "boolean"},
            {"name": "updated_at", "type": "string"}]}},
        {"name": "orders", "type": {"type": "array", "items": {"type": "record", "name": "Order", "fields": [
            {"name": "order_id", "type": "string"}, {"name": "amount", "type": "double"},
            {"name": "currency", "type": "string"}, {"name": "card_number", "type": "string"},
            {"name": "placed_at", "type": "string"}]}}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "segment", "type": {"type": "enum", "name": "Segment", "symbols": ["bronze", "silver", "gold"]}},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
"""Avro schema of :func:`generate_records`' records: ``birth_date`` is an Avro ``date``,
``created_at`` a ``timestamp-millis``, ``segment`` an enum; PII fields carry ``confluent:tags``."""


def avro_datum(rec: dict[str, Any]) -> dict[str, Any]:
    """A generated record in the Python form fastavro writes with :data:`CUSTOMER_AVRO_SCHEMA`."""
    from datetime import datetime, timezone
    out = dict(rec)
    out["birth_date"] = date.fromisoformat(rec["birth_date"])
    out["created_at"] = datetime.strptime(rec["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return out


# ---------------------------------------------------------------------------
# The same records as Protobuf (Confluent wire format through a schema registry)
# ---------------------------------------------------------------------------

CUSTOMER_PROTO = """syntax = "proto3";
package dpp.example;

import "google/protobuf/timestamp.proto";

// A generated customer record (proxy.generator), Protobuf form.
message Customer {
  string record_id = 1;
  string customer_id = 2;
  string locale = 3;
  string name = 4;
  string id_number = 5;
  string mobile = 6;
  optional string email = 7;
  Address address = 8;
  string birth_date = 9;
  string bank_card = 10;
  Consent consent = 11;
  repeated Order orders = 12;
  optional string note = 13;
  Segment segment = 14;
  google.protobuf.Timestamp created_at = 15;

  message Address {
    string street = 1;
    string city = 2;
    string postcode = 3;
    string country = 4;
  }
  message Consent {
    bool marketing = 1;
    bool analytics = 2;
    string updated_at = 3;
  }
  message Order {
    string order_id = 1;
    double amount = 2;
    string currency = 3;
    string card_number = 4;
    string placed_at = 5;
  }
  enum Segment {
    SEGMENT_UNSPECIFIED = 0;
    bronze = 1;
    silver = 2;
    gold = 3;
  }
}
"""
"""``.proto`` schema of :func:`generate_records`' records (message ``dpp.example.Customer``, the
first of the file: message indexes ``[0]``): ``created_at`` a ``google.protobuf.Timestamp``,
``segment`` an enum, ``email`` and ``note`` ``optional`` (absent when the record has ``null``)."""


def protobuf_doc(rec: dict[str, Any]) -> dict[str, Any]:
    """A generated record in the proto3 JSON mapping of :data:`CUSTOMER_PROTO` (``null`` members
    left out), for ``json_format.ParseDict``."""
    return {k: v for k, v in rec.items() if v is not None}


def customer_message_class() -> Any:
    """The ``dpp.example.Customer`` message class of :data:`CUSTOMER_PROTO` (compiled with protoc)."""
    from google.protobuf import message_factory

    from .formats.protobuf import build_pool, compile_files
    pool = build_pool(compile_files({"customer.proto": CUSTOMER_PROTO}, "customer.proto"))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("dpp.example.Customer"))
