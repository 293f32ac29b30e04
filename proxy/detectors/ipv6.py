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
_HAS_DIGIT = re.compile(r"[0-9]").search


def hextets_ok(s: str) -> bool:
    """:class:`ipaddress.IPv6Address`'s acceptance rule for colons and hex groups (no IPv4 tail,
    no scope), without building the address: 8 groups, or fewer with exactly one ``::`` standing
    for at least one group; ``:`` may begin or end the text only as ``::``; groups of 1-4 hex
    digits (``s`` holds nothing else, as the pattern guarantees)."""
    parts = s.split(":")
    n = len(parts)
    if n < 3 or n > 9:
        return False
    skip = -1
    for i in range(1, n - 1):
        if not parts[i]:
            if skip >= 0:
                return False  # more than one "::"
            skip = i
    if skip >= 0:
        hi, lo = skip, n - skip - 1
        if not parts[0]:
            hi -= 1
            if hi:
                return False  # a leading ":" must be "::"
        if not parts[-1]:
            lo -= 1
            if lo:
                return False  # a trailing ":" must be "::"
        if hi + lo > 7:
            return False  # "::" must stand for at least one group
    elif n != 8 or not parts[0] or not parts[-1]:
        return False
    for p in parts:
        if len(p) > 4:
            return False
    return True


class IPv6(RegexDetector):
    """IPv6 address."""

    name = "ipv6"
    placeholder = "IPV6"
    priority = 40
    trigger = ":"
    description = "IPv6 address"
    # ``(?:H)?(?::(?:H)?){2,7}`` not after [0-9A-Za-z:.], written to start with its first character
    # (a hex digit that begins the first group, or the first ":"), so the regex engine can skip
    # to candidate characters; the look-behind then checks the character before it.
    pattern = re.compile(
        r"[0-9A-Fa-f:](?<![0-9A-Za-z:.][0-9A-Fa-f:])"
        r"(?:(?<=:)(?:" + _H + r")?(?::(?:" + _H + r")?){1,6}|(?<=[0-9A-Fa-f])[0-9A-Fa-f]{0,3}(?::(?:" + _H + r")?){2,7})"
        r"(?:(?<=:)(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
        r"(?![0-9A-Za-z:]|\.[0-9])"
    )

    def possible(self, info: TextInfo) -> bool:
        return bool(info.runs) and info.text.count(":") >= 2  # a digit is required (validate)

    def prefilter(self, text: str) -> bool:
        # an address either has "::" or all 8 groups (7 colons; 6 with an IPv4 tail)
        return "::" in text or text.count(":") >= 6

    def validate(self, m: re.Match) -> bool:
        s = m.group()
        if s.count(":") < 2 or s.endswith(":") and not s.endswith("::"):
            return False
        if s.startswith(":") and not s.startswith("::"):
            return False
        if not _HAS_DIGIT(s):
            return False  # "::" alone and letter-only forms such as "a::b" are too ambiguous in text
        if "." in s:
            try:
                ipaddress.IPv6Address(s)
            except ValueError:
                return False
            return True
        return hextets_ok(s)

    def format_preserving(self, value: str, encrypt: Encrypt) -> str:
        n = int(ipaddress.IPv6Address(value))
        enc = encrypt("0123456789abcdef", format(n, "032x"))
        return ipaddress.IPv6Address(int(enc, 16)).compressed
