"""``cn_resident_id``: PRC resident identity card number (GB 11643-1999), 18-character and legacy
15-digit forms.

Candidates are digit runs of exactly 18 (last may be ``X``/``x``) or 15 digits, not touching
ASCII letters or digits (a code such as ``O110105…`` or ``…002XYZ`` is not an ID); CJK text,
emoji and punctuation around them are fine (``身份证号11010519491231002X。``). A candidate is reported
only when :func:`~proxy.detectors.checksums.cn_resident_id_valid` holds: ISO 7064 MOD 11-2 check
character, GB/T 2260 province code, a real calendar birth date from 1800-01-01 up to today.
The 15-digit form has no check digit; it must have a province code and a real ``19YYMMDD`` date.
"""
from __future__ import annotations

import re
from datetime import date
from operator import mul

from .base import Finding, RegexDetector, Start, TextInfo, new_finding
from .checksums import CN_PROVINCE_CODES, cn_resident_id_legacy_valid

_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643-1999 weights
_W48 = 48 * sum(_W)  # the weights times ord("0"): the sum below runs over byte values
_CHECK = "10X98765432"
_MIN_BIRTH = date(1800, 1, 1)
_today = date.today()  # never after the real date: refreshed when a birth date is later


def id18_valid(s: str) -> bool:
    """:func:`~proxy.detectors.checksums.cn_resident_id_valid` (today's date) for what the
    pattern matches, 17 ASCII digits and a digit, ``X`` or ``x``; check character first, so
    most wrong numbers cost one weighted sum."""
    global _today
    if _CHECK[(sum(map(mul, s[:17].encode(), _W)) - _W48) % 11] != s[17].upper():
        return False
    if s[:2] not in CN_PROVINCE_CODES:
        return False
    try:
        born = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if born < _MIN_BIRTH:
        return False
    if born > _today:
        _today = date.today()
        return born <= _today
    return True


class CnResidentId(RegexDetector):
    """18-character (MOD 11-2 check) or legacy 15-digit PRC resident ID number."""

    name = "cn_resident_id"
    placeholder = "CN_RESIDENT_ID"
    priority = 90
    checksum = True
    description = "PRC resident identity card number (GB 11643-1999), 18 or legacy 15 characters"
    pattern = re.compile(
        r"[1-8](?<![0-9A-Za-z][1-8])[0-9]{5}(?:"
        r"(?:18|19|20)[0-9]{2}" + _DATE + r"[0-9]{3}[0-9Xx]"
        r"|[0-9]{2}" + _DATE + r"[0-9]{3}"
        r")(?![0-9A-Za-z])"
    )

    starts = (Start("12345678", (15, 18)),)

    def possible(self, info: TextInfo) -> bool:
        lens = info.lens
        return 18 in lens or 17 in lens or 15 in lens  # 17: digits before a final X

    def finding(self, m: re.Match) -> Finding | None:
        # The legacy 15-digit form has no check digit: on the same span it yields (58) to a
        # Luhn-valid card number (an Amex ``34``/``37`` number often looks like an Anhui or
        # Shandong legacy ID); the 18-character form keeps priority 90.
        if self.validate(m):
            s, e = m.span()
            return new_finding((s, e, self.name, self.priority if e - s == 18 else 58))
        return None

    def validate(self, m: re.Match) -> bool:
        s = m.group()
        if len(s) == 18:
            return id18_valid(s)
        return cn_resident_id_legacy_valid(s)
