"""``email``: e-mail addresses (RFC 5321/5322 "dot-atom" subset seen in practice).

Local part of ASCII letters, digits and ``_ % + -`` with single dots between runs (at most 64
characters), ``@``, then a domain of at least two labels (letters, digits, inner ``-``) ending in
an alphabetic or ``xn--`` top-level label; at most 254 characters in all. The address must not
continue an ASCII word on the left, nor a domain on the right, but CJK text may touch it on both
sides (``发送至zhang@163.com。``). Quoted local parts and non-ASCII addresses are not matched.
"""
from __future__ import annotations

import re
import unicodedata

from .base import Detector, Encrypt, Finding, RegexDetector, TextInfo

ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_RUN_BACK = re.compile(r"[A-Za-z0-9._%+-]*")  # the local-part run before an "@", read reversed
_BACK = 256  # how far back it is read (longer runs: the plain scan; a local part has at most 64)


class Email(RegexDetector):
    """E-mail address."""

    name = "email"
    placeholder = "EMAIL"
    priority = 80
    normalize = "email"
    fpe_alphabet = ALNUM
    trigger = "@"
    report_in_url_path = True  # an address in a URL path still names a person
    description = "e-mail address"
    # The local part starts with its first character, then looks behind (so the regex engine
    # can skip to candidate characters), and is possessive: '@' and '.' never occur in its
    # runs, so giving characters back could never let '@' follow.
    pattern = re.compile(
        r"(?P<local>[A-Za-z0-9_%+-](?<![A-Za-z0-9._%+-][A-Za-z0-9_%+-])[A-Za-z0-9_%+-]*+(?:\.[A-Za-z0-9_%+-]++)*+)"
        r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59}))"
        r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
    )

    def possible(self, info: TextInfo) -> bool:
        return "@" in info.text

    def find(self, text: str) -> list[Finding]:
        """The matches of :attr:`pattern` that ``finditer`` would find, looked for from each
        ``@`` instead of at every word: a match begins where the run of local-part characters
        (and dots) before its ``@`` begins (the look-behind forbids any later start), so the
        run is measured backwards and ``pattern.match`` tried there once."""
        at = text.find("@")
        if at < 0:
            return []
        out = []
        resume = 0  # where finditer would search on: the end of the previous match
        match, finding = self.pattern.match, self.finding
        while at >= 0:
            run = _RUN_BACK.match(text[max(0, at - _BACK):at][::-1]).end()
            if run == _BACK:
                return RegexDetector.find(self, text)  # a run longer than the window: scan it all
            start = at - run
            if start >= resume:
                m = match(text, start)
                if m is not None:
                    resume = m.end()
                    f = finding(m)
                    if f is not None:
                        out.append(f)
            at = text.find("@", max(at + 1, resume))
        return out

    def validate(self, m: re.Match) -> bool:
        return len(m.group("local")) <= 64 and m.end() - m.start() <= 254

    def canonical(self, value: str) -> str:
        return unicodedata.normalize("NFC", value).strip().lower()

    def format_preserving(self, value: str, encrypt: Encrypt) -> str:
        """Encrypt the letters and digits of the local part and domain, keeping ``@``, dots,
        ``_ % + -`` and the top-level domain; the TLD is encrypted too only when the rest holds
        fewer than 4 letters/digits (FF1's minimum domain for 62 symbols)."""
        dot = value.rfind(".")
        head, tld = value[:dot], value[dot:]
        if dot > 0 and sum(c.isascii() and c.isalnum() for c in head) >= 4:
            return Detector.format_preserving(self, head, encrypt) + tld
        return Detector.format_preserving(self, value, encrypt)
