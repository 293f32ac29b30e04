"""Rounds of the benchmark: every row's throughput run repeated, interleaved, and summarized.

Round 1 runs every row once (a, b, c, ..., k0, ke), then round 2 the same order, and so on
(:func:`interleave`), so a slow minute of a shared machine lands on every row of one round instead of
on all the runs of one row. :func:`summarize` turns the runs (one result dict per row and round,
``round`` 1..N) into one row each: min / median / max over the rounds that succeeded of records per
proxy CPU-second, proxy CPU µs per record and the ratio to the row's reference, the ratio being taken
**within each round** (the row against its reference measured minutes apart at most) and then its
median. The flat fields ``records_per_cpu_s``, ``us_per_record``, ``ratio_to_a``, ``records_per_s``,
``mb_per_s`` and ``cpu_s_per_100k`` of a summary are the medians, ``peak_rss_mb`` the largest.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

MEDIAN_FIELDS = ("records_per_s", "mb_per_s", "cpu_s_per_100k", "wall_s", "cpu_s")
"""Figures of a run whose median over the rounds a summary carries under the same name."""


@dataclass(frozen=True)
class Spread:
    """Min, median and max of one figure over the rounds (``n`` values)."""

    min: float
    median: float
    max: float
    n: int

    def as_dict(self) -> dict:
        return {"min": self.min, "median": self.median, "max": self.max, "n": self.n}


def interleave(plan: Sequence[T], rounds: int) -> list[tuple[int, T]]:
    """``[(round, item)]``: every item of ``plan`` in order, once per round, rounds numbered from 1.
    Raises ``ValueError`` when ``rounds`` < 1."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    return [(r, item) for r in range(1, rounds + 1) for item in plan]


def spread(values: Iterable[float | None]) -> Spread | None:
    """The :class:`Spread` of the values that are not ``None``, or ``None`` when there are none."""
    vs = [v for v in values if v is not None]
    if not vs:
        return None
    return Spread(min(vs), statistics.median(vs), max(vs), len(vs))


def us_per_record(run: Mapping) -> float | None:
    """Proxy CPU µs per record of one run (``cpu_s`` over ``records``), ``None`` when not measured."""
    cpu, n = run.get("cpu_s"), run.get("records")
    if not run.get("ok") or cpu is None or not n:
        return None
    return cpu / n * 1e6


def ratios_in_rounds(runs: Sequence[dict], reference: Mapping[str, str], default: str = "a") -> None:
    """Set ``ratio_to_a`` on every successful run: its records per CPU-second over those of its
    reference row (``reference.get(key, default)``) **in the same round**; a run whose reference did
    not succeed in that round gets none. The reference rows themselves get 1.0."""
    by_round = {(r.get("round"), r["key"]): r for r in runs}
    for r in runs:
        ref = by_round.get((r.get("round"), reference.get(r["key"], default)))
        mine = r.get("records_per_cpu_s")
        theirs = ref.get("records_per_cpu_s") if ref and ref.get("ok") else None
        if r.get("ok") and mine and theirs:
            r["ratio_to_a"] = round(mine / theirs, 3)


def summarize(runs: Sequence[dict], reference: Mapping[str, str], default: str = "a") -> list[dict]:
    """One summary per row key (in the order rows first appear in ``runs``); see the module doc.

    A row none of whose rounds succeeded is ``{"ok": False, "error": <its first error>}``; a row
    with some failed rounds keeps the others and lists the failures under ``failed_rounds``.
    Ratios are computed by :func:`ratios_in_rounds` (``runs`` are updated in place)."""
    ratios_in_rounds(runs, reference, default)
    order: list[str] = []
    by_key: dict[str, list[dict]] = {}
    for r in runs:
        if r["key"] not in by_key:
            order.append(r["key"])
        by_key.setdefault(r["key"], []).append(r)
    out = []
    for key in order:
        rs = by_key[key]
        ok = [r for r in rs if r.get("ok")]
        first = rs[0]
        s: dict = {"key": key, "label": first.get("label"), "kind": first.get("kind"), "rounds": len(rs),
                   "ok": bool(ok), "runs": rs}
        failed = [r.get("round") for r in rs if not r.get("ok")]
        if failed:
            s["failed_rounds"] = failed
        if not ok:
            s["error"] = first.get("error") or first.get("na") or "failed"
            out.append(s)
            continue
        for name, values in (("records_per_cpu_s", [r.get("records_per_cpu_s") for r in ok]),
                             ("us_per_record", [us_per_record(r) for r in ok]),
                             ("ratio_to_a", [r.get("ratio_to_a") for r in ok])):
            sp = spread(values)
            s[f"{name}_spread"] = sp.as_dict() if sp else None
            s[name] = sp.median if sp else None
        if s["records_per_cpu_s"] is not None:
            s["records_per_cpu_s"] = round(s["records_per_cpu_s"])
        for name in MEDIAN_FIELDS:
            sp = spread(r.get(name) for r in ok)
            s[name] = None if sp is None else round(sp.median) if name == "records_per_s" else sp.median
        rss = [r["peak_rss_mb"] for r in ok if r.get("peak_rss_mb") is not None]
        s["peak_rss_mb"] = max(rss) if rss else None
        out.append(s)
    return out
