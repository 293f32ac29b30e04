"""Tests for proxy.detectors.checksums against the shared standard vectors and own tables."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.detectors.checksums import (
    CN_PROVINCE_CODES,
    USCC_CHARSET,
    cn_resident_id_15_to_18,
    cn_resident_id_check_char,
    cn_resident_id_legacy_valid,
    cn_resident_id_valid,
    iban_valid,
    luhn_check_digit,
    luhn_valid,
    uscc_check_char,
    uscc_valid,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "identifier_validators.json").read_text("utf-8")
)
FIXED_TODAY = date(2024, 6, 1)


def _with_check(first17: str) -> str:
    return first17 + cn_resident_id_check_char(first17)


# ---------------------------------------------------------------------------
# Shared vectors (GB 11643-1999, GB 32100-2015, ISO/IEC 7812)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("s", VECTORS["cn_resident_id"]["valid"])
def test_vector_resident_id_valid(s):
    assert cn_resident_id_valid(s)
    assert cn_resident_id_valid(s, today=FIXED_TODAY)
    assert cn_resident_id_check_char(s[:17]) == s[17]


@pytest.mark.parametrize("s", VECTORS["cn_resident_id"]["invalid"])
def test_vector_resident_id_invalid(s):
    assert not cn_resident_id_valid(s)


@pytest.mark.parametrize("s15,s18", sorted(VECTORS["cn_resident_id"]["legacy_15_to_18"].items()))
def test_vector_legacy_15_to_18(s15, s18):
    assert cn_resident_id_15_to_18(s15) == s18
    assert cn_resident_id_legacy_valid(s15)
    assert cn_resident_id_valid(s18)


@pytest.mark.parametrize("s", VECTORS["uscc"]["valid"])
def test_vector_uscc_valid(s):
    assert uscc_valid(s)
    assert uscc_check_char(s[:17]) == s[17]


@pytest.mark.parametrize("s", VECTORS["uscc"]["invalid"])
def test_vector_uscc_invalid(s):
    assert not uscc_valid(s)


@pytest.mark.parametrize("s", VECTORS["bank_card_luhn"]["valid"])
def test_vector_luhn_valid(s):
    assert luhn_valid(s)
    assert luhn_check_digit(s[:-1]) == s[-1]


@pytest.mark.parametrize("s", VECTORS["bank_card_luhn"]["invalid"])
def test_vector_luhn_invalid(s):
    assert not luhn_valid(s)


# ---------------------------------------------------------------------------
# Resident ID: own tables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "s,why",
    [
        ("11010519491231002x", "lowercase x check char"),
        (_with_check("11010520000229123"), "leap day 2000"),
        (_with_check("81000019900101123"), "Hong Kong code 81"),
        (_with_check("82000019900101123"), "Macao code 82"),
        (_with_check("83000019900101123"), "Taiwan residence permit 83"),
        (_with_check("71000019900101123"), "Taiwan 71"),
        (_with_check("65010218000101123"), "1800-01-01 lower bound"),
        (_with_check("11010520240601123"), "born today"),
    ],
)
def test_resident_id_valid_table(s, why):
    assert cn_resident_id_valid(s, today=FIXED_TODAY), why


@pytest.mark.parametrize(
    "s,why",
    [
        ("110105194912310020", "wrong check char (0 instead of X)"),
        ("11010519491231002Y", "check char not a digit or X"),
        ("440524188001010015", "wrong check digit"),
        (_with_check("11010519900230123"), "Feb 30"),
        (_with_check("11010519000229123"), "Feb 29 in non-leap 1900"),
        (_with_check("11010519901301123"), "month 13"),
        (_with_check("11010519900100123"), "day 00"),
        (_with_check("11010520240602123"), "birth date in the future"),
        (_with_check("11010530010101123"), "birth year 3001"),
        (_with_check("11010517991231123"), "before 1800"),
        (_with_check("10010519900101123"), "bad province 10"),
        (_with_check("20010519900101123"), "bad province 20"),
        (_with_check("39010519900101123"), "bad province 39"),
        (_with_check("99010519900101123"), "bad province 99"),
        (_with_check("00010519900101123"), "bad province 00"),
        ("11010519491231002", "17 chars"),
        ("11010519491231002XX", "19 chars"),
        ("", "empty"),
        ("1101051949123100２X", "full-width digit"),
        ("11010519491231 02X", "space inside"),
        ("X10105194912310021", "X not at the end"),
    ],
)
def test_resident_id_invalid_table(s, why):
    assert not cn_resident_id_valid(s, today=FIXED_TODAY), why


def test_resident_id_future_uses_today_by_default():
    tomorrow = date.today().toordinal() + 1
    d = date.fromordinal(tomorrow)
    s = _with_check(f"110105{d:%Y%m%d}123")
    assert not cn_resident_id_valid(s)
    assert cn_resident_id_valid(s, today=d)


@pytest.mark.parametrize("bad", [None, 110105194912310021, b"11010519491231002X"])
def test_resident_id_non_str_is_invalid(bad):
    assert not cn_resident_id_valid(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "1234567890123456", "123456789012345678", "1101051949123100a"])
def test_resident_id_check_char_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        cn_resident_id_check_char(bad)


def test_province_code_set():
    expected = {
        "11", "12", "13", "14", "15", "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
        "71", "81", "82", "83",
    }
    assert CN_PROVINCE_CODES == expected


@pytest.mark.parametrize(
    "s15,ok",
    [
        ("110105491231002", True),
        ("440524800101001", True),
        ("110105490230002", False),   # Feb 30
        ("990105491231002", False),   # bad province
        ("11010549123100", False),    # 14 digits
        ("11010549123100X", False),   # legacy form has no check char
    ],
)
def test_legacy_valid_table(s15, ok):
    assert cn_resident_id_legacy_valid(s15) is ok


@pytest.mark.parametrize("bad", ["11010549123100", "1101054912310021", "11010549123100X"])
def test_15_to_18_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        cn_resident_id_15_to_18(bad)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_resident_id_single_digit_error_detected(first17):
    """MOD 11-2 detects every single-digit substitution."""
    full = _with_check(first17)
    for pos in range(17):
        for d in "0123456789":
            if d == first17[pos]:
                continue
            mutated = first17[:pos] + d + first17[pos + 1:]
            assert cn_resident_id_check_char(mutated) != full[17]


# ---------------------------------------------------------------------------
# USCC: own tables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "s,ok,why",
    [
        ("91350100M000100Y43", True, "vector"),
        ("91350100M000100Y4", False, "17 chars"),
        ("91350100M000100Y433", False, "19 chars"),
        ("91350100m000100y43", False, "lowercase not in the code set"),
        ("91350100I000100Y43", False, "I excluded from code set"),
        ("91350100O000100Y43", False, "O excluded from code set"),
        ("91350100M000100Y42", False, "wrong check char"),
        ("91350100M000100Y4Z", False, "Z excluded and wrong"),
    ],
)
def test_uscc_table(s, ok, why):
    assert uscc_valid(s) is ok, why


def test_uscc_check_char_31_maps_to_0():
    # All zeros: sum 0 -> 31 - 0 = 31 -> '0'.
    assert uscc_check_char("0" * 17) == "0"
    assert uscc_valid("0" * 18)


@given(st.text(alphabet=USCC_CHARSET, min_size=17, max_size=17))
def test_uscc_roundtrip(first17):
    c = uscc_check_char(first17)
    assert c in USCC_CHARSET
    assert uscc_valid(first17 + c)


def test_uscc_check_char_rejects_bad_input():
    with pytest.raises(ValueError):
        uscc_check_char("91350100I000100Y4")
    with pytest.raises(ValueError):
        uscc_check_char("9135")


# ---------------------------------------------------------------------------
# Luhn: own tables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "s,ok",
    [
        ("79927398713", True),          # classic example
        ("79927398710", False),
        ("5555555555554444", True),     # Mastercard test number
        ("378282246310005", True),      # Amex test number
        ("00", True),
        ("0", False),                   # too short
        ("", False),
        ("4111 1111 1111 1111", False),  # separators must be stripped by caller
        ("4111-1111-1111-1111", False),
        ("411111111111111１", False),    # full-width digit
    ],
)
def test_luhn_table(s, ok):
    assert luhn_valid(s) is ok


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_roundtrip(partial):
    full = partial + luhn_check_digit(partial)
    assert luhn_valid(full)
    wrong = str((int(full[-1]) + 1) % 10)
    assert not luhn_valid(full[:-1] + wrong)


@pytest.mark.parametrize("bad", ["", "12a4", "12 34"])
def test_luhn_check_digit_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        luhn_check_digit(bad)


# ---------------------------------------------------------------------------
# IBAN (ISO 13616)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "s,ok",
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("GB82WEST12345698765432", True),
        ("gb82 west 1234 5698 7654 32", True),
        ("DE89 3704 0044 0532 0130 00", True),
        ("FR14 2004 1010 0505 0001 3M02 606", True),
        ("NL91ABNA0417164300", True),
        ("GB82 WEST 1234 5698 7654 33", False),   # wrong check
        ("GB28 WEST 1234 5698 7654 32", False),   # transposed check digits
        ("82GB WEST 1234 5698 7654 32", False),
        ("GB82-WEST-1234-5698-7654-32", False),
        ("GB82", False),
        ("", False),
    ],
)
def test_iban_table(s, ok):
    assert iban_valid(s) is ok
