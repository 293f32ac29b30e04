#!/usr/bin/env python
"""Labeled corpus for the free-text detectors, and a precision/recall report per detector.

Not a test. Run from the repository root::

    python loadtests/detect_corpus.py [--samples 5000] [--seed 7] [--json]

Each sample is a short zh_CN or en_US text (Faker sentences and names) holding 0-3 labeled
personal values and 0-3 **hard negatives**: things that look like personal data and are not --
18-digit order numbers shaped like a resident ID with a wrong check character, USCCs / IBANs /
HKIDs with a wrong check character, Luhn-failing 16-digit card-like numbers, epoch and ISO
timestamps, version strings (``v1.2.3.4``, ``version 2.0.0.1``), numbers inside URL paths,
MAC addresses, clock times, unallocated mobile prefixes, dates and amounts. Values touch CJK
text, punctuation and emoji on either side (``手机13900001111。``).

A detection counts as a true positive when its span and kind equal a label's exactly; every
other detection is a false positive of its kind; every label not found exactly is a false
negative of its kind. "checksum" kinds are validated by a check character; the target for them
is precision and recall of at least 0.99 (the exit status is 1 if it is missed).

``generate_corpus`` and ``evaluate`` are imported by ``loadtests/bench_detect.py``.
"""
from __future__ import annotations

import argparse
import json
import random
import string
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Iterable

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # keep this folder off sys.path when run as a script
sys.path.insert(0, str(_HERE.parent))  # run from a checkout

import phonenumbers  # noqa: E402

from proxy.detectors import build_detectors, find_all  # noqa: E402
from proxy.detectors.checksums import (  # noqa: E402
    CN_PROVINCE_CODES, USCC_CHARSET, cn_resident_id_check_char, luhn_check_digit, luhn_valid, uscc_check_char,
)
from proxy.detectors.cn_licence_plate import PROVINCES  # noqa: E402
from proxy.detectors.cn_mobile import MOBILE_PREFIXES  # noqa: E402
from proxy.detectors.hk_id import hkid_check_char  # noqa: E402
from proxy.detectors.registry import DETECTOR_CLASSES  # noqa: E402

REGIONS = ("US", "GB")
"""Phone regions used for the corpus (national-format numbers of these regions are labeled)."""


@dataclass
class Sample:
    """One text and its labels ``(start, end, kind)`` (``str`` indexes, end exclusive)."""

    text: str
    labels: list[tuple[int, int, str]] = field(default_factory=list)
    locale: str = "zh_CN"


# --------------------------------------------------------------------------- positives
def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _area_codes() -> list[str]:
    from faker.providers.ssn.zh_CN import Provider
    return sorted(c for c in Provider.area_codes if len(c) == 6 and c[:2] in CN_PROVINCE_CODES and c[4:] != "00")


_AREAS: list[str] = []


def _area(rng) -> str:
    if not _AREAS:
        _AREAS.extend(_area_codes())
    return rng.choice(_AREAS)


def _birth(rng, lo: int = 1930, hi: int = 2012) -> date:
    start = date(lo, 1, 1).toordinal()
    return date.fromordinal(rng.randint(start, date(hi, 12, 31).toordinal()))


def gen_resident_id(rng) -> str:
    if rng.random() < 0.1:  # legacy 15-digit form (births in the 1900s)
        b = _birth(rng, 1930, 1999)
        return _area(rng) + b.strftime("%y%m%d") + _digits(rng, 3)
    first17 = _area(rng) + _birth(rng).strftime("%Y%m%d") + _digits(rng, 3)
    return first17 + cn_resident_id_check_char(first17)


def gen_mobile(rng) -> str:
    num = rng.choice(sorted(MOBILE_PREFIXES)) + _digits(rng, 8)
    style = rng.random()
    if style < 0.55:
        return num
    if style < 0.7:
        return f"{num[:3]}-{num[3:7]}-{num[7:]}"
    if style < 0.8:
        return f"{num[:3]} {num[3:7]} {num[7:]}"
    if style < 0.9:
        return f"+86 {num[:3]} {num[3:7]} {num[7:]}"
    return rng.choice(("+86", "0086", "+86-")) + num


_GB11714 = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_code(rng) -> str:
    body = "".join(rng.choice(USCC_CHARSET) for _ in range(8))
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, _GB11714))
    r = 11 - total % 11
    return body + ("X" if r == 10 else "0" if r == 11 else str(r))


def gen_uscc(rng) -> str:
    first17 = rng.choice("159Y") + rng.choice("123") + _area(rng) + _org_code(rng)
    return first17 + uscc_check_char(first17)


_CARD_IINS = ("622202", "622848", "621700", "622700", "625965", "628288", "621483", "623668")


def _card_digits(rng) -> str:
    r = rng.random()
    if r < 0.45:
        n = rng.choice((16, 19))
        iin = rng.choice(_CARD_IINS)
    elif r < 0.65:
        n, iin = 16, "4" + _digits(rng, 5)
    elif r < 0.85:
        n, iin = 16, str(rng.randint(51, 55)) + _digits(rng, 4)
    elif r < 0.93:
        n, iin = 15, rng.choice(("34", "37")) + _digits(rng, 4)
    else:
        n, iin = 16, "35" + str(rng.randint(28, 89)) + _digits(rng, 2)
    partial = iin + _digits(rng, n - len(iin) - 1)
    return partial + luhn_check_digit(partial)


def _group_card(d: str, sep: str) -> str:
    if len(d) == 15:
        return f"{d[:4]}{sep}{d[4:10]}{sep}{d[10:]}"
    return sep.join(d[i:i + 4] for i in range(0, len(d), 4))


def gen_bank_card(rng) -> str:
    d = _card_digits(rng)
    r = rng.random()
    if r < 0.6:
        return d
    return _group_card(d, " " if r < 0.8 else "-" if r < 0.93 else ".")


def gen_email(rng, fake) -> str:
    user = fake.user_name()
    if rng.random() < 0.3:
        user = user + rng.choice((".", "_", "+")) + _digits(rng, rng.randint(1, 4))
    domain = fake.free_email_domain() if rng.random() < 0.7 else fake.domain_name()
    return f"{user}@{domain}"


def gen_ipv4(rng) -> str:
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def gen_ipv6(rng) -> str:
    import ipaddress
    groups = [rng.randint(0, 0xFFFF) for _ in range(8)]
    if rng.random() < 0.5:
        k = rng.randint(2, 5)
        i = rng.randint(1, 8 - k)
        for j in range(i, i + k):
            groups[j] = 0
    addr = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
    s = addr.compressed if rng.random() < 0.7 else addr.exploded
    return s.upper() if rng.random() < 0.2 else s


_IBAN_FORMATS = {  # country: BBAN layout (n = digit, a = upper letter)
    "DE": "n" * 18, "GB": "aaaa" + "n" * 14, "FR": "n" * 23, "NL": "aaaa" + "n" * 10, "ES": "n" * 20,
    "IT": "a" + "n" * 22, "CH": "n" * 17, "BE": "n" * 12, "AT": "n" * 16, "PL": "n" * 24,
}


def gen_iban(rng) -> str:
    cc = rng.choice(sorted(_IBAN_FORMATS))
    bban = "".join(rng.choice(string.ascii_uppercase) if c == "a" else rng.choice(string.digits)
                   for c in _IBAN_FORMATS[cc])
    num = int("".join(str(int(ch, 36)) for ch in bban + cc + "00"))
    iban = f"{cc}{98 - num % 97:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban


def gen_passport(rng) -> str:
    r = rng.random()
    if r < 0.6:
        return "E" + _digits(rng, 8)
    if r < 0.85:
        return "E" + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + _digits(rng, 7)
    return "G" + _digits(rng, 8)


def gen_hk_id(rng) -> str:
    prefix = rng.choice(string.ascii_uppercase) if rng.random() < 0.9 else \
        rng.choice(string.ascii_uppercase) + rng.choice(string.ascii_uppercase)
    d = _digits(rng, 6)
    c = hkid_check_char(prefix, d)
    return f"{prefix}{d}({c})" if rng.random() < 0.8 else f"{prefix}{d}{c}"


def gen_macau_id(rng) -> str:
    return f"{rng.choice('157')}{_digits(rng, 6)}({rng.randint(0, 9)})"


def gen_permit(rng) -> str:
    r = rng.random()
    if r < 0.6:
        return rng.choice("HM") + _digits(rng, 8)
    if r < 0.8:
        return "C" + _digits(rng, 8)
    return "C" + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + _digits(rng, 7)


_PLATE_L = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def gen_plate(rng) -> str:
    p = rng.choice(PROVINCES) + rng.choice(_PLATE_L)
    sep = rng.choice(("", "", "", "·"))
    if rng.random() < 0.25:
        serial = rng.choice("DF") + rng.choice(_PLATE_L + string.digits) + _digits(rng, 4)
    else:
        chars = [rng.choice(string.digits) for _ in range(5)]
        for _ in range(rng.randint(0, 2)):
            chars[rng.randrange(5)] = rng.choice(_PLATE_L)
        if sum(c.isdigit() for c in chars) < 2:
            chars[0] = chars[1] = "8"
        serial = "".join(chars)
    return p + sep + serial


_PHONE_REGIONS = ("US", "GB", "DE", "FR", "JP", "AU", "SG", "IN", "BR", "CA")


def gen_phone(rng) -> str:
    for _ in range(50):
        region = rng.choice(_PHONE_REGIONS)
        kind = rng.choice((phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE))
        ex = phonenumbers.example_number_for_type(region, kind)
        if ex is None:
            continue
        nsn = str(ex.national_number)
        cand = nsn[:-4] + _digits(rng, 4)
        num = phonenumbers.parse(f"+{ex.country_code}{cand}")
        if not phonenumbers.is_valid_number(num):
            continue
        if region in REGIONS and rng.random() < 0.4:
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return "+44 20 7946 0958"


GENERATORS: dict[str, Callable] = {
    "cn_resident_id": gen_resident_id, "cn_mobile": gen_mobile, "cn_uscc": gen_uscc, "bank_card": gen_bank_card,
    "email": gen_email, "ipv4": gen_ipv4, "ipv6": gen_ipv6, "iban": gen_iban, "cn_passport": gen_passport,
    "hk_id": gen_hk_id, "macau_id": gen_macau_id, "hk_macau_permit": gen_permit, "cn_licence_plate": gen_plate,
    "phone": gen_phone,
}
assert set(GENERATORS) == set(DETECTOR_CLASSES)

_CONTEXT_ZH = {
    "cn_resident_id": ("身份证号", "证件号码", "身份证"), "cn_mobile": ("手机", "联系电话", "同事手机"),
    "cn_uscc": ("统一社会信用代码", "信用代码"), "bank_card": ("卡号", "银行卡", "尾号不详的卡"),
    "email": ("邮箱", "电子邮件", "发送至"), "ipv4": ("登录IP", "来源地址"), "ipv6": ("IPv6地址", "来源"),
    "iban": ("国际账号", "IBAN"), "cn_passport": ("护照号", "护照"), "hk_id": ("香港身份证", "身份证号"),
    "macau_id": ("澳门身份证", "证件"), "hk_macau_permit": ("通行证", "回乡证"), "cn_licence_plate": ("车牌", "车牌号"),
    "phone": ("海外电话", "电话"),
}
_CONTEXT_EN = {
    "cn_resident_id": ("ID no.", "resident ID"), "cn_mobile": ("mobile", "cell"), "cn_uscc": ("USCC", "credit code"),
    "bank_card": ("card", "card number"), "email": ("email", "mail"), "ipv4": ("from IP", "address"),
    "ipv6": ("IPv6", "from"), "iban": ("IBAN", "account"), "cn_passport": ("passport", "passport no."),
    "hk_id": ("HKID", "ID card"), "macau_id": ("Macau ID", "BIR"), "hk_macau_permit": ("permit", "travel permit"),
    "cn_licence_plate": ("plate", "vehicle"), "phone": ("phone", "call"),
}
_LEFT = ("", "", " ", "：", ": ", "（", "(", "😀", "，")
_RIGHT = ("", "", " ", "。", "，", "）", ")", "😀", ".", "；")


# --------------------------------------------------------------------------- hard negatives
def _bad_check_id(rng) -> str:
    first17 = _area(rng) + _birth(rng).strftime("%Y%m%d") + _digits(rng, 3)
    good = cn_resident_id_check_char(first17)
    return first17 + rng.choice([c for c in "0123456789X" if c != good])


def _luhn_fail_card(rng) -> str:
    while True:
        d = _card_digits(rng)
        if len(d) != 16:
            continue
        bad = d[:-1] + str((int(d[-1]) + rng.randint(1, 9)) % 10)
        if not luhn_valid(bad):
            return bad if rng.random() < 0.6 else _group_card(bad, rng.choice(" -"))


def _bad_uscc(rng) -> str:
    s = gen_uscc(rng)
    return s[:-1] + rng.choice([c for c in USCC_CHARSET if c != s[-1]])


def _bad_iban(rng) -> str:
    s = gen_iban(rng).replace(" ", "")
    bad = (int(s[2:4]) - 2 + rng.randint(1, 95)) % 97 + 2  # another value in 02..98
    return s[:2] + f"{bad:02d}" + s[4:]


def _bad_hkid(rng) -> str:
    p, d = rng.choice(string.ascii_uppercase), _digits(rng, 6)
    good = hkid_check_char(p, d)
    return f"{p}{d}({rng.choice([c for c in '0123456789A' if c != good])})"


def _url(rng) -> str:
    host = rng.choice(("https://item.jd.com/", "https://shop.example.com/p/", "http://t.example.cn/s/",
                       "https://www.example.org/orders/", "https://detail.tmall.com/item/"))
    r = rng.random()
    if r < 0.3:
        num = _digits(rng, 12)
    elif r < 0.55:
        num = rng.choice(sorted(MOBILE_PREFIXES)) + _digits(rng, 8)
    elif r < 0.8:
        num = _card_digits(rng)
    else:
        first17 = _area(rng) + _birth(rng).strftime("%Y%m%d") + _digits(rng, 3)
        num = first17 + cn_resident_id_check_char(first17)
    tail = rng.choice((".html", "", "/detail", "?from=search", "#reviews"))
    return host + num + tail


def _timestamp(rng) -> str:
    t = rng.randint(1_300_000_000, 1_800_000_000)
    r = rng.random()
    if r < 0.3:
        return str(t)
    if r < 0.6:
        return str(t * 1000 + rng.randint(0, 999))
    if r < 0.7:
        return str(t * 1_000_000_000 + rng.randint(0, 999_999_999))
    d = date(2015, 1, 1) + timedelta(days=rng.randint(0, 4000))
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    if r < 0.85:
        return f"{d.isoformat()}T{hh:02d}:{mm:02d}:{ss:02d}Z"
    return f"{d.strftime('%Y%m%d')}{hh:02d}{mm:02d}{ss:02d}"


def _version(rng) -> str:
    parts = [str(rng.randint(0, 20)) for _ in range(rng.choice((3, 4)))]
    v = ".".join(parts)
    return rng.choice(("v", "version ", "Version: ", "版本", "ver ", "build ")) + v


def _order_no(rng) -> str:
    return rng.choice(("订单号", "order #", "单号", "流水号")) + rng.choice((_digits(rng, 18), _digits(rng, 20), "O" + _digits(rng, 12)))


def _misc(rng) -> str:
    r = rng.random()
    if r < 0.15:
        return ":".join(f"{rng.randint(0, 255):02X}" for _ in range(6))  # MAC address
    if r < 0.3:
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    if r < 0.45:
        while True:  # unallocated "mobile" prefix, and not a valid NANP/UK number either
            cand = rng.choice(("154", "120", "100", "110", "179", "174")) + _digits(rng, 8)
            if not any(phonenumbers.is_valid_number(phonenumbers.parse(cand, r)) for r in REGIONS):
                return cand
    if r < 0.6:
        return f"¥{rng.randint(1, 99)},{rng.randint(100, 999)}.{rng.randint(0, 99):02d}"
    if r < 0.75:
        return (date(1950, 1, 1) + timedelta(days=rng.randint(0, 27000))).strftime(rng.choice(("%Y-%m-%d", "%Y/%m/%d")))
    if r < 0.85:
        return rng.choice(("95588", "10086", "400-820-8820", "12315"))  # service numbers
    return _digits(rng, rng.choice((6, 8, 9, 12)))  # (10 random digits are often a valid US number)


NEGATIVES: dict[str, Callable] = {
    "id_shaped_order_no": _bad_check_id, "luhn_fail_card": _luhn_fail_card, "bad_uscc": _bad_uscc,
    "bad_iban": _bad_iban, "bad_hkid": _bad_hkid, "url_number": _url, "timestamp": _timestamp,
    "version": _version, "order_no": _order_no, "misc": _misc,
}


# --------------------------------------------------------------------------- corpus
def _fakers():
    from faker import Faker
    return {"zh_CN": Faker("zh_CN"), "en_US": Faker("en_US")}


def generate_corpus(n: int = 5000, seed: int = 7) -> list[Sample]:
    """``n`` deterministic samples for ``seed`` (same Faker version)."""
    rng = random.Random(f"dpp-detect-corpus:{seed}")
    fakers = _fakers()
    for f in fakers.values():
        f.seed_instance(seed)
    kinds = sorted(GENERATORS)
    negs = sorted(NEGATIVES)
    out = []
    for i in range(n):
        locale = "zh_CN" if i % 2 == 0 else "en_US"
        fake = fakers[locale]
        zh = locale == "zh_CN"
        parts: list[tuple[str, str | None]] = []
        items = [("pos", rng.choice(kinds)) for _ in range(rng.randint(0, 3))]
        items += [("neg", rng.choice(negs)) for _ in range(rng.randint(0, 3))]
        rng.shuffle(items)
        parts.append((fake.sentence(), None))
        for what, kind in items:
            if what == "pos":
                value = GENERATORS[kind](rng, fake) if kind == "email" else GENERATORS[kind](rng)
                ctx = rng.choice((_CONTEXT_ZH if zh else _CONTEXT_EN)[kind])
                left, right = rng.choice(_LEFT), rng.choice(_RIGHT)
                if not zh and left == "":
                    left = " "
                if kind == "iban" or kind == "hk_id" or kind == "cn_passport" or kind == "hk_macau_permit" \
                        or kind == "cn_uscc":
                    # these kinds start/end with ASCII letters: an English word must not touch them
                    left = left if left.strip() or zh else " "
                if not zh:  # English: a blank after the value, as in real text
                    right = right if right.endswith(" ") else right + " "
                parts.append((ctx + left, None))
                parts.append((value, kind))
                parts.append((right, None))
            else:
                parts.append((" " if not zh else rng.choice(("", " ", "，")), None))
                parts.append((NEGATIVES[kind](rng), None))
                parts.append((rng.choice(("", " ", "。", "，", ".")) if zh else rng.choice((" ", ". ", ", ")), None))
            parts.append((fake.sentence() if rng.random() < 0.5 else (fake.name() if rng.random() < 0.5 else ""), None))
        text = ""
        labels = []
        for s, kind in parts:
            if s and text and _glued(text[-1], s[0]):
                text += " "  # two ASCII words never touch: "IBAN DE89…", not "IBANDE89…"
            if kind is not None:
                labels.append((len(text), len(text) + len(s), kind))
            text += s
        out.append(Sample(text, labels, locale))
    return out


def _glued(a: str, b: str) -> bool:
    return a.isascii() and b.isascii() and (a.isalnum() or a == ".") and b.isalnum()


@dataclass
class Counts:
    """Per-kind confusion counts."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def evaluate(corpus: Iterable[Sample], find: Callable[[str], list[tuple[int, int, str]]], *,
             relaxed: bool = False, kinds: Iterable[str] | None = None) -> dict[str, Counts]:
    """Confusion counts per kind. ``find(text)`` returns ``(start, end, kind)`` tuples.

    Exact matching by default; ``relaxed`` counts a label as found when a detection of the same
    kind overlaps it (used for tools whose spans include neighbouring characters), and then a
    detection is a false positive only when it overlaps no label of its kind.
    """
    res: dict[str, Counts] = {k: Counts() for k in (kinds or GENERATORS)}
    for s in corpus:
        got = [g for g in find(s.text) if g[2] in res]
        labels = [lab for lab in s.labels if lab[2] in res]
        if not relaxed:
            gs, ls = set(got), set(labels)
            for g in gs:
                if g in ls:
                    res[g[2]].tp += 1
                else:
                    res[g[2]].fp += 1
            for lab in ls - gs:
                res[lab[2]].fn += 1
            continue
        for lab in labels:
            if any(g[2] == lab[2] and g[0] < lab[1] and lab[0] < g[1] for g in got):
                res[lab[2]].tp += 1
            else:
                res[lab[2]].fn += 1
        for g in got:
            if not any(g[2] == lab[2] and g[0] < lab[1] and lab[0] < g[1] for lab in labels):
                res[g[2]].fp += 1
    return res


def dpp_finder(regions=REGIONS):
    """``find(text)`` over every dpp detector (phone regions ``regions``)."""
    dets = build_detectors(regions=regions)

    def find(text: str):
        return [(f.start, f.end, f.detector) for f in find_all(text, dets)]
    return find


def report_table(res: dict[str, Counts], title: str = "") -> str:
    """Markdown table: kind, checksum, labels, TP, FP, FN, precision, recall."""
    lines = ([f"### {title}", ""] if title else []) + [
        "| detector | checksum | labels | TP | FP | FN | precision | recall |",
        "|---|---|---:|---:|---:|---:|---:|---:|"]
    for k in sorted(res):
        c = res[k]
        chk = "yes" if k in DETECTOR_CLASSES and DETECTOR_CLASSES[k].checksum else "no"
        lines.append(f"| {k} | {chk} | {c.tp + c.fn} | {c.tp} | {c.fp} | {c.fn} | {c.precision:.4f} | {c.recall:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--show-errors", type=int, default=0, help="print up to N misdetections (kinds and spans)")
    args = ap.parse_args(argv)
    corpus = generate_corpus(args.samples, args.seed)
    find = dpp_finder()
    res = evaluate(corpus, find)
    if args.show_errors:
        shown = 0
        for s in corpus:
            got, ls = set(find(s.text)), set(s.labels)
            if got != ls:
                print("TEXT:", s.text, "\n  missed:", [(s.text[a:b], k) for a, b, k in ls - got],
                      "\n  extra:", [(s.text[a:b], k) for a, b, k in got - ls])
                shown += 1
                if shown >= args.show_errors:
                    break
    ok = all(c.precision >= 0.99 and c.recall >= 0.99 for k, c in res.items() if DETECTOR_CLASSES[k].checksum)
    if args.json:
        print(json.dumps({k: {"tp": c.tp, "fp": c.fp, "fn": c.fn, "precision": c.precision, "recall": c.recall,
                              "checksum": DETECTOR_CLASSES[k].checksum} for k, c in sorted(res.items())}, indent=2))
    else:
        n_labels = sum(len(s.labels) for s in corpus)
        print(report_table(res, f"dpp detectors on {len(corpus)} samples ({n_labels} labels), seed {args.seed}"))
        print(f"\nchecksum-validated kinds at precision and recall >= 0.99: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
