"""find_all, the overlap resolver, URL handling, the registry, and the cheap pre-checks
(``Detector.possible``) that must never change a result."""
from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import DETECTOR_CLASSES, Finding, build_detector, build_detectors, detector_names, find_all
from proxy.detectors.base import TextInfo
from proxy.detectors.overlap import resolve_overlaps
from proxy.detectors.urls import drop_url_path_findings

ALL = build_detectors(regions=["US", "GB"])


def found(text: str, dets=ALL) -> list[tuple[str, str]]:
    return [(text[f.start:f.end], f.detector) for f in find_all(text, dets)]


def ungated(text: str, dets=ALL) -> list[Finding]:
    """Reference result: every detector's find() without the TextInfo pre-checks."""
    raw = [f for d in dets for f in d.find(text)]
    if "://" in text or "www." in text:
        raw = drop_url_path_findings(text, raw, frozenset(d.name for d in dets if d.report_in_url_path))
    return resolve_overlaps(raw)


# --------------------------------------------------------------------------- resolver
def test_overlap_longest_wins_and_union_is_replaced():
    fs = [Finding(0, 11, "cn_mobile", 70), Finding(0, 18, "email", 80)]
    assert resolve_overlaps(fs) == [Finding(0, 18, "email", 80)]
    # partial overlap: the union is kept, labelled by the longer member
    fs = [Finding(5, 15, "a", 10), Finding(10, 30, "b", 5), Finding(40, 45, "c", 1)]
    assert resolve_overlaps(fs) == [Finding(5, 30, "b", 5), Finding(40, 45, "c", 1)]


def test_overlap_equal_length_higher_priority_wins():
    fs = [Finding(3, 21, "bank_card", 60), Finding(3, 21, "cn_resident_id", 90)]
    assert resolve_overlaps(fs) == [Finding(3, 21, "cn_resident_id", 90)]
    fs = [Finding(3, 21, "cn_resident_id", 90), Finding(3, 21, "bank_card", 60)]
    assert resolve_overlaps(fs) == [Finding(3, 21, "cn_resident_id", 90)]


def test_overlap_chains_merge_into_one_span():
    fs = [Finding(0, 4, "x", 1), Finding(3, 8, "y", 1), Finding(7, 9, "z", 1), Finding(9, 10, "w", 1)]
    assert resolve_overlaps(fs) == [Finding(0, 9, "y", 1), Finding(9, 10, "w", 1)]


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20), st.integers(0, 5)), max_size=12))
def test_resolver_output_is_disjoint_and_covers_every_input(items):
    fs = [Finding(s, s + n, f"k{p}", p) for s, n, p in items]
    out = resolve_overlaps(fs)
    assert all(a.end <= b.start for a, b in zip(out, out[1:]))
    covered = {i for f in out for i in range(f.start, f.end)}
    assert all(i in covered for f in fs for i in range(f.start, f.end))
    assert {f.detector for f in out} <= {f.detector for f in fs}


def test_email_containing_a_mobile_is_one_email():
    assert found("邮箱13900001111@qq.com") == [("13900001111@qq.com", "email")]


def test_id_that_is_also_luhn_valid_is_an_id():
    from proxy.detectors.checksums import cn_resident_id_check_char, luhn_valid
    ids = [f + cn_resident_id_check_char(f) for f in (f"62010219900101{i:03d}" for i in range(1000))]
    value = next(v for v in ids if v.isdigit() and luhn_valid(v))  # Gansu ID with a UnionPay-like prefix
    assert found(f"证件{value}。") == [(value, "cn_resident_id")]


# --------------------------------------------------------------------------- text handling
def test_cjk_and_emoji_around_every_kind_are_kept_and_findings_exact():
    text = ("同事手机13900001111😀身份证11010519491231002X，邮箱zhang@163.com。卡6222021234567890128🎉"
            "统一代码91350100M000100Y43、车牌京A12345，IP 10.1.2.3")
    got = found(text)
    assert got == [("13900001111", "cn_mobile"), ("11010519491231002X", "cn_resident_id"),
                   ("zhang@163.com", "email"), ("6222021234567890128", "bank_card"),
                   ("91350100M000100Y43", "cn_uscc"), ("京A12345", "cn_licence_plate"), ("10.1.2.3", "ipv4")]


def test_numbers_in_url_paths_are_not_personal_but_query_values_are():
    text = "https://item.jd.com/13900001111.html?mobile=13900001112 和 https://x.cn/u/a@b.com"
    assert found(text) == [("13900001112", "cn_mobile"), ("a@b.com", "email")]
    assert found("见https://shop.example.com/p/6222021234567890128详情") == []
    # a URL ends at CJK text: a mobile right after it is found
    assert found("链接http://t.cn/abc同事手机13900001111") == [("13900001111", "cn_mobile")]


def test_empty_and_plain_text():
    assert find_all("", ALL) == []
    assert find_all("没有任何个人信息。No personal data here.", ALL) == []


# --------------------------------------------------------------------------- registry
def test_registry_names_and_unknown_names():
    assert "cn_resident_id" in detector_names() and "phone" in detector_names()
    assert set(detector_names()) == set(DETECTOR_CLASSES)
    with pytest.raises(KeyError):
        build_detector("ssn")
    assert [d.name for d in build_detectors(["email", "email", "ipv4"])] == ["email", "ipv4"]
    for cls in DETECTOR_CLASSES.values():
        assert cls.placeholder.isupper() and cls.description


def test_findings_do_not_carry_values():
    f = find_all("手机13900001111", ALL)[0]
    assert "13900001111" not in repr(f)


# --------------------------------------------------------------------------- pre-checks
SAMPLES = [
    "同事手机13900001111", "+8613900001111", "008613900001111", "139 0000 1111", "6222 0212 3456 7890 128",
    "3782 822463 10005", "622202 1234567890128", "11010519491231002X", "110105491231002", "91350100M000100Y43",
    "E12345678", "A123456(3)", "1234567(8)", "H12345678", "京A12345", "10.1.2.3", "2001:db8::1", "a@b.cn",
    "DE89 3704 0044 0532 0130 00", "+1 212-555-0143", "(212) 555-0143",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_prechecks_never_hide_a_finding(text):
    info = TextInfo(text)
    for d in ALL:
        if d.find(text):
            assert d.possible(info), d.name
    assert find_all(text, ALL) == ungated(text) != []


_ALPHA = string.digits * 3 + "XABCDEHMGPS +-.()@:/" + "京手机号码😀"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(SAMPLES), st.text(alphabet=_ALPHA, max_size=25)), max_size=6))
def test_find_all_equals_the_ungated_reference(parts):
    text = "".join(parts)
    assert find_all(text, ALL) == ungated(text)
