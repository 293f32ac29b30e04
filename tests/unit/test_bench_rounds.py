"""The benchmark's rounds and statistics (loadtests/rounds.py) and the peer rows' CPU reading
(loadtests/peer.py: /proc/PID/stat)."""
from __future__ import annotations

import os

import pytest

from loadtests.peer import jvm_cpu_seconds, proc_cpu_seconds
from loadtests.rounds import Spread, interleave, spread, summarize, us_per_record


@pytest.mark.parametrize("plan, rounds, expected", [
    (["a", "b"], 1, [(1, "a"), (1, "b")]),
    (["a", "b", "k0"], 2, [(1, "a"), (1, "b"), (1, "k0"), (2, "a"), (2, "b"), (2, "k0")]),
    ([], 3, []),
])
def test_interleave(plan, rounds, expected):
    assert interleave(plan, rounds) == expected


def test_interleave_rejects_no_round():
    with pytest.raises(ValueError):
        interleave(["a"], 0)


@pytest.mark.parametrize("values, expected", [
    ([3, 1, 2], Spread(1, 2, 3, 3)),
    ([4, 1], Spread(1, 2.5, 4, 2)),
    ([None, 5, None], Spread(5, 5, 5, 1)),
    ([None], None),
    ([], None),
])
def test_spread(values, expected):
    assert spread(values) == expected


def run(key, rnd, cpu_s, records=1000, ok=True, **more):
    r = {"key": key, "label": key, "kind": "raw" if key == "a" else "dpp", "round": rnd, "ok": ok,
         "records": records, "cpu_s": cpu_s, "records_per_cpu_s": round(records / cpu_s) if ok else None,
         "records_per_s": 100 * rnd, "peak_rss_mb": 10.0 * rnd}
    r.update(more)
    if not ok:
        r["error"] = "RuntimeError: boom"
    return r


@pytest.mark.parametrize("runs, key, per_cpu, us, ratio", [
    # ratio per round then its median: rounds give 0.5, 0.25, 0.5 -> 0.5 (not 5000/4000 of the medians)
    ([run("a", 1, 0.1), run("b", 1, 0.2), run("a", 2, 0.05), run("b", 2, 0.2), run("a", 3, 0.1), run("b", 3, 0.2)],
     "b", (5000, 5000, 5000), (200.0, 200.0, 200.0), (0.25, 0.5, 0.5)),
    ([run("a", 1, 0.1), run("a", 2, 0.2), run("a", 3, 0.4)],
     "a", (2500, 5000, 10000), (100.0, 200.0, 400.0), (1.0, 1.0, 1.0)),
    # a failed round is left out of the figures; the reference failing in a round drops that round's ratio
    ([run("a", 1, 0.1), run("b", 1, 0.4), run("a", 2, 0.1, ok=False), run("b", 2, 0.2), run("a", 3, 0.1), run("b", 3, 0.1)],
     "b", (2500, 5000, 10000), (100.0, 200.0, 400.0), (0.25, 0.625, 1.0)),
])
def test_summarize_spreads(runs, key, per_cpu, us, ratio):
    s = {r["key"]: r for r in summarize(runs, {})}[key]
    assert s["ok"]
    assert tuple(s["records_per_cpu_s_spread"][k] for k in ("min", "median", "max")) == per_cpu
    assert tuple(pytest.approx(s["us_per_record_spread"][k]) for k in ("min", "median", "max")) == us
    assert tuple(pytest.approx(s["ratio_to_a_spread"][k]) for k in ("min", "median", "max")) == ratio
    assert s["records_per_cpu_s"] == per_cpu[1] and s["ratio_to_a"] == pytest.approx(ratio[1])


def test_summarize_reference_and_failures():
    runs = [run("a200", 1, 0.1), run("d", 1, 0.4), run("a", 1, 0.05), run("x", 1, 1, ok=False), run("x", 2, 1, ok=False)]
    rows = summarize(runs, {"d": "a200"})
    assert [r["key"] for r in rows] == ["a200", "d", "a", "x"]
    by = {r["key"]: r for r in rows}
    assert by["d"]["ratio_to_a"] == pytest.approx(0.25)          # to a200, not to a
    assert by["x"]["ok"] is False and by["x"]["error"] == "RuntimeError: boom"
    assert by["x"]["failed_rounds"] == [1, 2]
    assert by["d"]["peak_rss_mb"] == 10.0 and by["d"]["records_per_s"] == 100


@pytest.mark.parametrize("r, expected", [
    ({"ok": True, "cpu_s": 0.5, "records": 100_000}, 5.0),
    ({"ok": False, "cpu_s": 0.5, "records": 100_000}, None),
    ({"ok": True, "cpu_s": None, "records": 100_000}, None),
    ({"ok": True, "cpu_s": 0.5, "records": 0}, None),
])
def test_us_per_record(r, expected):
    assert us_per_record(r) == expected


@pytest.mark.parametrize("line, ticks, expected", [
    ("123 (java) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 40 0 1000 1 1", 100, 3.0),
    ("77 (a) b) (c) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 1 1", 10, 1.0),
])
def test_proc_cpu_seconds(line, ticks, expected):
    assert proc_cpu_seconds(line, ticks) == pytest.approx(expected)


def test_proc_cpu_seconds_rejects_other_text():
    with pytest.raises(ValueError):
        proc_cpu_seconds("1 (x) S 2 3", 100)


def test_jvm_cpu_seconds_of_this_process_grows():
    before = jvm_cpu_seconds(os.getpid())
    x = 0
    for i in range(3_000_000):
        x += i * i
    assert jvm_cpu_seconds(os.getpid()) > before


def _row(v):
    return {"ok": True, "records_per_cpu_s": v}


@pytest.mark.parametrize("rows, target, met", [
    ({"b": _row(300_000), "ke": _row(250_000)}, "(b) >= Kroxylicious with RecordEncryption (ke)", True),
    ({"b": _row(200_000), "ke": _row(250_000)}, "(b) >= Kroxylicious with RecordEncryption (ke)", False),
    ({"b": _row(200_000)}, "(b) >= Kroxylicious with RecordEncryption (ke)", None),
    ({"b": _row(300_000), "a'": _row(500_000)}, "(b) >= 0.6 of (a'), the native pass-through", True),
    ({"b": _row(290_000), "a'": _row(500_000)}, "(b) >= 0.6 of (a'), the native pass-through", False),
    ({"b": _row(100_000), "c": _row(59_000)}, "(c) >= 0.6 of (b)", False),
    ({"b": _row(250_000), "b0": _row(100_000)}, "(b) >= 2.5x the baseline code's (b0, --baseline-src)", True),
    ({"b": _row(240_000), "b0": {"ok": False}}, "(b) >= 2.5x the baseline code's (b0, --baseline-src)", None),
    ({"b": _row(100_000), "d": _row(50_000)}, "(d) >= 0.5 of (b)", True),
])
def test_issue_targets_are_ratios_within_the_run(rows, target, met):
    from loadtests.bench import check_targets
    got = {name: ok for name, ok, _ in check_targets(rows, None)}
    assert got[target] is met
