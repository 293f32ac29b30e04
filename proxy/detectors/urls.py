"""URLs in free text: digits in a URL's host or path name resources, not people.

``https://item.example.com/100012043978.html`` or ``https://shop.example/orders/6222021234567890128``
hold numbers that can pass a detector's checks by chance; findings lying entirely inside the
scheme, host or path of a URL are dropped, unless the detector says otherwise
(``Detector.report_in_url_path``, true for ``email``). The query string and the fragment
(``?mobile=13900001111``) are still searched: that is where personal data leaks into URLs.
"""
from __future__ import annotations

import re
from bisect import bisect_right

from .base import Finding

URL = re.compile(r"[A-Za-z](?:(?<![A-Za-z0-9+\-][A-Za-z])[A-Za-z0-9+.\-]{1,15}+://|(?<=w)(?<![A-Za-z0-9.]w)ww\.)"
                 r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+")
# (a scheme not after [A-Za-z0-9+-], or "www." not after [A-Za-z0-9.]; written to start with its
# first letter so the regex engine can skip to letters, the scheme run possessive: it holds no ":")
"""Scheme URLs and ``www.`` hosts: RFC 3986 characters only, so a URL ends at white space,
quotes, angle brackets and any non-ASCII character (CJK text right after a URL is not part of it)."""

_TRIGGERS = ("://", "www.")


def url_path_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every URL's scheme+host+path part (up to its first ``?`` or ``#``)."""
    if not any(t in text for t in _TRIGGERS):
        return []
    spans = []
    for m in URL.finditer(text):
        s = m.group()
        cut = len(s)
        for ch in "?#":
            i = s.find(ch)
            if 0 <= i < cut:
                cut = i
        spans.append((m.start(), m.start() + cut))
    return spans


def drop_url_path_findings(text: str, findings: list[Finding], exempt: frozenset[str]) -> list[Finding]:
    """``findings`` without those lying inside a URL's scheme/host/path, except detectors in ``exempt``."""
    spans = url_path_spans(text)
    if not spans:
        return findings
    starts = [s for s, _ in spans]
    out = []
    for f in findings:
        if f.detector not in exempt:
            i = bisect_right(starts, f.start) - 1
            if i >= 0 and f.end <= spans[i][1]:
                continue
        out.append(f)
    return out
