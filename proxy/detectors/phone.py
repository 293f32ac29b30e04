"""``phone``: telephone numbers of any country, through Google's libphonenumber rules
(the ``phonenumbers`` package), for the regions a policy lists.

Numbers written in international form (``+44 20 7946 0958``, ``+1 212-555-0143``) are found
whatever the regions; numbers in national form (``(212) 555-0143``, ``020 7946 0958``) are found
for each configured region (ISO 3166-1 alpha-2, e.g. ``["US", "GB"]``). Every candidate must be a
*valid* number (``Leniency.VALID``: length and number range of the region's numbering plan,
national prefix where the plan requires it), which refuses dates, times and most order numbers.
An unknown region is a :class:`ValueError` when the detector is built (a policy load error).
Mainland mobiles are better found by ``cn_mobile`` (higher priority on equal spans).

Speed: ``PhoneNumberMatcher`` costs a parse per digit group, which would make it the slowest
detector by far. Candidates are first cut out with one regular expression (digit groups joined
by single separators, brackets and a leading ``+``); a plain digit run whose length no
configured numbering plan allows (an 18-digit ID, a 16-digit card, a 13-digit timestamp) is
dropped without parsing; the rest is handed to ``PhoneNumberMatcher`` on a window of the
candidate plus one character before and three after, so its own checks (brackets, dates, time stamps,
Latin letters around the number, inner matches) apply as on the whole text. Unbalanced brackets
around a match are trimmed, dotted quads (IPv4 addresses) are refused, and runs of blanks end
a number.
"""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from .base import Detector, Finding

SUPPORTED_REGIONS: frozenset[str] = frozenset(phonenumbers.SUPPORTED_REGIONS)
"""Region codes ``phonenumbers`` has metadata for."""

_SEP = r"(?: ?[\-./()（）] ?| )"
_CANDIDATE = re.compile(r"[+＋]?[(（]?[0-9](?:[0-9]|" + _SEP + r"(?=[0-9(（]))*")
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


def _plain_lengths(regions: tuple[str, ...]) -> frozenset[int]:
    """Lengths a plain digit run may have to be a national number of one of ``regions``
    (the plan's possible lengths, with and without its national prefix)."""
    out: set[int] = set()
    for r in regions:
        md = phonenumbers.PhoneMetadata.metadata_for_region(r)
        if md is None:
            continue
        lengths = [n for n in md.general_desc.possible_length if n > 0]
        out.update(lengths)
        if md.national_prefix:
            out.update(n + len(md.national_prefix) for n in lengths)
    return frozenset(out)


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
        self._plain = _plain_lengths(self.regions)

    def _worth_parsing(self, cand: str) -> bool:
        if cand.isdigit():
            n = len(cand)
            if cand.startswith("00"):
                return 9 <= n <= 19  # 00 + country code + number
            return n in self._plain
        digits = sum(c.isdigit() for c in cand)
        return 6 <= digits <= 40 and not _DOTTED_QUAD.fullmatch(cand)

    def find(self, text: str) -> list[Finding]:
        spans: dict[tuple[int, int], None] = {}
        n = len(text)
        for cm in _CANDIDATE.finditer(text):
            cand = cm.group()
            if not self._worth_parsing(cand):
                continue
            w0 = cm.start() - 1 if cm.start() else 0
            w1 = min(n, cm.end() + 3)  # ":30" after "2024-05-01 12" marks a time stamp
            window = text[w0:w1]
            if "  " in window or "\n" in window or "\t" in window:
                window = _BLANK_RUN.sub(lambda m: ";" * len(m.group()), window)
            for region in self._scan_regions:
                for m in PhoneNumberMatcher(window, region, leniency=Leniency.VALID):
                    s, e = w0 + m.start, w0 + m.end
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
