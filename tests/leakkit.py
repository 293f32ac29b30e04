"""The leak audit's corpus and search (tests/integration/test_leak_audit.py; the search itself is
tested in tests/unit/test_leakkit.py, so the audit cannot pass by finding nothing).

* :func:`corpus`: source records holding every kind of personal value the shipped example policies
  protect (``policies/examples``): generated customer records (``proxy.generator``), notes carrying the
  detectors' test identifiers (resident ID, USCC, passport, bank cards, IBAN, phones, e-mail, IP
  addresses), records blocked by consent, and records that must be dead-lettered: every malformed
  payload of ``proxy.generator.malformed_cases`` (invalid JSON around personal values, not an object,
  invalid UTF-8, UTF-16, ...) and objects of the wrong shape or type (a name that is an object, orders
  that are not a list, duplicate keys, lone surrogates). Each :class:`Case` lists its personal values
  as :class:`Secret` (kind, value), and a key and headers for routes with key and header rules
  (the mobile number as key, the e-mail and phone numbers in headers, and keys and headers those rules
  cannot read).
* :func:`variants`: a value and its normalised forms (digits only, E.164 and national number of a phone,
  lower case, an IBAN or card without spaces).
* :func:`search`: every form of every variant (UTF-8, JSON ``\\u`` escapes, UTF-16, hex, base64 at
  each alignment, percent-encoding) in every place, each place also read decoded (JSON strings
  unescaped, base64 and hex runs decoded, digit runs with separators collapsed, lower case, NFKC).
  A digits-only variant shorter than :data:`WHOLE_RUN_DIGITS` (postcodes, dates) and any variant
  shorter than :data:`WHOLE_TOKEN_CHARS` characters match only as a whole token (not inside a longer
  run of ASCII letters and digits) or, digits, as a whole run of digits (separators collapsed).
  Hits name the place, the kind, the form and the case, never the value.
"""
from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import orjson
import phonenumbers

from proxy.generator import generate_records, malformed_cases

#: Digit-only variants with fewer digits (postcodes, dates as digits) match only as a whole digit run.
WHOLE_RUN_DIGITS = 10
#: Variants shorter than this (characters) match only between non-alphanumeric ASCII neighbours.
WHOLE_TOKEN_CHARS = 8
#: Base64 runs are decoded from this length on.
_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{12,}={0,2}")
_HEX_RUN = re.compile(rb"(?:[0-9a-fA-F]{2}){8,}")
_DIGIT_RUN = re.compile(r"\+?\d[\d \-.()/]{3,}\d")


@dataclass(frozen=True)
class Secret:
    """A personal value (or key material, or a password) that must not be found; ``case`` names
    where it came from, for messages (never the value)."""

    kind: str
    value: str | bytes
    case: str

    def __repr__(self) -> str:   # keeps values out of pytest's assertion messages
        return f"Secret({self.kind!r}, case={self.case!r})"


@dataclass(frozen=True)
class Hit:
    """Where a secret was found: place, kind, the form that matched, the case. No value."""

    place: str
    kind: str
    form: str
    case: str
    index: int      # the secret's position in the list searched


@dataclass
class Case:
    """One source record: ``value`` (bytes or None), its personal values, and for routes with key
    and header rules a ``key`` and ``headers``."""

    name: str
    value: bytes | None
    secrets: list[Secret]
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    expect: str = ""          # "dead-letter", "blocked" or "" (route-dependent / the sink)


# --------------------------------------------------------------------------------------------
# Variants and forms
# --------------------------------------------------------------------------------------------

def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def variants(kind: str, value: str | bytes) -> set[str | bytes]:
    """``value`` and the normalised forms a leak could take."""
    if isinstance(value, bytes):
        return {value}
    out: set[str | bytes] = {value, value.lower(), unicodedata.normalize("NFKC", value)}
    if kind == "key" and re.fullmatch(r"(?:[0-9a-fA-F]{2}){16,}", value):
        out |= {value.upper(), bytes.fromhex(value)}
    digits = _digits(value)
    if len(digits) >= 5 and digits != value and (len(digits) >= 0.6 * len(value) or kind == "birth_date"):
        out.add(digits)
    compact = re.sub(r"[\s\-.()/]", "", value)
    if compact != value and len(compact) >= 8:
        out.add(compact)
    if 7 <= len(digits) <= 15 and len(value) <= 24:      # anything that may be a phone number
        for region in ("CN", "US"):
            try:
                num = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_possible_number(num):
                out.add(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))
                out.add(str(num.national_number))
    return {v for v in out if v}


def _b64_cores(data: bytes) -> list[tuple[str, bytes]]:
    """The base64 characters that only ``data`` determines, at each of the three alignments it can
    have inside a longer encoded run (standard and URL-safe alphabets): the whole 4-character groups
    of ``data``'s bytes, without a first group shared with bytes before it or a last one shared
    with bytes after it."""
    out = []
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + data)
        core = enc[4 if pad else 0:((pad + len(data)) // 3) * 4]
        if len(core) >= 8:
            out.append((f"base64@{pad}", core))
            url = core.replace(b"+", b"-").replace(b"/", b"_")
            if url != core:
                out.append((f"base64url@{pad}", url))
    return out


def forms(variant: str | bytes) -> list[tuple[str, bytes]]:
    """``(form name, bytes)`` under which ``variant`` is looked for."""
    if isinstance(variant, bytes):
        raw = variant
        out = [("bytes", raw)]
    else:
        raw = variant.encode("utf-8", "surrogatepass")
        out = [("utf-8", raw)]
        esc = json.dumps(variant, ensure_ascii=True)[1:-1].encode()
        if esc != raw:
            out.append(("json-escaped", esc))
            out.append(("json-escaped-upper", re.sub(rb"\\u([0-9a-f]{4})", lambda m: b"\\u" + m.group(1).upper(), esc)))
        pct = urllib.parse.quote(variant, safe="").encode()
        if pct != raw:
            out.append(("percent", pct))
        u16 = variant.encode("utf-16-le", "surrogatepass")
        if _short(variant):
            return out + ([("utf-16-le", u16)] if len(u16) >= 4 else [])
        out.append(("utf-16-le", u16))
    if len(raw) >= 6:
        out.append(("hex", binascii.hexlify(raw)))
        out += _b64_cores(raw)
    return out


def _alnum(b: bytes) -> bool:
    return b.isascii() and b.isalnum()


def _short(variant: str) -> bool:
    return (variant.isdigit() and len(variant) < WHOLE_RUN_DIGITS) or len(variant) < WHOLE_TOKEN_CHARS


# --------------------------------------------------------------------------------------------
# Places, read decoded too
# --------------------------------------------------------------------------------------------

def _json_strings(obj, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.append(k)
            _json_strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _json_strings(v, out)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.append(repr(obj))


def _parse_json(blob: bytes):
    try:
        return [orjson.loads(blob)]
    except orjson.JSONDecodeError:
        pass
    docs = []
    for line in blob.splitlines():
        try:
            docs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pass
    return docs


def _b64decode(run: bytes) -> bytes | None:
    run = run.rstrip(b"=")
    for alt in (None, b"-_"):
        try:
            return base64.b64decode(run + b"=" * (-len(run) % 4), altchars=alt, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def expand(blob: bytes) -> bytes:
    """``blob`` and its decoded readings, joined by NUL bytes (a match never spans two readings)."""
    parts = [blob]
    text = blob.decode("utf-8", "replace")
    strings: list[str] = []
    for doc in _parse_json(blob):
        _json_strings(doc, strings)
    if strings:
        parts.append("\0".join(strings).encode("utf-8", "surrogatepass"))
    views = [text, *strings]
    runs = [_digits(m.group(0)) for v in views for m in _DIGIT_RUN.finditer(v)]
    if runs:
        parts.append(("\0" + "\0".join(runs) + "\0").encode())
    for m in _B64_RUN.finditer(blob):
        dec = _b64decode(m.group(0))
        if dec:
            parts.append(dec)
    for m in _HEX_RUN.finditer(blob):
        parts.append(binascii.unhexlify(m.group(0)))
    low = text.lower()
    if low != text:
        parts.append(low.encode())
    nfkc = unicodedata.normalize("NFKC", text)
    if nfkc != text:
        parts.append(nfkc.encode())
    return b"\0".join(parts)


def search(secrets: Iterable[Secret], places: Mapping[str, Iterable[bytes | None]]) -> list[Hit]:
    """Every place (``name -> blobs``) searched for every form of every variant of every secret."""
    haystacks = {name: b"\0\0".join(expand(b) for b in blobs if b) for name, blobs in places.items()}
    hits: list[Hit] = []
    for i, s in enumerate(secrets):
        found: set[str] = set()
        for v in variants(s.kind, s.value):
            short = isinstance(v, str) and _short(v)
            for form, needle in forms(v):
                whole = short and form != "utf-16-le"
                if whole:   # an ASCII letter or digit at an end must not continue a longer token
                    pat = re.compile((rb"(?<![0-9A-Za-z])" if _alnum(needle[:1]) else b"") + re.escape(needle)
                                     + (rb"(?![0-9A-Za-z])" if _alnum(needle[-1:]) else b""))
                for place, hay in haystacks.items():
                    if place in found:
                        continue
                    if (pat.search(hay) if whole else needle in hay):
                        hits.append(Hit(place, s.kind, form, s.case, i))
                        found.add(place)
    return hits


def count_forms(secrets: Iterable[Secret]) -> int:
    """How many (variant, form) needles :func:`search` looks for."""
    return sum(len(forms(v)) for s in secrets for v in variants(s.kind, s.value))


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------

#: Identifiers of the detectors' tests (tests/unit/test_detectors_*.py, tests/data/identifier_validators.json),
#: each in a context in which its detector finds it; the support route's detect rule replaces them.
NOTE_PII = [
    ("cn_resident_id", "客户身份证号11010519491231002X，已核实。"),
    ("cn_resident_id", "ID 440524188001010014 on file."),
    ("cn_uscc", "统一社会信用代码91350100M000100Y43。"),
    ("bank_card", "卡号6222021234567890128。"),
    ("bank_card", "card: 6222 0212 3456 7890 128."),
    ("bank_card", "card: 4111-1111-1111-1111."),
    ("cn_passport", "护照号码：E12345678。"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00 please"),
    ("iban", "账户GB82WEST12345698765432。"),
    ("cn_mobile", "同事手机 13900001111"),
    ("cn_mobile", "电话：+86 139 0000 1111。"),
    ("phone", "call +44 20 7946 0958 tomorrow"),
    ("email", "发送至zhang.san@163.com。"),
    ("email", "mail a.b+c@x.co.uk."),
    ("ipv4", "服务器192.168.1.1上"),
    ("ipv6", "addr 2001:0db8:0000:0000:0000:ff00:0042:8329."),
]
_NOTE_VALUES = {
    "cn_resident_id": [r"11010519491231002X", r"440524188001010014"], "cn_uscc": ["91350100M000100Y43"],
    "bank_card": ["6222021234567890128", "6222 0212 3456 7890 128", "4111-1111-1111-1111"],
    "cn_passport": ["E12345678"], "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
    "cn_mobile": ["13900001111", "+86 139 0000 1111"], "phone": ["+44 20 7946 0958"],
    "email": ["zhang.san@163.com", "a.b+c@x.co.uk"], "ipv4": ["192.168.1.1"],
    "ipv6": ["2001:0db8:0000:0000:0000:ff00:0042:8329"],
}


def _in_note(text: str) -> list[str]:
    return [v for vals in _NOTE_VALUES.values() for v in vals if v in text]


def record_secrets(rec: dict, case: str) -> list[Secret]:
    """The personal values of a generated-shape record (those the example policies rule)."""
    out = [Secret(k, rec[k], case) for k in ("customer_id", "name", "id_number", "mobile", "email", "bank_card",
                                             "birth_date") if isinstance(rec.get(k), str)]
    addr = rec.get("address")
    if isinstance(addr, dict):
        out += [Secret(k, addr[k], case) for k in ("street", "postcode") if isinstance(addr.get(k), str)]
    out += [Secret("card_number", o["card_number"], case) for o in rec.get("orders") or []
            if isinstance(o, dict) and isinstance(o.get("card_number"), str)]
    note = rec.get("note")
    if isinstance(note, str):
        out.append(Secret("note", note, case))
        out += [Secret("note_pii", rec[k], case) for k in ("mobile", "email")
                if isinstance(rec.get(k), str) and rec[k] in note]
        out += [Secret("note_pii", v, case) for v in _in_note(note)]
    return out


def _keyed(case: Case, rec: dict | None) -> Case:
    """Key and headers for routes with key/header rules: the mobile number as key, the e-mail and
    phone numbers in headers (``x-user-email``, ``x-home-phone``, ``x-work-phone``)."""
    if rec is not None and isinstance(rec.get("mobile"), str) and isinstance(rec.get("email"), str):
        case.key = rec["mobile"].encode()
        case.headers = [("trace-id", case.name.encode()), ("x-user-email", rec["email"].encode()),
                        ("x-home-phone", rec["mobile"].encode()), ("x-work-phone", _digits(rec["mobile"]).encode())]
        have = {(s.kind, s.value) for s in case.secrets}
        case.secrets += [Secret("key-header:" + k, rec[k], case.name) for k in ("mobile", "email")
                         if (k, rec[k]) not in have]
    else:
        case.headers = [("trace-id", case.name.encode())]
    return case


def corpus(n_generated: int = 48, seed: int = 11) -> list[Case]:
    """The audit's source records (deterministic). See the module doc."""
    pool = list(generate_records(400, seed=seed))
    chosen = pool[:n_generated] + [r for r in pool[n_generated:] if r["consent"]["analytics"] is False][:4]
    cases: list[Case] = []
    for i, rec in enumerate(chosen):
        name = f"generated-{i:03d}"
        blocked = rec["consent"]["analytics"] is False
        cases.append(_keyed(Case(name, orjson.dumps(rec), record_secrets(rec, name),
                                 expect="blocked" if blocked else ""), rec))
    # detector identifiers in free text (two per note)
    donors = pool[100:100 + len(NOTE_PII) // 2]
    for j, rec in enumerate(donors):
        rec = copy.deepcopy(rec)
        rec["consent"]["analytics"] = True
        rec["note"] = NOTE_PII[2 * j][1] + " " + NOTE_PII[2 * j + 1][1]
        name = f"note-identifiers-{j:02d}"
        cases.append(_keyed(Case(name, orjson.dumps(rec), record_secrets(rec, name)), rec))
    # malformed payloads (invalid JSON around personal values, not an object, bad encodings)
    for j, mc in enumerate(malformed_cases(20, seed=seed)):
        name = f"malformed-{mc.kind}"
        rec = pool[j]
        cases.append(_keyed(Case(name, mc.payload, [Secret("malformed", p, name) for p in mc.personal if p],
                                 expect="dead-letter"), rec))
    # over a route limit (limits.max_depth, default 128): the personal values sit deep inside
    rec = copy.deepcopy(pool[230])
    deep: object = {"contact": rec["email"], "phone": rec["mobile"]}
    for _ in range(140):
        deep = [deep]
    rec["history"] = deep
    cases.append(_keyed(Case("limit-depth", orjson.dumps(rec), record_secrets(rec, "limit-depth"),
                             expect="dead-letter"), rec))
    cases += _wrong_shapes(pool[200:220])
    cases += _bad_keys_and_headers(pool[240:246])
    return cases


def _wrong_shapes(recs: list[dict]) -> list[Case]:
    """Objects whose personal fields have the wrong type or shape, and hostile JSON around them."""
    out = []
    src: dict = {}

    def add(name: str, rec: dict, payload: bytes | None = None, extra: list[tuple[str, str]] = ()):
        """``rec`` (its string-valued personal fields and ``extra``) or, given, ``payload`` (``extra`` only)."""
        secrets = [Secret(k, v, name) for k, v in extra]
        if payload is None:
            payload, secrets = orjson.dumps(rec), record_secrets(rec, name) + secrets
        out.append(_keyed(Case(name, payload, secrets), src))

    src = recs[0]
    r = copy.deepcopy(src)
    first, _, last = r["name"].partition(" ")
    r["name"] = {"first": first or r["name"], "last": last or r["name"], "full": r["name"]}
    add("wrong-type-name-object", r, extra=[("name", recs[0]["name"]), ("id_number", r["id_number"])])
    src = recs[1]
    r = copy.deepcopy(src)
    r["mobile"] = [r["mobile"], _digits(r["mobile"])]
    add("wrong-type-mobile-list", r, extra=[("mobile", recs[1]["mobile"]), ("email", r["email"])])
    src = recs[2]
    r = copy.deepcopy(src)
    r["orders"] = {"card_number": "6259657201851963", "order_id": "O1"}
    add("wrong-shape-orders-object", r, extra=[("card_number", "6259657201851963"), ("name", r["name"])])
    src = recs[3]
    r = copy.deepcopy(src)
    r["orders"] = [o["card_number"] for o in recs[3]["orders"]] or ["5173247757499394"]
    add("wrong-shape-orders-strings", r, extra=[("card_number", c) for c in r["orders"]])
    src = recs[4]
    r = copy.deepcopy(src)
    r["address"] = f'{r["address"]["street"]}, {r["address"]["postcode"]}'
    add("wrong-shape-address-string", r, extra=[("street", recs[4]["address"]["street"]), ("mobile", r["mobile"])])
    src = recs[5]
    r = copy.deepcopy(src)
    r["email"] = {"work": r["email"]}
    add("wrong-type-email-object", r, extra=[("email", recs[5]["email"]), ("bank_card", r["bank_card"])])
    src = recs[6]
    r = copy.deepcopy(src)
    r["note"] = [f"call {r['mobile']}", {"mail": r["email"]}]
    add("wrong-type-note-list", r, extra=[("mobile", r["mobile"]), ("email", r["email"])])
    src = recs[7]
    r = copy.deepcopy(src)
    r["id_number"] = {"value": r["id_number"]}
    add("wrong-type-id-object", r, extra=[("id_number", recs[7]["id_number"]), ("name", r["name"])])
    # duplicate keys: two names and two e-mail addresses in one object
    src = a = recs[8]
    b = recs[9]
    dup = (b'{"record_id": "dup", "name": ' + orjson.dumps(a["name"]) + b', "name": ' + orjson.dumps(b["name"])
           + b', "email": ' + orjson.dumps(a["email"]) + b', "email": ' + orjson.dumps(b["email"])
           + b', "consent": {"analytics": true}}')
    add("duplicate-keys", a, dup, extra=[("name", a["name"]), ("name", b["name"]), ("email", a["email"]),
                                         ("email", b["email"])])
    # a lone surrogate escape next to personal values
    src = c = recs[10]
    lone = (b'{"name": "' + c["name"].encode() + b'\\ud800", "email": ' + orjson.dumps(c["email"])
            + b', "mobile": ' + orjson.dumps(c["mobile"]) + b', "consent": {"analytics": true}}')
    add("lone-surrogate", c, lone, extra=[("name", c["name"]), ("email", c["email"]), ("mobile", c["mobile"])])
    # a UTF-8 BOM before a valid record; a number literal beyond 64 bits as the id
    src = d = recs[11]
    add("bom-prefixed", d, b"\xef\xbb\xbf" + orjson.dumps(d), extra=[("name", d["name"]), ("email", d["email"])])
    src = recs[12]
    e = copy.deepcopy(src)
    big = (b'{"id_number": ' + _digits(e["id_number"]).encode() + b'123456789, "name": ' + orjson.dumps(e["name"])
           + b', "bank_card": ' + _digits(e["bank_card"]).encode() + b', "consent": {"analytics": true}}')
    add("number-ids", e, big, extra=[("id_number", _digits(e["id_number"]) + "123456789"), ("name", e["name"]),
                                     ("bank_card", _digits(e["bank_card"]))])
    # a deep record under the depth limit, personal values at the bottom of a ruled path's neighbour
    src = f = recs[13]
    deep = {"orders": [{"card_number": o["card_number"], "meta": [[[[{"k": 1}]]]]} for o in f["orders"]]
            or [{"card_number": "6259083772121456", "meta": [[[[{"k": 1}]]]]}],
            "name": f["name"], "mobile": f["mobile"], "consent": {"analytics": True}}
    add("deep-orders", f, orjson.dumps(deep), extra=[("name", f["name"]), ("mobile", f["mobile"])]
        + [("card_number", o["card_number"]) for o in deep["orders"]])
    return out


def _bad_keys_and_headers(recs: list[dict]) -> list[Case]:
    """Valid records whose key or headers the key/header rules cannot read (not a phone number,
    invalid UTF-8, an invalid e-mail), with personal values in them."""
    out = []
    for j, (what, rec) in enumerate(zip(("key-not-a-phone", "key-invalid-utf8", "header-email-invalid",
                                          "header-invalid-utf8", "key-null", "header-phone-only"), recs)):
        name = f"{what}"
        case = _keyed(Case(name, orjson.dumps(rec), record_secrets(rec, name)), rec)
        if what == "key-not-a-phone":
            case.key = f'{rec["name"]} <{rec["email"]}>'.encode()
        elif what == "key-invalid-utf8":
            case.key = rec["mobile"].encode() + b"\xff\xfe"
        elif what == "header-email-invalid":
            case.headers[1] = ("x-user-email", f'{rec["name"]} at {_digits(rec["mobile"])}'.encode())
        elif what == "header-invalid-utf8":
            case.headers[1] = ("x-user-email", rec["email"].encode() + b"\xc3\x28")
        elif what == "key-null":
            case.key = None
        elif what == "header-phone-only":
            case.headers = [("x-mobile-phone", rec["mobile"].encode()), ("x-office-phone", rec["mobile"].encode())]
        out.append(case)
    return out


def all_secrets(cases: Iterable[Case]) -> list[Secret]:
    return [s for c in cases for s in c.secrets]
