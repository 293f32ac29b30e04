"""``cn_mobile``: mainland China mobile numbers, optionally with ``+86``/``0086``/``(+86)``.

Eleven digits ``1AB`` + 8, written plain (``13900001111``), or 3-4-4 with one consistent
separator (``139-0000-1111``, ``139 0000 1111``). ``1AB`` must be a currently allocated mobile
prefix of the MIIT numbering plan (:data:`MOBILE_PREFIXES`; IoT 14x0/172, satellite 174 and
unallocated 154/179/194 are excluded). The number must not touch ASCII letters or digits (it
would be part of a code); a CJK character right before it is fine (``同事手机13900001111``).
"""
from __future__ import annotations

import re

from .base import RegexDetector, Start, TextInfo

MOBILE_PREFIXES: frozenset[str] = frozenset(
    [str(p) for p in range(130, 140)]
    + ["145", "146", "147", "148", "149"]
    + ["150", "151", "152", "153", "155", "156", "157", "158", "159"]
    + ["162", "165", "166", "167"]
    + ["170", "171", "173", "175", "176", "177", "178"]
    + [str(p) for p in range(180, 190)]
    + ["190", "191", "192", "193", "195", "196", "197", "198", "199"]
)
"""Allocated mainland mobile prefixes (first three digits)."""


class CnMobile(RegexDetector):
    """Mainland China mobile number (11 digits, allocated prefix), optional country code."""

    name = "cn_mobile"
    placeholder = "CN_MOBILE"
    priority = 70
    normalize = "phone"
    description = "mainland China mobile number, optional +86/0086"
    pattern = re.compile(
        r"(?<![0-9A-Za-z+])(?P<cc>(?:\+86|0086|\(\+86\)|\+\(86\))[ -]?)?"
        r"(?P<num>1[3-9][0-9](?:(?P<sep>[ -]?)[0-9]{4}(?P=sep)[0-9]{4}))"
        r"(?![0-9A-Za-z])"
    )

    starts = (
        Start("1", (11,)), Start("1", (3,), follow=" -"),  # 13900001111, 139 0000 1111
        Start("0", (15,)), Start("0", (4, 7), follow=" -"),  # 0086…: glued, "0086 …", "0086139 …"
        Start("8", (2, 13), offsets=(-2, -1)),  # "+86 …", "(+86)…", "+(86)…", "+8613900001111"
        Start("8", (5,), follow=" -", offsets=(-2, -1)),  # "+86139 0000 1111"
    )

    def possible(self, info: TextInfo) -> bool:
        lens = info.lens
        # plain 11 digits, glued to 86/0086 (13/15), or grouped 3-4-4
        return 11 in lens or 13 in lens or 15 in lens or (3 in lens and info.fours >= 2)

    def validate(self, m: re.Match) -> bool:
        return m.group("num")[:3] in MOBILE_PREFIXES

    def canonical(self, value: str) -> str:
        digits = "".join(c for c in value if c.isdigit())
        return "+86" + digits[-11:]

    def fpe_keep(self, value: str) -> int:
        # keep the country code and the 3-digit network prefix: output is still a mobile number
        seen = 0
        digits_to_keep = 3 + (len([c for c in value if c.isdigit()]) - 11)
        for i, c in enumerate(value):
            if c.isdigit():
                seen += 1
                if seen == digits_to_keep:
                    return i + 1
        return 0
