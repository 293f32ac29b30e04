"""``bank_card``: payment card numbers (ISO/IEC 7812), 13-19 digits, Luhn-checked.

Written plain (``6222021234567890128``) or in groups with one consistent separator (space,
``-`` or ``.``): 4-4-4-4[-1..4] (16-19 digits, UnionPay/Visa/Mastercard), 4-6-5 (Amex),
4-6-4 (Diners) and 6-13 (19-digit UnionPay as printed by some banks). A candidate is reported
when the digits pass the Luhn check (:func:`~proxy.detectors.checksums.luhn_valid`) and the
issuer prefix and length fit a card scheme (:func:`iin_plausible`): this rejects millisecond
and nanosecond timestamps (they start with ``1``) and most order numbers. An 18-digit run shaped like a
resident ID (a ``19``/``20`` birth date at positions 7-14) is left to ``cn_resident_id``: real
18-digit cards almost never look like that, mistyped ID and order numbers often do. The number
must not touch ASCII letters or digits (the digits of an IBAN or of a product code are not a
card number).
"""
from __future__ import annotations

import re

from .base import DIGITS, Finding, RegexDetector, Start, TextInfo, new_finding

_DOUBLED = str.maketrans("0123456789", "0246813579")  # Luhn: 2d, minus 9 above 9


def luhn_ok(digits: str) -> bool:
    """:func:`~proxy.detectors.checksums.luhn_valid` for a string of two or more ASCII digits
    (byte sums instead of a loop)."""
    return (sum(digits[-1::-2].encode()) + sum(digits[-2::-2].translate(_DOUBLED).encode())
            - 48 * len(digits)) % 10 == 0


def iin_plausible(digits: str) -> bool:
    """True when the leading digits and the length fit a card scheme.

    Accepted: Visa ``4`` (13, 16, 19); Mastercard ``51``-``55`` and ``2221``-``2720`` (16);
    Maestro ``50``, ``56``-``58`` (12-19 → 13-19 here); Amex ``34``/``37`` (15);
    Diners ``30``, ``36``, ``38``, ``39`` (14-19); JCB ``35`` (16-19); UnionPay ``62``, ``81``
    (16-19); Discover ``6011``, ``64``, ``65`` (16-19); other ``6`` (Maestro/domestic, 16-19);
    legacy PRC domestic debit ``9`` (16-19). Everything else (``1``, ``7``, ``0``) is refused, and
    17- or 18-digit numbers are accepted for UnionPay ``62`` only: elsewhere they are
    order numbers far more often than cards.
    """
    n = len(digits)
    d0 = digits[0]
    if n in (17, 18):
        return digits[:2] == "62"  # only UnionPay issues 17/18-digit cards in number
    if d0 == "4":
        return n in (13, 16, 19)
    if d0 == "5":
        d1 = digits[1]
        if "1" <= d1 <= "5":
            return n == 16
        return n >= 13 and d1 != "9"
    if d0 == "2":
        return n == 16 and 2221 <= int(digits[:4]) <= 2720
    if d0 == "3":
        p = digits[:2]
        if p in ("34", "37"):
            return n == 15
        if p in ("30", "36", "38", "39"):
            return n >= 14
        if p == "35":
            return n >= 16
        return False
    if d0 == "6":
        return n >= 16
    if d0 == "8":
        return digits[1] == "1" and n >= 16
    if d0 == "9":
        return n >= 16
    return False


class BankCard(RegexDetector):
    """Luhn-valid payment card number of a plausible scheme, plain or grouped."""

    name = "bank_card"
    placeholder = "BANK_CARD"
    priority = 60
    checksum = True
    description = "payment card number (Luhn, 13-19 digits)"
    pattern = re.compile(
        r"(?<![0-9A-Za-z])(?:"
        r"[0-9]{13,19}"
        r"|[0-9]{4}(?P<s1>[ .-])[0-9]{4}(?P=s1)[0-9]{4}(?P=s1)[0-9]{4}(?:(?P=s1)[0-9]{1,4})?"
        r"|[0-9]{4}(?P<s2>[ .-])[0-9]{6}(?P=s2)[0-9]{4,5}"
        r"|[0-9]{6}(?P<s3>[ .-])[0-9]{13}"
        r")(?![0-9A-Za-z])"
    )

    # Grouped numbers begin with a 4- or 6-digit group and a separator. A plain number is its
    # whole digit run (the match is the run, so leaving out a run that cannot pass changes no
    # other match): by first digit, only the lengths iin_plausible accepts.
    starts = (
        Start(DIGITS, (4, 6), follow=" .-"),
        Start("2", (16,)), Start("3", (14, 15, 16, 19)), Start("4", (13, 16, 19)),
        Start("5", (13, 14, 15, 16, 19)), Start("689", (16, 19)), Start("6", (17, 18)),
    )

    def finding(self, m: re.Match) -> Finding | None:
        s = m.group()
        digits = s if s.isdigit() else s.replace(" ", "").replace("-", "").replace(".", "")
        n = len(digits)
        if 13 <= n <= 19 and iin_plausible(digits) and not (n == 18 and _ID_SHAPED.match(digits)) \
                and luhn_ok(digits):
            return new_finding((m.start(), m.end(), self.name, self.priority))
        if m.group("s1") and len(s) > 19 and self._valid(s[:19]):
            # 4-4-4-4 followed by a separate short number ("… 2278 2025-03-15"): the card is
            # the first 16 digits
            return new_finding((m.start(), m.start() + 19, self.name, self.priority))
        return None

    def possible(self, info: TextInfo) -> bool:
        lens = info.lens
        # plain 13-19 digits; 4-4-4-4[-n] (four runs of exactly 4); 4-6-4/5; 6-13 has a 13-digit run
        return info.fours >= 4 or not lens.isdisjoint(_PLAIN_LENS) or (4 in lens and 6 in lens)

    def validate(self, m: re.Match) -> bool:
        return self._valid(m.group())

    @staticmethod
    def _valid(s: str) -> bool:
        digits = s if s.isdigit() else s.replace(" ", "").replace("-", "").replace(".", "")
        n = len(digits)
        if not 13 <= n <= 19 or not iin_plausible(digits):
            return False
        if n == 18 and _ID_SHAPED.match(digits):
            return False  # resident-ID shaped (birth date at 7-14): the ID detector decides
        return luhn_ok(digits)


_PLAIN_LENS = frozenset(range(13, 20))
_ID_SHAPED = re.compile(r"[1-8][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])")
