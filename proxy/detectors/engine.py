"""``find_all``: run detectors over a text and return resolved, non-overlapping findings.

Steps: every detector's :meth:`~.base.Detector.find` (skipped when
:meth:`~.base.Detector.possible` says the text cannot hold its kind, judged from the text's
digit runs computed once in :class:`~.base.TextInfo`; each also skips texts without its trigger
characters), drop findings inside URL hosts/paths (:mod:`.urls`), merge overlaps
(:mod:`.overlap`). Pure function of its inputs; no I/O, no Kafka.

:class:`Scanner` binds a detector set once (the ``detect`` transform builds one per rule);
:func:`find_all` keeps a small cache of scanners per detector tuple.
"""
from __future__ import annotations

from typing import Sequence

from .base import Detector, Finding, TextInfo
from .overlap import resolve_overlaps
from .urls import drop_url_path_findings


class Scanner:
    """A fixed detector set, prepared for the record path: ``scanner(text) -> list[Finding]``
    (same result as :func:`find_all` with these detectors)."""

    __slots__ = ("detectors", "_steps", "_exempt")

    def __init__(self, detectors: Sequence[Detector]):
        self.detectors = tuple(detectors)
        self._steps = tuple((d.possible, d.find) for d in self.detectors)
        self._exempt = frozenset(d.name for d in self.detectors if d.report_in_url_path)

    def __call__(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        info = TextInfo(text)
        for possible, find in self._steps:
            if possible(info):
                r = find(text)
                if r:
                    found += r
        if not found:
            return found
        if "://" in text or "www." in text:
            found = drop_url_path_findings(text, found, self._exempt)
        if len(found) > 1:
            found = resolve_overlaps(found)
        return found

    def __repr__(self) -> str:
        return f"Scanner({[d.name for d in self.detectors]})"


_CACHE: dict[tuple, Scanner] = {}


def find_all(text: str, detectors: Sequence[Detector]) -> list[Finding]:
    """Findings of ``detectors`` in ``text``: sorted by ``start``, non-overlapping, each span
    validated by its detector (``str`` indexes, end exclusive). Empty list when nothing is found.
    """
    key = tuple(detectors)
    sc = _CACHE.get(key)
    if sc is None:
        if len(_CACHE) > 64:
            _CACHE.clear()
        sc = _CACHE[key] = Scanner(key)
    return sc(text)
