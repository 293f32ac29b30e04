"""``cn_uscc``: Unified Social Credit Code of the PRC (GB 32100-2015).

18 characters of the GB 32100 code set (digits and upper-case letters without I, O, S, V, Z):
registration authority (``1``-``9``, ``A``-``G``, ``N``, ``Y``), organisation type, a 6-digit
GB/T 2260 administrative division (checked: province-level code), the 9-character organisation
code (its own GB 11714-1997 check character is verified) and the mod-31 check character
(:func:`~proxy.detectors.checksums.uscc_valid`). Lower-case text is not matched (the standard's
code set is upper case). The code must not touch other ASCII letters or digits. An all-digit
code shaped like a resident ID (a birth date at positions 7-14) is left to ``cn_resident_id``:
an ID number with a wrong check character passes both USCC checks 1 time in 341.
"""
from __future__ import annotations

import re
from operator import mul

from .base import RegexDetector, Start, TextInfo
from .checksums import CN_PROVINCE_CODES, USCC_CHARSET, USCC_WEIGHTS

_C = "0-9A-HJ-NP-RTUW-Y"  # GB 32100 code set as a regex class
_GB11714_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_RUN6 = frozenset(range(6, 19))
_ID_SHAPED = re.compile(r"[1-8][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])")
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
_V36 = {c: int(c, 36) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def uscc_check_ok(s: str) -> bool:
    """:func:`~proxy.detectors.checksums.uscc_valid` for an 18-character string: every
    character in the GB 32100 code set and the mod-31 check character right."""
    try:
        v = list(map(_USCC_VALUE.__getitem__, s))
    except KeyError:
        return False
    return len(v) == 18 and v[17] == -sum(map(mul, v, USCC_WEIGHTS)) % 31


def gb11714_valid(code9: str) -> bool:
    """Check character of a 9-character organisation code (GB 11714-1997).

    ``C9 = 11 - (sum(value(c_i) * W_i) mod 11)`` with ``W = 3,7,9,10,5,8,4,2``, digits valued
    0-9 and letters A=10..Z=35; 10 is written ``X`` and 11 is written ``0``.
    """
    if len(code9) != 9:
        return False
    try:
        total = sum(map(mul, map(_V36.__getitem__, code9[:8]), _GB11714_WEIGHTS))
    except KeyError:
        return False
    r = 11 - total % 11
    expected = "X" if r == 10 else "0" if r == 11 else str(r)
    return code9[8] == expected


class CnUscc(RegexDetector):
    """GB 32100-2015 Unified Social Credit Code with both check characters verified."""

    name = "cn_uscc"
    placeholder = "CN_USCC"
    priority = 85
    checksum = True
    fpe_alphabet = USCC_CHARSET
    description = "Unified Social Credit Code (GB 32100-2015)"
    pattern = re.compile(
        r"[1-9A-GNY](?<![0-9A-Za-z][1-9A-GNY])[0-9A-Z][0-9]{6}[" + _C + r"]{10}(?![0-9A-Za-z])"
    )

    starts = (Start("123456789ABCDEFGNY", (18,)),)

    def possible(self, info: TextInfo) -> bool:
        # the 6-digit administrative division code; letters elsewhere unless all 18 are digits
        return not info.lens.isdisjoint(_RUN6) and (info.upper or 18 in info.lens)

    def validate(self, m: re.Match) -> bool:
        s = m.group()
        if s[2:4] not in CN_PROVINCE_CODES:
            return False
        if s.isdigit() and _ID_SHAPED.match(s):
            return False  # an all-digit, resident-ID shaped run: cn_resident_id decides
        return uscc_check_ok(s) and gb11714_valid(s[8:17])

    def fpe_keep(self, value: str) -> int:
        return 2  # registration authority and organisation type are categories, not identity
