"""``ipv6``: IPv6 addresses (RFC 4291 text forms, RFC 5952 compressed or not, with an optional
embedded IPv4 tail), validated by :mod:`ipaddress`.

Candidates are runs of hex groups and colons (at least two colons) that do not continue an
alphanumeric or ``:``-joined token; each is parsed by :class:`ipaddress.IPv6Address`, so MAC
addresses (6 groups), clock times (``12:30:45``) and ``std::map`` are refused, and so are
forms without any decimal digit (``a::b``, ``::``). FPE encrypts the
128-bit address as 32 hex digits and writes the compressed form back.
"""
from __future__ import annotations

import ipaddress
import re

from .base import Encrypt, RegexDetector, TextInfo

_H = r"[0-9A-Fa-f]{1,4}"


class IPv6(RegexDetector):
    """IPv6 address."""

    name = "ipv6"
    placeholder = "IPV6"
    priority = 40
    trigger = ":"
    description = "IPv6 address"
    pattern = re.compile(
        r"(?<![0-9A-Za-z:.])"
        r"(?:" + _H + r")?(?::(?:" + _H + r")?){2,7}"
        r"(?:(?<=:)(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
        r"(?![0-9A-Za-z:]|\.[0-9])"
    )

    def possible(self, info: TextInfo) -> bool:
        return bool(info.runs) and info.text.count(":") >= 2  # a digit is required (validate)

    def validate(self, m: re.Match) -> bool:
        s = m.group()
        if s.count(":") < 2 or s.endswith(":") and not s.endswith("::"):
            return False
        if s.startswith(":") and not s.startswith("::"):
            return False
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            return False
        # "::" alone and letter-only forms such as "a::b" are too ambiguous in text
        return any("0" <= c <= "9" for c in s)

    def format_preserving(self, value: str, encrypt: Encrypt) -> str:
        n = int(ipaddress.IPv6Address(value))
        enc = encrypt("0123456789abcdef", format(n, "032x"))
        return ipaddress.IPv6Address(int(enc, 16)).compressed
