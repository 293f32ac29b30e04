"""``find_all``: run detectors over a text and return resolved, non-overlapping findings.

Steps of :class:`Scanner` (one per detector set):

1. **Fold variant characters** (:func:`~.base.fold_variants`): non-ASCII decimal digits
   (full-width ``１``, Arabic-Indic ``١`` …) and full-width Latin letters are searched as their
   ASCII forms, one character for one, so spans index the original text. For a non-ASCII text
   the pre-scan below looks for them in the same pass; only a text that holds one is folded.
2. **One pre-scan for every pattern detector** (:data:`~.base.TOKEN`): each ASCII letter/digit
   run that starts with a digit or a capital letter and holds a digit early is looked up, by
   first character and length, in a table built from the detectors'
   :attr:`~.base.RegexDetector.starts` (with the character after the run and the run's second
   character where a start names them); only the detectors whose shapes fit are tried there,
   with ``pattern.match`` at the run (or at a declared offset before it, ``+86``), then
   :meth:`~.base.RegexDetector.finding` validates. Per detector the candidates are tried left to
   right and a candidate inside an earlier match is skipped, exactly as ``finditer`` would, so the
   findings are those of :meth:`~.base.Detector.find` on the whole text. A text without such a
   run (most prose) costs one regular-expression scan for all of them.
3. Detectors without ``starts`` (e-mail, IPv6, licence plates, ``phone``) run :meth:`find` on
   texts that contain their ``trigger`` and pass their :meth:`~.base.Detector.prefilter`
   (``@``; ``::`` or six ``:``; non-ASCII text).
4. Drop findings inside URL hosts/paths (:mod:`.urls`), merge overlaps (:mod:`.overlap`).

Pure function of its inputs; no I/O, no Kafka. :func:`find_all` keeps a small cache of scanners
per detector tuple. Throughput against Presidio: ``loadtests/bench_detect.py``.
"""
from __future__ import annotations

import re
from typing import Sequence

from .base import LONG, TOKEN, VARIANTS, Detector, Finding, RegexDetector, fold_variants
from .overlap import resolve_overlaps
from .urls import drop_url_path_findings

_RUN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCAN = re.compile("[0-9A-Z" + VARIANTS.pattern[1:-1] + "](?:(?<=[0-9A-Z])" + TOKEN.pattern[len("[0-9A-Z]"):]
                   + "|(?<![0-9A-Z]))")
""":data:`~.base.TOKEN` or a single character that :data:`~.base.VARIANTS` matches (a variant
digit), in one pass: most non-ASCII texts then need no separate search for variant digits."""
assert TOKEN.pattern.startswith("[0-9A-Z]")


def _dispatch_table(dets: Sequence[RegexDetector]) -> dict[str, list]:
    """``{first character: [entries for run length 0 .. LONG]}``; an entry is None or a tuple of
    ``(slot, pattern.match, finding, follow, second, offsets)`` (``slot`` indexes ``dets``)."""
    rows: dict[str, list] = {}
    for slot, d in enumerate(dets):
        for st in d.starts:
            for c in st.first:
                if c not in _RUN_CHARS:
                    raise ValueError(f"{d.name}: a pre-scan run starts with a digit or capital, not {c!r}")
                row = rows.setdefault(c, [None] * (LONG + 1))
                for n in st.lengths:
                    if not 1 <= n <= LONG:
                        raise ValueError(f"{d.name}: start length {n} outside 1..{LONG}")
                    if st.second is not None and n < 2:
                        raise ValueError(f"{d.name}: a second character needs runs of 2 or more")
                    item = (slot, d.pattern.match, d.finding, st.follow, st.second, tuple(st.offsets))
                    row[n] = (row[n] or ()) + (item,)
    return rows


class Scanner:
    """A fixed detector set, prepared for the record path: ``scanner(text) -> list[Finding]``
    (same result as :func:`find_all` with these detectors; spans index ``text``)."""

    __slots__ = ("detectors", "_rows", "_nslots", "_scanned", "_exempt")

    def __init__(self, detectors: Sequence[Detector]):
        self.detectors = tuple(detectors)
        tokened = [d for d in self.detectors if isinstance(d, RegexDetector) and d.starts]
        self._rows = _dispatch_table(tokened)
        self._nslots = len(tokened)
        self._scanned = tuple(
            # the trigger substring (a necessary condition of RegexDetector.find) is tested inline;
            # a prefilter of the detector's own is called after it
            (d.trigger if isinstance(d, RegexDetector) else None,
             None if type(d).prefilter is RegexDetector.prefilter else d.prefilter, d.find)
            for d in self.detectors if d not in tokened)
        self._exempt = frozenset(d.name for d in self.detectors if d.report_in_url_path)

    def _prescan(self, text: str, scan: re.Pattern) -> list[Finding] | None:
        """Findings of the pre-scanned detectors; None when ``scan`` meets a variant character
        (the caller folds the text and scans again with :data:`~.base.TOKEN`)."""
        found: list[Finding] = []
        rows = self._rows
        last = None  # per slot: end of that detector's previous regex match
        n = len(text)
        for m in scan.finditer(text):
            s, e = m.span()
            c = text[s]
            row = rows.get(c)
            if row is None:
                if c < "\x80":
                    continue
                return None  # a variant digit
            k = e - s
            entry = row[k] if k < LONG else row[LONG]
            if entry is None:
                continue
            for slot, match, finding, follow, second, offsets in entry:
                if follow is not None and (e >= n or text[e] not in follow):
                    continue
                if second is not None and text[s + 1] not in second:
                    continue
                if last is None:
                    last = [0] * self._nslots
                for off in offsets:
                    p = s + off
                    if p < last[slot]:
                        continue
                    mm = match(text, p)
                    if mm is not None:
                        last[slot] = mm.end()
                        f = finding(mm)
                        if f is not None:
                            found.append(f)
        return found

    def __call__(self, text: str) -> list[Finding]:
        if not self._rows:
            found: list[Finding] = []
            if not text.isascii():
                text = fold_variants(text)
        elif text.isascii():
            found = self._prescan(text, TOKEN)
        else:
            found = self._prescan(text, _SCAN)
            if found is None:
                text = fold_variants(text)
                found = self._prescan(text, TOKEN)
        for trigger, prefilter, find in self._scanned:
            if trigger is not None and trigger not in text:
                continue
            if prefilter is not None and not prefilter(text):
                continue
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
_last: tuple = ((), Scanner(()))  # (detector tuple, its scanner): one set called in a loop; rebound whole


def find_all(text: str, detectors: Sequence[Detector]) -> list[Finding]:
    """Findings of ``detectors`` in ``text``: sorted by ``start``, non-overlapping, each span
    validated by its detector (``str`` indexes into ``text``, end exclusive). Non-ASCII digits and
    full-width letters are read as their ASCII forms (see :class:`Scanner`). Empty list when
    nothing is found.
    """
    global _last
    last = _last
    if detectors is last[0]:
        return last[1](text)
    key = tuple(detectors)
    sc = _CACHE.get(key)
    if sc is None:
        if len(_CACHE) > 64:
            _CACHE.clear()
        sc = _CACHE[key] = Scanner(key)
    if type(detectors) is tuple:
        _last = (detectors, sc)
    return sc(text)
