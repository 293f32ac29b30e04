"""``hk_id``: Hong Kong identity card numbers, with the check digit verified.

One or two upper-case letters, six digits and a check character ``0``-``9`` or ``A``, the
check usually written in brackets: ``A123456(3)``, ``AB987654(2)`` or ``A1234563``. Check
(Immigration Department): values space=36, ``A``=10 … ``Z``=35, digits as is; weights 9..2
over the 8 positions (a one-letter prefix is padded with a leading space);
``check = (11 - sum mod 11) mod 11``, written ``A`` for 10.
"""
from __future__ import annotations

import re

from .base import Finding, RegexDetector, Start, TextInfo, new_finding


def hkid_check_char(prefix: str, digits6: str) -> str:
    """Check character of an HKID from its 1-2 letter prefix and 6 digits (see module doc)."""
    letters = prefix if len(prefix) == 2 else " " + prefix
    vals = [36 if c == " " else ord(c) - 55 for c in letters] + [ord(c) - 48 for c in digits6]
    total = sum(v * w for v, w in zip(vals, (9, 8, 7, 6, 5, 4, 3, 2)))
    r = (11 - total % 11) % 11
    return "A" if r == 10 else str(r)


class HkId(RegexDetector):
    """Hong Kong identity card number (check digit verified)."""

    name = "hk_id"
    placeholder = "HK_ID"
    priority = 65
    checksum = True
    description = "Hong Kong identity card number"
    pattern = re.compile(
        r"(?P<p>[A-Z](?<![0-9A-Za-z][A-Z])[A-Z]?)(?P<d>[0-9]{6})(?:\((?P<c1>[0-9A])\)|(?P<c2>[0-9A])(?![0-9A-Za-z]))"
    )

    _UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    # "A123456(3)" / "AB123456(3)": the run stops at the bracket; "A1234563" / "AB1234563"
    starts = (Start(_UPPER, (7, 8), follow="("), Start(_UPPER, (8, 9)))

    def possible(self, info: TextInfo) -> bool:
        return info.upper and (6 in info.lens or 7 in info.lens)

    def validate(self, m: re.Match) -> bool:
        check = m.group("c1") or m.group("c2")
        return hkid_check_char(m.group("p"), m.group("d")) == check

    def finding(self, m: re.Match) -> Finding | None:
        # The bracketed check is the card's own spelling (priority 65). A bare code passes the
        # check by chance 1 time in 11: with one letter (``P7280983``) it still beats the rare
        # D/S/P passport shapes (60 > 55); with two letters (``EM0155441``) it yields (50) to the
        # common e-passport and permit shapes (``E``/``C`` + letter + 7 digits).
        if self.validate(m):
            prio = self.priority if m.group("c1") else 60 if len(m.group("p")) == 1 else 50
            return new_finding((m.start(), m.end(), self.name, prio))
        return None

    def fpe_keep(self, value: str) -> int:
        return 0
