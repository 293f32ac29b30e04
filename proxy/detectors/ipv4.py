"""``ipv4``: IPv4 addresses in dotted-decimal form (RFC 791 / inet_aton's strict form).

Four decimal octets 0-255 without leading zeros, not part of a longer dotted or alphanumeric
token (``1.2.3.4.5`` and ``v1.2.3.4`` are not addresses). Version strings are refused: a match
right after a version word (``version``, ``ver``, ``v``, ``release``, ``build``, ``版本``) is
not reported. FPE encrypts the 32-bit address as a whole and writes a valid IPv4 address back.
"""
from __future__ import annotations

import ipaddress
import re

from .base import DIGITS, Encrypt, RegexDetector, Start, TextInfo

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_VERSION_WORD = re.compile(r"(?:version|ver|release|build|rev|v|版本|版本号)[\s:：=#]*$", re.IGNORECASE)


class IPv4(RegexDetector):
    """Dotted-decimal IPv4 address."""

    name = "ipv4"
    placeholder = "IPV4"
    priority = 40
    trigger = "."
    description = "IPv4 address"
    pattern = re.compile(
        r"(?<![0-9A-Za-z.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![0-9A-Za-z]|\.[0-9A-Za-z])"
    )

    starts = (Start(DIGITS, (1, 2, 3), follow="."),)

    def possible(self, info: TextInfo) -> bool:
        return info.short >= 4  # four octets of 1-3 digits

    def validate(self, m: re.Match) -> bool:
        start = m.start()
        if start and _VERSION_WORD.search(m.string, max(0, start - 12), start):
            return False
        return True

    def format_preserving(self, value: str, encrypt: Encrypt) -> str:
        n = int(ipaddress.IPv4Address(value))
        enc = encrypt("01", format(n, "032b"))
        return str(ipaddress.IPv4Address(int(enc, 2)))
