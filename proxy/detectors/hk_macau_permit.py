"""``hk_macau_permit``: travel permits between the mainland and Hong Kong / Macao.

* Mainland Travel Permit for Hong Kong and Macao Residents (回乡证): ``H`` (Hong Kong) or ``M``
  (Macao) + 8 digits (card since 2013), or + 10 digits (older booklets);
* Exit-Entry Permit for Travelling to and from Hong Kong and Macao (往来港澳通行证, issued to
  mainland residents): ``C`` + 8 digits, or ``C`` + a letter (not ``I``/``O``) + 7 digits.

Upper case, not touching ASCII letters or digits. No check digit.
"""
from __future__ import annotations

import re

from .base import RegexDetector, Start, TextInfo


class HkMacauPermit(RegexDetector):
    """Hong Kong / Macao travel permit number."""

    name = "hk_macau_permit"
    placeholder = "HK_MACAU_PERMIT"
    priority = 55
    description = "mainland / Hong Kong / Macao travel permit number"
    pattern = re.compile(
        r"[HMC](?<![0-9A-Za-z][HMC])(?:(?<=[HM])[0-9]{10}|(?<=[HM])[0-9]{8}|(?<=C)[0-9]{8}|(?<=C)[A-HJ-NP-Z][0-9]{7})"
        r"(?![0-9A-Za-z])"
    )

    starts = (Start("HMC", (9, 11)),)

    def possible(self, info: TextInfo) -> bool:
        lens = info.lens
        return info.upper and (7 in lens or 8 in lens or 10 in lens)
