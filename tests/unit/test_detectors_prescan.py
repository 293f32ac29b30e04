"""The detector engine's fast path must never change a result.

:class:`proxy.detectors.engine.Scanner` runs one pre-scan (``TOKEN``) and tries each pattern
detector only where its declared ``starts`` fit, validates with fast checksum code, and folds
non-ASCII digits to ASCII. These tests pin each shortcut to its reference: every regex match
begins where the pre-scan looks; ``find_all`` equals every detector's own ``find`` on the whole
text; the fast validators equal :mod:`proxy.detectors.checksums` and :mod:`ipaddress`; folding
is one character for one and covers every Unicode decimal digit.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import build_detector, build_detectors, find_all
from proxy.detectors.bank_card import luhn_ok
from proxy.detectors.base import LONG, TOKEN, VARIANTS, RegexDetector, Start, fold_variants
from proxy.detectors.checksums import (
    CN_PROVINCE_CODES, USCC_CHARSET, cn_resident_id_check_char, cn_resident_id_valid, iban_valid, luhn_check_digit,
    luhn_valid, uscc_check_char, uscc_valid,
)
from proxy.detectors.cn_resident_id import id18_valid
from proxy.detectors.cn_uscc import uscc_check_ok
from proxy.detectors.email import Email
from proxy.detectors.engine import Scanner
from proxy.detectors.iban import IBAN_LENGTHS, mod97_ok
from proxy.detectors.ipv6 import hextets_ok
from proxy.detectors.overlap import resolve_overlaps
from proxy.detectors.registry import DETECTOR_CLASSES
from proxy.detectors.urls import drop_url_path_findings

PATTERN = build_detectors([k for k in DETECTOR_CLASSES if k != "phone"])
TOKENED = [d for d in PATTERN if isinstance(d, RegexDetector) and d.starts]

PIECES = [
    "13900001111", "+86", "(+86)", "+(86)", "0086", "86", "139 0000 1111", "139-0000-1111", "+86 139 0000 1111",
    "+86139 0000 1111", "0086139-0000-1111", "6222 0212 3456 7890 128", "4111-1111-1111-1111", "4111.1111.1111.1111 22",
    "3782 822463 10005", "622202 1234567890128", "6222021234567890128", "11010519491231002X", "11010519491231002x",
    "110105491231002", "440524188001010014", "91350100M000100Y43", "E12345678", "EM0155441", "DE1234567", "G12345678",
    "A123456(3)", "AB987654(2)", "A1234563", "1234567(8)", "H12345678", "M1234567890", "C12345678", "CA1234567",
    "京A12345", "京A·12345", "粤BD12345", "10.1.2.3", "192.168.0.1", "2001:db8::1", "fe80::1", "::1", "a@b.cn",
    "x.y@mail.example.com", "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "DE89370400440532013000",
    "https://x.cn/p/13900001111?m=13900001112", "www.a.com/6222021234567890128", "v1.2.3.4", "2024-05-01 12:30:45",
]
ALPHABET = "0123456789" * 3 + "XxABCDEGHMPSYZ" + "  +-.()@:/·" + "京粤手机😀，（）" + "abef" + "１٣Ｘ𝟏"

texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(alphabet=ALPHABET, max_size=14)), max_size=7).map("".join)


def reference(text: str, dets) -> list:
    """Every detector's own find() over the whole text, URL paths dropped, overlaps resolved."""
    raw = [f for d in dets for f in d.find(text)]
    if "://" in text or "www." in text:
        raw = drop_url_path_findings(text, raw, frozenset(d.name for d in dets if d.report_in_url_path))
    return resolve_overlaps(raw)


def prescan_positions(det: RegexDetector, text: str) -> set[int]:
    """Where the engine tries ``det``: TOKEN runs fitting one of its starts, plus offsets."""
    out = set()
    for m in TOKEN.finditer(text):
        run = m.group()
        for st_ in det.starts:
            if run[0] not in st_.first or min(len(run), LONG) not in set(st_.lengths):
                continue
            if st_.follow is not None and (m.end() >= len(text) or text[m.end()] not in st_.follow):
                continue
            if st_.second is not None and run[1] not in st_.second:
                continue
            out.update(m.start() + off for off in st_.offsets)
    return out


# --------------------------------------------------------------------------- pre-scan
def assert_prescan_covers(det: RegexDetector, text: str) -> None:
    """Every match of ``det.pattern`` (as ``finditer`` finds them) begins where the engine looks,
    or is a whole pre-scan run that yields no finding (leaving it out changes nothing else).
    Stronger than comparing findings: a missed candidate that fails validation would still change
    where ``finditer`` resumes."""
    starts = prescan_positions(det, text)
    runs = {m.span() for m in TOKEN.finditer(text)}
    for m in det.pattern.finditer(text):
        assert m.start() in starts or (m.span() in runs and det.finding(m) is None), (det.name, m.group())


@settings(max_examples=400, deadline=None)
@given(texts)
def test_every_regex_match_begins_where_the_prescan_looks(text):
    for d in TOKENED:
        assert_prescan_covers(d, text)


@pytest.mark.parametrize("piece", PIECES)
def test_every_piece_matches_where_the_prescan_looks(piece):
    for text in (piece, f"号{piece}。", f"x {piece} y"):
        for d in TOKENED:
            assert_prescan_covers(d, text)


@pytest.mark.parametrize("length", range(13, 20))
@pytest.mark.parametrize("first", "0123456789")
def test_card_starts_cover_every_plausible_plain_number(first, length):
    # the card detector leaves plain runs out by first digit and length (iin_plausible's rules):
    # every Luhn-valid number of every prefix must still be found when the scheme accepts it
    from proxy.detectors.bank_card import iin_plausible
    card = build_detector("bank_card")
    for second in "0123456789":
        partial = (first + second + "00000000000000000")[:length - 1]
        number = partial + luhn_check_digit(partial)
        expected = [("bank_card", number)] if iin_plausible(number) else []  # zeros: never ID-shaped
        assert [(f.detector, f"x {number} y"[f.start:f.end]) for f in find_all(f"x {number} y", (card,))] == expected


@settings(max_examples=400, deadline=None)
@given(texts, st.sampled_from([PATTERN, PATTERN[:5], PATTERN[4:10], tuple(reversed(PATTERN))]))
def test_find_all_equals_every_detectors_own_find(text, dets):
    # variant digits (full-width, Arabic-Indic …) are searched as ASCII, in place
    assert find_all(text, dets) == reference(fold_variants(text), dets)


def test_corpus_pieces_are_found_through_the_prescan():
    # the pre-scan path must find real values, not merely agree on nothing
    got = {text[f.start:f.end]: f.detector for text in (f"见{p}。" for p in PIECES) for f in find_all(text, PATTERN)}
    for value, kind in [("13900001111", "cn_mobile"), ("+86 139 0000 1111", "cn_mobile"),
                        ("6222 0212 3456 7890 128", "bank_card"), ("11010519491231002X", "cn_resident_id"),
                        ("91350100M000100Y43", "cn_uscc"), ("A123456(3)", "hk_id"), ("1234567(8)", "macau_id"),
                        ("GB82 WEST 1234 5698 7654 32", "iban"), ("10.1.2.3", "ipv4"), ("E12345678", "cn_passport"),
                        ("H12345678", "hk_macau_permit")]:
        assert got.get(value) == kind, value


def test_start_lengths_outside_the_table_are_refused():
    class Bad(RegexDetector):
        name = "bad"
        placeholder = "BAD"
        pattern = re.compile(r"[0-9]+")
        starts = (Start("1", (LONG + 1,)),)

    with pytest.raises(ValueError, match="bad"):
        Scanner([Bad()])


def test_find_all_with_a_list_that_changes_between_calls():
    dets = [build_detector("email")]
    assert [f.detector for f in find_all("a@b.cn 13900001111", dets)] == ["email"]
    dets.append(build_detector("cn_mobile"))
    assert [f.detector for f in find_all("a@b.cn 13900001111", dets)] == ["email", "cn_mobile"]


# --------------------------------------------------------------------------- fast validators
@settings(max_examples=500)
@given(st.text(alphabet="0123456789", min_size=17, max_size=17), st.sampled_from(sorted(CN_PROVINCE_CODES) + ["99"]),
       st.integers(1790, 2100), st.integers(0, 13), st.integers(0, 32), st.sampled_from(["right", "X", "x", "0", "7"]))
def test_resident_id_fast_check_equals_the_reference(body, prov, year, month, day, check):
    first17 = prov + body[2:6] + f"{year:04d}{month:02d}{day:02d}" + body[14:]
    for s in (body + "5", first17 + (cn_resident_id_check_char(first17) if check == "right" else check)):
        assert id18_valid(s) == cn_resident_id_valid(s), s


@settings(max_examples=500)
@given(st.text(alphabet="0123456789", min_size=2, max_size=19), st.booleans())
def test_luhn_fast_check_equals_the_reference(digits, fix):
    s = digits[:-1] + luhn_check_digit(digits[:-1]) if fix else digits
    assert luhn_ok(s) == luhn_valid(s)


@settings(max_examples=500)
@given(st.text(alphabet=USCC_CHARSET + "IOSVZ", min_size=17, max_size=17), st.sampled_from(USCC_CHARSET + "Z"),
       st.booleans())
def test_uscc_fast_check_equals_the_reference(first17, last, fix):
    if fix and all(c in USCC_CHARSET for c in first17):
        last = uscc_check_char(first17)
    s = first17 + last
    assert uscc_check_ok(s) == uscc_valid(s)


@settings(max_examples=500)
@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.text(alphabet="0123456789ABCXYZ", min_size=30, max_size=30),
       st.integers(0, 99), st.booleans(), st.booleans())
def test_iban_fast_check_equals_the_reference(cc, bban, check, fix, grouped):
    bban = bban[:IBAN_LENGTHS[cc] - 4]
    if fix:
        check = 98 - int("".join(str(int(c, 36)) for c in bban + cc) + "00") % 97
    s = f"{cc}{check:02d}{bban}"
    if grouped:
        s = " ".join(s[i:i + 4] for i in range(0, len(s), 4))
    assert mod97_ok(s) == iban_valid(s)
    assert not fix or mod97_ok(s)


def _ipaddress_ok(s: str) -> bool:
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


@settings(max_examples=800)
@given(st.lists(st.one_of(st.just(""), st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=5)),
                min_size=1, max_size=10), st.booleans(), st.booleans())
def test_ipv6_group_check_equals_ipaddress(groups, lead, trail):
    s = ("::" if lead else "") + ":".join(groups) + ("::" if trail else "")
    assert hextets_ok(s) == _ipaddress_ok(s), s


@pytest.mark.parametrize("s", ["2001:db8::1", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
                               "1:2:3:4:5:6:7:8:9", "1::2::3", "1:::2", ":1:2:3:4:5:6:7", "12345::1", "1:2:3:4:5:6:7"])
def test_ipv6_group_check_on_edge_cases(s):
    assert hextets_ok(s) == _ipaddress_ok(s)


_PLAIN_EMAIL = re.compile(  # the e-mail pattern before it was made possessive (reference)
    r"(?<![A-Za-z0-9._%+-])"
    r"(?P<local>[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59}))"
    r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)


@settings(max_examples=800)
@given(st.text(alphabet="aZ09._%+-@x.-中 😀b", max_size=40))
def test_email_pattern_matches_like_its_backtracking_form(text):
    def spans(p):
        return [(m.span(), m.group("local"), m.group("domain")) for m in p.finditer(text)]
    assert spans(Email.pattern) == spans(_PLAIN_EMAIL)


@settings(max_examples=800)
@given(st.lists(st.one_of(st.text(alphabet="aZ09._%+-@x中 😀", max_size=12), st.just("a" * 300),
                          st.sampled_from(["a@b.cn", "x.y@mail.example.com", "@@", "a@b@c.de"])), max_size=8))
def test_email_search_from_each_at_sign_equals_the_plain_scan(parts):
    text = "".join(parts)
    email = build_detector("email")
    assert email.find(text) == RegexDetector.find(email, text)


# --------------------------------------------------------------------------- variant digits
def test_every_unicode_decimal_digit_is_folded_to_its_value():
    every = "".join(chr(c) for c in range(0x80, 0x110000) if 0xD800 > c or c > 0xDFFF)
    digits = re.findall(r"\d", every)  # Unicode decimal digits (Nd)
    assert len(digits) > 600
    folded = fold_variants("".join(digits))
    assert folded == "".join(str(unicodedata.decimal(c)) for c in digits)
    assert all(VARIANTS.match(c) for c in digits)


def test_folding_is_one_for_one_and_keeps_everything_else():
    text = "证件１１０１０５１９４９１２３１００２Ｘ，（卡）ｍａｉｌ😀京Ａ１２３４５ 13900001111"
    folded = fold_variants(text)
    assert len(folded) == len(text)
    assert folded == "证件11010519491231002X，（卡）mail😀京A12345 13900001111"
    plain = "没有数字。No digits: ，（）😀"
    assert fold_variants(plain) is plain and fold_variants("ascii 123") == "ascii 123"


@pytest.mark.parametrize("value,kind", [
    ("１１０１０５１９４９１２３１００２Ｘ", "cn_resident_id"),
    ("\u0666\u0662\u0662\u0662\u0660\u0662\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0668",
     "bank_card"),
    ("１３９-００００-１１１１", "cn_mobile"),
    ("Ｅ１２３４５６７８", "cn_passport"),
])
def test_variant_digits_are_found_and_spans_index_the_original_text(value, kind):
    text = f"客户资料：{value}。"
    fs = find_all(text, PATTERN)
    assert [(text[f.start:f.end], f.detector) for f in fs] == [(value, kind)]
