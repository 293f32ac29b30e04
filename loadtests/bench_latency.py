"""Added end-to-end latency of dpp over the raw loop at half of (b)'s maximum throughput, per run.

::

    python -m loadtests.bench_latency [--runs 3] [--rate N] [--records 100000] [--seconds 13] [--ab-linger]

First (unless ``--rate`` is given) (b)'s maximum throughput is measured on this machine: row (b)
of ``loadtests.bench`` (the example policy without FPE) draining ``--records`` pre-filled
records. Then ``--runs`` times: the raw confluent-kafka loop (a) and then (b), each on fresh topics
while the generator produces at half that maximum for ``--seconds`` (the first 3 s not counted);
a separate consumer stamps each record at the sink (:func:`loadtests.harness.measure_latency`).
Each run reports p50/p99 of (a) and (b) and what (b) adds at p99 (target: ≤ 20 ms in every run),
plus the load average before and after. ``--ab-linger`` adds, in each run right after (b), the
row (b) with ``--batch-linger fixed`` (always wait up to 5 ms for more records, as before the
adaptive linger), so the two lingers are compared side by side. The JSON goes to
``loadtests/results/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import orjson

from .bench import ROWS_B
from .common import DEFAULT_BOOTSTRAP, RESULTS, SIZES, Dataset, delete_topics, ensure_key_env, load_average
from .harness import RAW, added_latency, fill_source, measure_latency, measure_throughput

ROWS_B_FIXED = dataclasses.replace(ROWS_B, key="b-fixed", label=ROWS_B.label + ", fixed 5 ms linger",
                                   dpp_args=("--batch-linger", "fixed"))

TARGET_ADDED_P99_MS = 20.0


def max_rate(bootstrap: str, size: str, records: int, partitions: int, batch_size: int, env: dict, workdir) -> int:
    """Records/s of row (b) draining ``records`` pre-filled records (wall, first assignment → last ack)."""
    data = Dataset.for_size(size)
    src, nbytes = fill_source(bootstrap, data, records, partitions)
    try:
        row = measure_throughput(ROWS_B, bootstrap, src, partitions, records, nbytes, data.consenting(records),
                                 workdir, env, batch_size)
    finally:
        delete_topics(bootstrap, [src])
    if not row.get("ok"):
        raise RuntimeError(f"row (b) failed: {row.get('error')}")
    return int(row["records_per_s"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.bench_latency", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=None, help="records/s to produce (default: half of (b)'s measured max)")
    ap.add_argument("--records", type=int, default=100_000, help="records of the throughput measurement of (b)")
    ap.add_argument("--seconds", type=float, default=13.0, help="produce time per row and run, the first 3 s not counted")
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    ap.add_argument("--ab-linger", action="store_true", help="also run (b) with --batch-linger fixed in each run")
    a = ap.parse_args(argv)
    env = ensure_key_env()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS / "logs" / f"bench-latency-{stamp}"
    load0 = load_average()
    b_max = None
    if a.rate is None:
        print(f"  (b) maximum throughput over {a.records:,} records …", flush=True)
        b_max = max_rate(a.bootstrap, a.size, a.records, a.partitions, a.batch_size, env, workdir)
    rate = a.rate or int(max(1000, round(b_max / 2, -2)))
    runs = []
    for i in range(a.runs):
        print(f"run {i + 1}/{a.runs}", flush=True)
        r = added_latency(RAW, ROWS_B, a.bootstrap, a.size, rate, a.seconds, workdir, env, a.partitions, a.batch_size)
        if a.ab_linger:
            print(f"  latency ({ROWS_B_FIXED.key}) at {rate:,} records/s for {a.seconds:g} s …", flush=True)
            fx = r[ROWS_B_FIXED.key] = measure_latency(ROWS_B_FIXED, a.bootstrap, a.size, rate, a.seconds, workdir,
                                                         env, a.partitions, a.batch_size)
            if fx.get("ok") and r["a"].get("ok"):
                r["added_p99_fixed_ms"] = round(fx["p99"] - r["a"]["p99"], 2)
        r["load_average"] = list(load_average())
        runs.append(r)
    print(f"added latency of (b) over (a) at {rate:,} records/s"
          + (f" (half of (b)'s max {b_max:,}/s)" if b_max else "") + f", {a.seconds:g} s per row, first 3 s excluded; "
          f"load average {load0[0]:.2f} before, {load_average()[0]:.2f} after")
    met = []
    for i, r in enumerate(runs, 1):
        ra, rb = r["a"], r["b"]
        if "added_p99_ms" not in r:
            print(f"  run {i}: failed: (a) {ra.get('error', 'ok')}, (b) {rb.get('error', 'ok')}")
            met.append(False)
            continue
        ok = r["added_p99_ms"] <= TARGET_ADDED_P99_MS
        met.append(ok)
        print(f"  run {i}: (a) p50 {ra['p50']:.1f} p99 {ra['p99']:.1f} ms; (b) p50 {rb['p50']:.1f} p99 {rb['p99']:.1f} ms; "
              f"added p99 {r['added_p99_ms']:+.1f} ms ({'≤' if ok else '>'} {TARGET_ADDED_P99_MS:g}), "
              f"median-second p99 added {r.get('added_p99_median_second_ms', float('nan')):+.1f} ms; "
              f"load {r['load_average'][0]:.2f}")
        if "added_p99_fixed_ms" in r:
            fx = r[ROWS_B_FIXED.key]
            print(f"         (b) with the fixed linger: p50 {fx['p50']:.1f} p99 {fx['p99']:.1f} ms; "
                  f"added p99 {r['added_p99_fixed_ms']:+.1f} ms")
    print(f"target added p99 ≤ {TARGET_ADDED_P99_MS:g} ms: met in {sum(met)} of {len(met)} runs")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-latency-{stamp}.json"
    out.write_bytes(orjson.dumps({"rate": rate, "b_max": b_max, "runs": runs, "load_before": list(load0),
                                  "load_after": list(load_average())}, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
