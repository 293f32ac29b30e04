"""``iban``: International Bank Account Numbers (ISO 13616-1), compact or in groups of four.

A candidate starts with a country code of the IBAN registry and two check digits; its length
must be the registry's length for that country (:data:`IBAN_LENGTHS`), and the ISO 7064
MOD 97-10 check must give 1 (:func:`~proxy.detectors.checksums.iban_valid`). Upper case only,
as printed on statements; spaces between four-character groups are allowed.
"""
from __future__ import annotations

import re

from .base import LONG, Finding, RegexDetector, Start, TextInfo, new_finding

_LETTER_VALUES = {ord(c): str(10 + i) for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def mod97_ok(cand: str) -> bool:
    """:func:`~proxy.detectors.checksums.iban_valid` for what :class:`Iban` extracts (upper-case
    letters and digits, single spaces, 15-34 characters without them, letters then digits
    first): the rearranged number, letters as 10-35, is 1 mod 97."""
    compact = cand.replace(" ", "")
    return int((compact[4:] + compact[:4]).translate(_LETTER_VALUES)) % 97 == 1

_CAPITALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
"""IBAN length per country code (SWIFT IBAN registry)."""


class Iban(RegexDetector):
    """IBAN with registry length and MOD 97-10 check."""

    name = "iban"
    placeholder = "IBAN"
    priority = 75
    checksum = True
    fpe_alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    description = "IBAN (ISO 13616-1)"
    pattern = re.compile(r"[A-Z](?<![0-9A-Za-z][A-Z])[A-Z][0-9]{2}(?: ?[0-9A-Z]{1,4}){3,8}")

    # the run starts with two capitals and the check digits ("GB82", "GB82WEST1234…"; any two
    # capitals, as the pattern: a match that is no country still consumes its text); it may go
    # on in lower case past the match, hence any length from 4
    starts = (Start(_CAPITALS, range(4, LONG + 1), second=_CAPITALS),)

    def possible(self, info: TextInfo) -> bool:
        return info.upper  # country code letters (and check digits, so runs exist)

    def finding(self, m: re.Match) -> Finding | None:
        s = m.group()
        want = IBAN_LENGTHS.get(s[:2])
        if want is None:
            return None
        # take exactly `want` alphanumerics from the start; the span ends after the last one
        if " " not in s:
            if len(s) < want:
                return None
            end = want
        else:
            n = 0
            end = 0
            for i, c in enumerate(s):
                if c != " ":
                    n += 1
                    if n == want:
                        end = i + 1
                        break
            if not end:
                return None
        text = m.string
        stop = m.start() + end
        if stop < len(text) and (text[stop].isascii() and text[stop].isalnum()):
            return None
        cand = s[:end]
        if " " in cand and not _grouped_ok(cand):
            return None
        if mod97_ok(cand):
            return new_finding((m.start(), stop, self.name, self.priority))
        return None

    def fpe_keep(self, value: str) -> int:
        return 2  # the country code

    def canonical(self, value: str) -> str:
        return value.replace(" ", "").upper()


def _grouped_ok(s: str) -> bool:
    """Spaces only between groups of four (the last group may be shorter)."""
    parts = s.split(" ")
    return all(len(p) == 4 for p in parts[:-1]) and 1 <= len(parts[-1]) <= 4
