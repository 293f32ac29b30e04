"""``cn_passport``: PRC passport numbers (ordinary, diplomatic, service, public affairs).

Formats issued by the PRC (Ministry of Public Security / MFA): ordinary e-passports ``E`` + 8
digits and, since the E range ran out, ``E`` + a letter (not ``I``/``O``) + 7 digits; older
ordinary passports ``G`` + 8 digits; diplomatic ``D``/``DE``, service ``S``/``SE`` and public
affairs ``P``/``PE`` + 7 digits (``D``/``S``/``P`` + 8 digits for older ones). Upper case, not
touching ASCII letters or digits. There is no check digit: precision relies on the exact shapes.
"""
from __future__ import annotations

import re

from .base import RegexDetector, Start, TextInfo


class CnPassport(RegexDetector):
    """PRC passport number."""

    name = "cn_passport"
    placeholder = "CN_PASSPORT"
    priority = 55
    description = "PRC passport number"
    pattern = re.compile(
        r"[EGDSP](?<![0-9A-Za-z][EGDSP])(?:(?<=E)[0-9]{8}|(?<=E)[A-HJ-NP-Z][0-9]{7}|(?<=G)[0-9]{8}"
        r"|(?<=[DSP])E[0-9]{7}|(?<=[DSP])[0-9]{7,8})"
        r"(?![0-9A-Za-z])"
    )

    starts = (Start("EGDSP", (8, 9)),)

    def possible(self, info: TextInfo) -> bool:
        return info.upper and (7 in info.lens or 8 in info.lens)

    def fpe_keep(self, value: str) -> int:
        return 0
