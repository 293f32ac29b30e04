"""Resolve overlapping findings before anything is replaced, so no fragment is left behind.

Findings that overlap (directly or through a chain) form one cluster; each cluster becomes a
single finding spanning the union of its members, labelled with the member that wins: the
longest span first (an e-mail address that contains a mobile number is an e-mail address), then
the highest detector priority (the more specific, better validated kind: a resident ID beats a
card number on the same 18 digits, ``cn_mobile`` beats the generic ``phone``), then the earliest
start. Replacing the union
(instead of only the winner's span) guarantees that no character any detector validated stays
in clear, e.g. when an e-mail address contains a mobile number, or a card number and a
phone number share digits.
"""
from __future__ import annotations

from .base import Finding, new_finding


def _key(f: Finding):
    return (f.end - f.start, f.priority, -f.start)


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Non-overlapping findings sorted by ``start`` (see module doc). ``O(n log n)``."""
    n = len(findings)
    if n <= 1:
        return list(findings)
    fs = sorted(findings)
    out: list[Finding] = []
    best = fs[0]
    start, end = best.start, best.end
    for i in range(1, n):
        f = fs[i]
        if f.start < end:
            if _key(f) > _key(best):
                best = f
            if f.end > end:
                end = f.end
            continue
        out.append(best if best.start == start and best.end == end
                   else new_finding((start, end, best.detector, best.priority)))
        best, start, end = f, f.start, f.end
    out.append(best if best.start == start and best.end == end
               else new_finding((start, end, best.detector, best.priority)))
    return out
