"""Every detector, and the ``detect`` transform over all of them, runs in time linear in the text
on adversarial 1 MB strings (no super-linear regex backtracking): long digit runs, repeated
separators (``1-1-1-…``, ``a@a@a@…``, ``....``), runs of a detector's prefix, alternating digit
and space, IPv6-like colon runs, URL-ish strings.

The bound is relative to the same machine: the time for 1 MiB of a pattern must stay within
:data:`FACTOR` times the time for 64 KiB of it. Linear is 16× in theory; measured here, linear
scans reach ~48× (a 1 MiB text leaves the CPU caches, and a second core's load adds noise), while
quadratic backtracking is 256× (and cubic 4096×), so the bound is 64×. Each time is the best of a
few runs, a 64 KiB baseline under a millisecond counts as 1 ms (noise on a tiny baseline), and a
pattern over the bound is measured once more before the test fails.
"""
from __future__ import annotations

import time

import pytest

from proxy.detectors.registry import DETECTOR_CLASSES, build_detector
from proxy.policy.models import DetectRule
from proxy.transforms import BuildContext, build_transform

SMALL, BIG = 1 << 16, 1 << 20
FACTOR = 64
FLOOR = 1e-3  # seconds: the smallest baseline compared against

GENERIC = ["1", "1-", "a@", ".", "1 ", "1:", "::", "ab:", "1.", "a.", "a-", "A1", "(1", "1/", "%", "+",
           "http://a", "https://a.b/", "www.a.", "a.b/", "1a", " ", "王1"]
SPECIFIC = {
    "cn_resident_id": ["110101", "11010119900307777", "1101011990030"],
    "cn_mobile": ["139", "+86 139", "1390000", "86-"],
    "cn_uscc": ["91", "9111", "91110000"],
    "bank_card": ["4111", "4111 1111 ", "4-", "62220212345678901"],
    "email": ["a.a@", "a@a.", "a@a-", "a.@", "-@a.", "a@1.", "xn--"],
    "ipv4": ["1.1.", "255.", "1.1.1.1.", "01."],
    "ipv6": ["1:", "ffff:", "::ffff:1.1.", "1::", "a:b:c:", "fe80::", "[::"],
    "iban": ["GB82", "GB82 WEST ", "GB", "DE44 5001 "],
    "cn_passport": ["E1", "E12345678", "EG"],
    "hk_id": ["A123456(", "AB12345", "A("],
    "macau_id": ["1234567(", "1(", "5("],
    "hk_macau_permit": ["H12345678", "C1", "HMC"],
    "cn_licence_plate": ["京A", "京A1", "粤B·"],
    "phone": ["+1 ", "+44 20 ", "(555) ", "+", "+86-", "00"],
}


def _text(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


def _best(fn, text: str, runs: int = 2) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - t0)
    return best


def _ratio(fn, unit: str) -> tuple[float, float]:
    small = max(_best(fn, _text(unit, SMALL), 2), FLOOR)
    big = _best(fn, _text(unit, BIG), 1)
    if big / small > FACTOR:  # once more before failing: a busy machine
        big = min(big, _best(fn, _text(unit, BIG), 1))
    return big / small, big


def _detector(name: str):
    return build_detector(name, regions=("CN", "US", "GB")) if name == "phone" else build_detector(name)


@pytest.mark.parametrize("name", sorted(DETECTOR_CLASSES))
def test_every_detector_is_linear_on_adversarial_text(name):
    det = _detector(name)
    slow = []
    for unit in GENERIC + SPECIFIC.get(name, []):
        ratio, big = _ratio(lambda s: det.find(s), unit)
        if ratio > FACTOR:
            slow.append(f"{unit!r}: 1 MiB took {big:.2f} s, {ratio:.0f}x the 64 KiB time")
    assert not slow, f"{name} is super-linear: " + "; ".join(slow)


def test_the_specific_patterns_name_real_detectors():
    assert set(SPECIFIC) == set(DETECTOR_CLASSES)


DETECT_UNITS = GENERIC + [us[0] for us in SPECIFIC.values()] + ["a@a.", "::ffff:1.1.", "+44 20 "]
"""Patterns for the detect transform over every detector (one prefix per detector: CI time)."""


@pytest.mark.parametrize("replace", ["placeholder", "fpe"])
def test_the_detect_transform_is_linear_on_adversarial_text(replace):
    rule = DetectRule(field="note", action="detect", detectors=sorted(DETECTOR_CLASSES), replace=replace,
                      regions=["CN", "US"], key="k" if replace == "fpe" else None)
    from proxy.crypto.keys import SecretKey
    t = build_transform(rule, BuildContext("p", "r", {"k": SecretKey("k", b"\x07" * 32)}, max_detect_chars=4 * BIG))
    units = DETECT_UNITS if replace == "placeholder" else ["4111 1111 1111 1111 ", "13900001111 ", "a@b.cn "]
    slow = []
    for unit in units:
        ratio, big = _ratio(t.apply, unit)
        if ratio > FACTOR:
            slow.append(f"{unit!r}: 1 MiB took {big:.2f} s, {ratio:.0f}x the 64 KiB time")
    assert not slow, "detect is super-linear: " + "; ".join(slow)
