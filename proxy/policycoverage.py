"""``dpp coverage``: does any validated personal value still leave in clear under a policy?

:func:`coverage` runs a route over sample record values on the reference path
(:meth:`CompiledRoute.process_record`) with test keys (:func:`proxy.policytest.compile_for_tests`:
the policy's key sources are never read), then runs every registered detector
(:mod:`proxy.detectors`) over every string (and long number) of the *protected output*, through
:class:`proxy.scan.RecordScan`. A finding is a leak: a value that a validating detector accepts
(a Luhn-valid card, a resident id with its check character, a mobile number of a real range ...)
in a field path the policy lets out, array indexes generalised to ``[*]``.

Not leaks, because they are ciphertext that validates by chance (an FF1 card number is Luhn-valid
one time in ten): the values a ``fpe``, ``tokenize`` or ``pseudonymize`` rule wrote, and, in a
``detect`` field with ``replace: fpe``, findings of the kinds that rule replaces. Masked and
redacted values are scanned: a mask that keeps too much leaks.

Reports carry paths, detector names and counts, never a value. No Kafka here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from .policy.compiler import BLOCK, SINK, CompiledRoute, Outcome
from .policy.paths import WILDCARD, PathSyntaxError, compile_visit, format_path, overlap, parse_path
from .scan import RecordScan

CIPHERTEXT_ACTIONS = ("fpe", "tokenize", "pseudonymize")
"""Rule actions whose output is keyed ciphertext (or a keyed digest), excluded from the scan."""


def general_path(text: str) -> str:
    """A field path with array indexes generalised: ``orders[0].card`` → ``orders[*].card``.
    Raises :class:`PathSyntaxError` for a path that does not parse."""
    return format_path(tuple(WILDCARD if isinstance(s, int) else s for s in parse_path(text)))


def selects(pattern: tuple, path: tuple) -> bool:
    """Whether a parsed field path (``[*]``, ``*``, ``**``, ``{a,b}`` allowed) selects the scanned
    output path ``path`` (keys and ``[*]``: :func:`general_path` spelling, parsed)."""
    return pattern == path or overlap(pattern, path)[0]


@dataclass
class Leak:
    """One detector in one output field path: ``records`` (at the sink) holding it, ``findings``
    in all, ``share`` = records / records at the sink (0..1), ``allowed`` (named by ``--allow``)."""

    path: str
    detector: str
    records: int
    findings: int
    share: float
    allowed: bool = False


@dataclass
class CoverageReport:
    """Result of :func:`coverage`: counts of ``records`` read, ``sink`` (protected output scanned),
    ``blocked``, ``dead_letter``; ``leaks`` (allowed ones included, flagged), ``detectors`` run."""

    route: str
    records: int = 0
    sink: int = 0
    blocked: int = 0
    dead_letter: int = 0
    leaks: list[Leak] = field(default_factory=list)
    detectors: list[str] = field(default_factory=list)

    @property
    def leaking(self) -> list[Leak]:
        """Leaks not excepted by ``--allow``."""
        return [lk for lk in self.leaks if not lk.allowed]

    def to_dict(self) -> dict:
        """JSON-ready report (no values)."""
        return {"route": self.route, "records": self.records, "sink": self.sink, "blocked": self.blocked,
                "dead_letter": self.dead_letter, "detectors": self.detectors, "clear": bool(self.leaking),
                "leaks": [{"path": lk.path, "detector": lk.detector, "records": lk.records, "findings": lk.findings,
                           "share": round(lk.share, 4), "allowed": lk.allowed} for lk in self.leaks]}


def _blank(c: Any, k: Any) -> None:
    c[k] = None  # the scan skips nulls


def coverage(route: CompiledRoute, values: Iterable[bytes | None], *, regions: Iterable[str] = (),
             allow: Iterable[str] = ()) -> CoverageReport:
    """Run ``route`` over raw record ``values`` (JSON bytes) and scan the protected output with every
    detector (``regions``: the ``phone`` detector's national numbering plans, ISO 3166-1 alpha-2).
    ``allow``: field paths (``[*]`` or indexes, wildcards: ``*.note``) whose findings are accepted exceptions.

    Raises ``PathSyntaxError`` for an ``allow`` path that does not parse and ``ValueError`` for an
    unknown region; never raises for a bad record (it is counted as dead-lettered)."""
    scan = CoverageScan(route, regions=regions, allow=allow)
    for v in values:
        scan.add(route.process_record(v))
    return scan.finish()


class CoverageScan:
    """:func:`coverage` one outcome at a time, for a caller that reads the outcomes too (``dpp
    diff``): :meth:`add` each :class:`Outcome` ``route`` gave (:meth:`CompiledRoute.process_record`),
    then :meth:`finish`. Same arguments and errors as :func:`coverage`."""

    def __init__(self, route: CompiledRoute, *, regions: Iterable[str] = (), allow: Iterable[str] = ()):
        self._allowed = [parse_path(general_path(a)) for a in allow]
        self._hide = [compile_visit(parse_path(r.field)) for r in route.rules
                      if r.field is not None and r.action in CIPHERTEXT_ACTIONS]
        self._fpe_kinds = [(parse_path(general_path(r.field)), set(r.detectors)) for r in route.rules
                           if r.field is not None and r.action == "detect" and r.replace == "fpe"]
        self._rep = CoverageReport(route=route.name)
        self._scan = RecordScan(regions=regions)

    def add(self, out: Outcome) -> None:
        """Count one outcome; scan its protected value when it reached the sink."""
        rep = self._rep
        rep.records += 1
        if out.kind == BLOCK:
            rep.blocked += 1
        elif out.kind != SINK:
            rep.dead_letter += 1
        elif out.value is not None:
            rep.sink += 1
            obj = orjson.loads(out.value)
            if type(obj) is dict:
                for visit in self._hide:
                    visit(obj, _blank)
            self._scan.add(obj)

    def finish(self) -> CoverageReport:
        """The report of the outcomes added."""
        rep, scan = self._rep, self._scan.finish()
        rep.detectors = scan.detectors
        for fr in scan.fields.values():
            segs = parse_path(fr.path)
            ciphered = {k for p, kinds in self._fpe_kinds if selects(p, segs) for k in kinds}
            ok = any(selects(p, segs) for p in self._allowed)
            for kind, ks in sorted(fr.kinds.items()):
                if kind in ciphered:
                    continue
                rep.leaks.append(Leak(fr.path, kind, ks.records, ks.findings, ks.records / rep.sink if rep.sink else 0.0, ok))
        rep.leaks.sort(key=lambda lk: (lk.allowed, -lk.records, lk.path, lk.detector))
        return rep


def format_report(rep: CoverageReport) -> str:
    """Text report: the counts, one line per leak (``LEAK`` or ``allowed``), and a verdict line."""
    lines = [f"route {rep.route}: {rep.records} record(s): {rep.sink} protected and scanned, {rep.blocked} blocked, "
             f"{rep.dead_letter} dead-lettered"]
    width = max([len(lk.path) for lk in rep.leaks] + [4])
    for lk in rep.leaks:
        lines.append(f"{'allowed' if lk.allowed else 'LEAK':7} {lk.path:{width}}  {lk.detector:15} "
                     f"{lk.records} record(s) ({lk.share:.1%}), {lk.findings} finding(s)")
    paths = sorted({lk.path for lk in rep.leaking})
    lines.append(f"{len(paths)} field path(s) let personal values out in clear: {', '.join(paths)}" if paths
                 else "no personal value leaves in clear")
    return "\n".join(lines)


__all__ = ["CIPHERTEXT_ACTIONS", "CoverageReport", "Leak", "CoverageScan", "coverage", "format_report", "general_path",
           "PathSyntaxError"]
