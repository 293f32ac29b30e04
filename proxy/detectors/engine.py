"""``find_all``: run detectors over a text and return resolved, non-overlapping findings.

Steps: every detector's :meth:`~.base.Detector.find` (each skips texts without its trigger
characters), drop findings inside URL hosts/paths (:mod:`.urls`), merge overlaps
(:mod:`.overlap`). Pure function of its inputs; no I/O, no Kafka.
"""
from __future__ import annotations

from typing import Sequence

from .base import Detector, Finding
from .overlap import resolve_overlaps
from .urls import drop_url_path_findings


def find_all(text: str, detectors: Sequence[Detector]) -> list[Finding]:
    """Findings of ``detectors`` in ``text``: sorted by ``start``, non-overlapping, each span
    validated by its detector (``str`` indexes, end exclusive). Empty list when nothing is found.
    """
    found: list[Finding] = []
    for d in detectors:
        r = d.find(text)
        if r:
            found.extend(r)
    if not found:
        return found
    if "://" in text or "www." in text:
        exempt = frozenset(d.name for d in detectors if d.report_in_url_path)
        found = drop_url_path_findings(text, found, exempt)
    if len(found) > 1:
        found = resolve_overlaps(found)
    return found
