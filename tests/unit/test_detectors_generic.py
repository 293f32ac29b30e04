"""Bank cards, e-mail, IPv4, IPv6, IBAN and international phone numbers: values that must be
found and hard negatives that must not (timestamps, version strings, Luhn failures, MACs...)."""
from __future__ import annotations

import pytest

from proxy.detectors import build_detector, build_detectors, find_all
from proxy.detectors.bank_card import iin_plausible
from proxy.detectors.checksums import luhn_check_digit
from proxy.detectors.phone import Phone


def spans(name: str, text: str, **kw) -> list[str]:
    return [text[f.start:f.end] for f in find_all(text, [build_detector(name, **kw)])]


# --------------------------------------------------------------------------- bank cards
def test_issue_bank_cards():
    assert spans("bank_card", "6222021234567890128") == ["6222021234567890128"]
    assert spans("bank_card", "卡号6222021234567890128。") == ["6222021234567890128"]
    assert spans("bank_card", "6222021234567890123") == []


@pytest.mark.parametrize("value", ["6222 0212 3456 7890 128", "4111-1111-1111-1111", "4111.1111.1111.1111",
                                   "3782 822463 10005", "622202 1234567890128", "6212345678901232"])
def test_bank_card_layouts(value):
    assert spans("bank_card", f"card: {value}.") == [value]


@pytest.mark.parametrize("text", [
    "1700000000000",            # epoch milliseconds (Luhn-valid by chance is irrelevant: prefix 1)
    "4111 1111-1111 1111",      # mixed separators
    "CH4481299893422684114",    # digits of a code/IBAN
    "41111111111111111",        # 17 digits, not UnionPay
    "4111111111111112",         # Luhn failure
])
def test_bank_card_hard_negatives(text):
    assert spans("bank_card", text) == []


def test_bank_card_followed_by_another_number_keeps_the_card():
    text = "卡：6236 6853 5842 2278 2025-03-15"
    card = "6236685358422278"
    assert luhn_check_digit(card[:-1]) == card[-1]
    assert spans("bank_card", text) == ["6236 6853 5842 2278"]


def test_iin_table():
    assert iin_plausible("4" * 16) and not iin_plausible("4" * 15)
    assert iin_plausible("34" + "0" * 13) and not iin_plausible("34" + "0" * 14)
    assert iin_plausible("2221" + "0" * 12) and not iin_plausible("2721" + "0" * 12)
    assert not iin_plausible("1" * 16) and not iin_plausible("7" * 16)
    assert iin_plausible("62" + "0" * 16) and not iin_plausible("52" + "0" * 16)


def test_id_shaped_18_digit_runs_are_left_to_the_id_detector():
    # Luhn-valid, UnionPay prefix, but shaped like a resident ID with a wrong check character
    body = "62010219900101123"
    d = luhn_check_digit(body)
    assert spans("bank_card", body + d) == []


# --------------------------------------------------------------------------- e-mail
@pytest.mark.parametrize("text,expected", [
    ("发送至zhang.san@163.com。", "zhang.san@163.com"),
    ("mail a.b+c@x.co.uk.", "a.b+c@x.co.uk"),
    ("13900001111@qq.com", "13900001111@qq.com"),
    ("(x_y@example.org)", "x_y@example.org"),
    ("u@xn--fiqs8s.xn--fiqs8s", "u@xn--fiqs8s.xn--fiqs8s"),
])
def test_email_found(text, expected):
    assert spans("email", text) == [expected]


@pytest.mark.parametrize("text", ["foo..bar@x.com", "x@localhost", "a@b.c", "user@-x.com", "git@host:repo"])
def test_email_look_alikes(text):
    assert spans("email", text) == []


# --------------------------------------------------------------------------- IP addresses
def test_ipv4():
    assert spans("ipv4", "服务器10.1.2.3上") == ["10.1.2.3"]
    assert spans("ipv4", "ip 192.168.1.1。") == ["192.168.1.1"]
    for neg in ["version 1.2.3.4", "v1.2.3.4", "1.2.3.4.5", "10.0.0.256", "版本10.2.0.15", "01.2.3.4"]:
        assert spans("ipv4", neg) == [], neg


def test_ipv6():
    for text, exp in [("addr 2001:db8::1 x", "2001:db8::1"), ("fe80::1%eth0", "fe80::1"),
                      ("::ffff:192.168.1.1", "::ffff:192.168.1.1"),
                      ("2001:0db8:0000:0000:0000:ff00:0042:8329.", "2001:0db8:0000:0000:0000:ff00:0042:8329")]:
        assert spans("ipv6", text) == [exp]
    for neg in ["12:30:45", "00:1A:2B:3C:4D:5E", "std::map", "::", "a::b", "2001:db8::1::2"]:
        assert spans("ipv6", neg) == [], neg


# --------------------------------------------------------------------------- IBAN
def test_iban():
    assert spans("iban", "IBAN DE89 3704 0044 0532 0130 00 please") == ["DE89 3704 0044 0532 0130 00"]
    assert spans("iban", "账户GB82WEST12345698765432。") == ["GB82WEST12345698765432"]
    assert spans("iban", "DE89370400440532013001") == []        # check digits fail
    assert spans("iban", "DE8937040044053201300") == []         # wrong length for DE
    assert spans("iban", "ZZ89370400440532013000") == []        # no such country
    assert spans("iban", "DE89 3704 0044 0532 0130 00ABC") == []


# --------------------------------------------------------------------------- phones
def test_international_numbers_need_no_region():
    text = "Call +1 212-555-0143 or +44 20 7946 0958, office (212) 555-0143."
    assert spans("phone", text) == ["+1 212-555-0143", "+44 20 7946 0958"]
    assert spans("phone", text, regions=["US"]) == ["+1 212-555-0143", "+44 20 7946 0958", "(212) 555-0143"]


def test_phone_hard_negatives():
    d = [build_detector("phone", regions=["US", "GB"])]
    for neg in ["1700000000000", "2024-05-01 12:30:45", "192.168.100.200", "v1.2.3.4"]:
        assert find_all(neg, d) == [], neg


def test_phone_trims_unbalanced_brackets_and_blank_runs():
    assert spans("phone", "手机（+1 212-555-0143。") == ["+1 212-555-0143"]
    assert spans("phone", "phone +81 3-1234-4505  1477137391.") == ["+81 3-1234-4505"]


def test_unknown_region_is_an_error():
    with pytest.raises(ValueError, match="XX"):
        Phone(["XX"])
    with pytest.raises(ValueError):
        build_detectors(["phone"], regions=["uk"])


def test_phone_canonical_is_e164():
    p = Phone(["US"])
    assert p.canonical("(212) 555-0143") == "+12125550143"
    assert p.canonical("+44 20 7946 0958") == "+442079460958"
