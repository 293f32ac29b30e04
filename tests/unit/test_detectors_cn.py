"""PRC / Hong Kong / Macao detectors: resident ID, mobile, USCC, passport, HKID, Macao ID,
travel permits, licence plates. Every detector is checked on values that must be found (also
glued to CJK text and emoji) and on look-alikes that must not."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from proxy.detectors import build_detector, find_all
from proxy.detectors.checksums import cn_resident_id_check_char, uscc_check_char
from proxy.detectors.cn_uscc import gb11714_valid
from proxy.detectors.hk_id import hkid_check_char


def spans(name: str, text: str) -> list[str]:
    """Texts of the findings of one detector (through find_all, so resolution applies)."""
    return [text[f.start:f.end] for f in find_all(text, [build_detector(name)])]


# --------------------------------------------------------------------------- resident ID
@pytest.mark.parametrize("value", ["11010519491231002X", "440524188001010014"])
def test_issue_resident_ids_are_found(value):
    assert spans("cn_resident_id", value) == [value]
    assert spans("cn_resident_id", f"身份证号{value}。") == [value]


def test_issue_resident_id_with_wrong_check_character_is_not_found():
    assert spans("cn_resident_id", "110105194912310021") == []
    assert spans("cn_resident_id", "身份证号110105194912310021，") == []


def test_resident_id_lowercase_x_and_legacy_15_digit_form():
    assert spans("cn_resident_id", "id 11010519491231002x end") == ["11010519491231002x"]
    assert spans("cn_resident_id", "旧证110105491231002号") == ["110105491231002"]
    assert spans("cn_resident_id", "旧证110105491331002号") == []  # month 13


def test_resident_id_needs_real_date_province_and_not_future():
    first17 = "11010520250230001"  # 30 February
    assert spans("cn_resident_id", first17 + cn_resident_id_check_char(first17)) == []
    first17 = "99010519491231002"  # province 99 does not exist
    assert spans("cn_resident_id", first17 + cn_resident_id_check_char(first17)) == []
    tomorrow = date.today() + timedelta(days=1)
    first17 = "110105" + tomorrow.strftime("%Y%m%d") + "001"
    assert spans("cn_resident_id", first17 + cn_resident_id_check_char(first17)) == []


def test_resident_id_inside_longer_digit_runs_or_codes_is_not_found():
    assert spans("cn_resident_id", "911010519491231002X") == []       # 19 characters
    assert spans("cn_resident_id", "O11010519491231002X") == []       # product code
    assert spans("cn_resident_id", "11010519491231002X1") == []


# --------------------------------------------------------------------------- mobile
def test_issue_mobile_next_to_chinese_text():
    text = "同事手机 13900001111"
    assert spans("cn_mobile", text) == ["13900001111"]
    assert spans("cn_mobile", "同事手机13900001111😀") == ["13900001111"]


@pytest.mark.parametrize("value", ["139-0000-1111", "139 0000 1111", "+86 139 0000 1111", "+8613900001111",
                                   "0086 13900001111", "(+86)13900001111", "+86-13900001111"])
def test_mobile_formats(value):
    assert spans("cn_mobile", f"电话：{value}。") == [value]


@pytest.mark.parametrize("value", ["15400001111", "12000001111", "17400001111", "139-0000 1111", "1390000111",
                                   "139000011112", "tel13900001111x"])
def test_mobile_look_alikes_are_not_found(value):
    assert spans("cn_mobile", value) == []


# --------------------------------------------------------------------------- USCC
def test_issue_uscc_found_and_wrong_check_not_found():
    assert spans("cn_uscc", "91350100M000100Y43") == ["91350100M000100Y43"]
    assert spans("cn_uscc", "统一社会信用代码91350100M000100Y43。") == ["91350100M000100Y43"]
    assert spans("cn_uscc", "91350100M000100Y4Z") == []


def test_uscc_checks_the_organisation_code_and_the_division():
    assert gb11714_valid("M000100Y4") and not gb11714_valid("M000100Y5")
    body = "91350100M000100Y5"  # organisation code check broken, USCC check recomputed
    assert spans("cn_uscc", body + uscc_check_char(body)) == []
    body = "91990100M000100Y4"  # division 99 does not exist
    assert spans("cn_uscc", body + uscc_check_char(body)) == []
    assert spans("cn_uscc", "91350100m000100y43") == []  # the code set is upper case


# --------------------------------------------------------------------------- documents
@pytest.mark.parametrize("value", ["E12345678", "EA1234567", "G12345678", "DE1234567", "S1234567"])
def test_passport_numbers(value):
    assert spans("cn_passport", f"护照号{value}，") == [value]


@pytest.mark.parametrize("value", ["E1234567", "EI1234567", "X12345678", "E123456789", "e12345678"])
def test_passport_look_alikes(value):
    assert spans("cn_passport", value) == []


def test_hkid_check_digit():
    assert hkid_check_char("A", "123456") == "3"
    good = f"AB987654({hkid_check_char('AB', '987654')})"
    assert spans("hk_id", f"香港身份证{good}。") == [good]
    assert spans("hk_id", "A123456(3)") == ["A123456(3)"]
    assert spans("hk_id", "A1234563") == ["A1234563"]
    assert spans("hk_id", "A123456(4)") == []


def test_macau_id_needs_brackets_and_series():
    assert spans("macau_id", "澳门身份证1234567(8)") == ["1234567(8)"]
    assert spans("macau_id", "12345678") == []
    assert spans("macau_id", "2234567(8)") == []


@pytest.mark.parametrize("value", ["H12345678", "M1234567890", "C12345678", "CA1234567"])
def test_travel_permits(value):
    assert spans("hk_macau_permit", f"通行证{value}。") == [value]


def test_travel_permit_look_alikes():
    assert spans("hk_macau_permit", "H1234567") == []
    assert spans("hk_macau_permit", "CI1234567") == []


# --------------------------------------------------------------------------- plates
@pytest.mark.parametrize("value", ["京A12345", "粤B·D12345", "沪AD12345", "苏E1234挂", "川A12345F"])
def test_licence_plates(value):
    assert spans("cn_licence_plate", f"车牌{value}已登记") == [value]


@pytest.mark.parametrize("text", ["京ABCDEF", "京I12345", "北A12345", "京A12345678"])
def test_licence_plate_look_alikes(text):
    assert spans("cn_licence_plate", text) == []
