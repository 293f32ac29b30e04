"""``phone``: telephone numbers of any country, through Google's libphonenumber rules
(the ``phonenumbers`` package), for the regions a policy lists.

Numbers written in international form (``+44 20 7946 0958``, ``+1 212-555-0143``) are found
whatever the regions; numbers in national form (``(212) 555-0143``, ``020 7946 0958``) are found
for each configured region (ISO 3166-1 alpha-2, e.g. ``["US", "GB"]``). Every candidate must be a
*valid* number (``Leniency.VALID``: length and number range of the region's numbering plan),
which refuses dates, times and most order numbers. Unbalanced brackets around a match are
trimmed, dotted quads (IPv4 addresses) are refused, and runs of blanks end a number. An unknown region is a :class:`ValueError`
when the detector is built (a policy load error). Mainland mobiles are better found by
``cn_mobile`` (higher priority on equal spans).
"""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from .base import Detector, Finding

SUPPORTED_REGIONS: frozenset[str] = frozenset(phonenumbers.SUPPORTED_REGIONS)
"""Region codes ``phonenumbers`` has metadata for."""

_CANDIDATE = re.compile(r"[0-9][0-9 ()./\-]{4,}[0-9]")
_BLANK_RUN = re.compile(r"\s{2,}|[\t\r\n\f\v]")
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_OPEN, _CLOSE = "(（", ")）"


def check_regions(regions) -> tuple[str, ...]:
    """Validate region codes; returns them as a tuple. Raises :class:`ValueError` naming the
    first unknown code (region codes are policy text, not personal data)."""
    out = []
    for r in regions:
        if not isinstance(r, str) or r not in SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {r!r}; use ISO 3166-1 alpha-2 codes such as 'US', 'GB', 'CN'")
        out.append(r)
    return tuple(out)


class Phone(Detector):
    """Valid telephone number (international form, or national form of a configured region)."""

    name = "phone"
    placeholder = "PHONE"
    priority = 30  # least specific kind: loses ties to cn_mobile, ipv4, bank_card ...
    normalize = "phone"
    description = "telephone number (libphonenumber, configurable regions)"

    def __init__(self, regions=()):
        self.regions = check_regions(regions)
        self._scan_regions = self.regions or ("ZZ",)  # ZZ: international numbers only

    def find(self, text: str) -> list[Finding]:
        if not _CANDIDATE.search(text):
            return []
        # libphonenumber reads "+81 3-1234-4505  1477137391" as one failed candidate: runs of
        # blanks and line breaks end a number here (same length, so offsets do not move)
        work = _BLANK_RUN.sub(lambda m: ";" * len(m.group()), text) if _BLANK_RUN.search(text) else text
        spans: dict[tuple[int, int], None] = {}
        for region in self._scan_regions:
            for m in PhoneNumberMatcher(work, region, leniency=Leniency.VALID):
                s, e = m.start, m.end
                raw = text[s:e]
                # an unbalanced bracket belongs to the sentence, not to the number
                if raw[0] in _OPEN and not any(c in _CLOSE for c in raw):
                    s += 1
                if raw[-1] in _CLOSE and not any(c in _OPEN for c in raw):
                    e -= 1
                if e - s < 3 or _DOTTED_QUAD.fullmatch(text, s, e):
                    continue  # an IPv4 address is not a telephone number
                spans[(s, e)] = None
        return [Finding(s, e, self.name, self.priority) for s, e in spans]

    def _parse(self, value: str):
        for region in self._scan_regions:
            try:
                num = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(num):
                return num
        return None

    def canonical(self, value: str) -> str:
        """E.164 (``+12125550143``), the form the ``pseudonymize`` action's ``phone`` mode uses;
        the digits alone if the number no longer parses."""
        num = self._parse(value)
        if num is None:
            return "".join(c for c in value if c.isdigit())
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)

    def fpe_keep(self, value: str) -> int:
        # keep "+CC" (or "00CC"): the country stays, the subscriber number is encrypted
        s = value.lstrip()
        lead = len(value) - len(s)
        if not (s.startswith("+") or s.startswith("00")):
            return 0
        num = self._parse(value)
        if num is None:
            return 0
        cc = str(num.country_code)
        i = lead + (1 if s.startswith("+") else 2)
        j = 0
        while i < len(value) and j < len(cc):
            if value[i].isdigit():
                j += 1
            i += 1
        return i

    def __repr__(self) -> str:
        return f"Phone(regions={list(self.regions)})"
