"""``cn_licence_plate``: PRC motor-vehicle licence plates (GA 36-2018).

A province abbreviation (京, 沪, 粤, …), the issuing authority letter (not ``I``/``O``), an
optional separator (``·``, ``•`` or a space), then

* ordinary plates: 5 characters of letters (not ``I``/``O``) and digits, at least two digits;
  the last may be 挂/学/警/港/澳/领;
* new-energy plates: ``D``/``F`` + a letter or digit + 4 digits (small vehicles), or 5 digits +
  ``D``/``F`` (large vehicles).

CJK text may touch the plate on the left (``车牌京A12345``); ASCII letters or digits may not
follow it.
"""
from __future__ import annotations

import re

from .base import RegexDetector, TextInfo

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_L = "A-HJ-NP-Z"


class CnLicencePlate(RegexDetector):
    """PRC licence plate, ordinary or new-energy."""

    name = "cn_licence_plate"
    placeholder = "CN_LICENCE_PLATE"
    priority = 50
    fpe_alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    description = "PRC motor-vehicle licence plate"
    pattern = re.compile(
        r"[" + PROVINCES + r"][" + _L + r"][·• ]?"
        r"(?P<serial>[DF][" + _L + r"0-9][0-9]{4}|[0-9]{5}[DF]|[" + _L + r"0-9]{4}[" + _L + r"0-9挂学警港澳领])"
        r"(?![0-9A-Za-z])"
    )

    def possible(self, info: TextInfo) -> bool:
        return not info.ascii and bool(info.runs)  # a CJK province character and digits

    def prefilter(self, text: str) -> bool:
        return not text.isascii()

    def validate(self, m: re.Match) -> bool:
        serial = m.group("serial")
        return sum("0" <= c <= "9" for c in serial) >= 2

    def fpe_keep(self, value: str) -> int:
        return 1  # the province character (outside the alphabet anyway)
