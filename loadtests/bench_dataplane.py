"""The native data plane decision, measured: rows (a), (a') C and (a'r) Rust, interleaved.

::

    python -m loadtests.bench_dataplane [--records 200000] [--rounds 3] [--size 0.5k] [--bootstrap HOST:PORT]

One source topic filled once; each round runs every contender once, in turn, on it (a fresh
consumer group and sink each time), measured by :mod:`loadtests.harness` (proxy CPU from the
"partitions assigned" line to the last record acknowledged in the sink):

* (a) the raw confluent-kafka Python loop (:mod:`loadtests.passthrough`);
* (a') the same loop in C on librdkafka (``proxy._dataplane``, prototype (C), built by pip install);
* (a'r) the same loop in Rust (prototype (R), ``loadtests/native/rust_dataplane``; skipped unless
  built with maturin).

Prints min / median / max records per proxy CPU-second and CPU µs per record per contender, the
load average before and after, and writes ``loadtests/results/dataplane-<time>.json``. The figures
and the decision are in docs/performance.md, "Native data plane: C or Rust".
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import orjson

from .common import DEFAULT_BOOTSTRAP, RESULTS, SIZES, Dataset, Machine, delete_topics, ensure_key_env, load_average
from .harness import NATIVE, NATIVE_RUST, RAW, fill_source, measure_throughput, native_available


def summary(runs: list[dict]) -> dict:
    """min / median / max of records per CPU-second (and the CPU µs per record of each) over ``runs``."""
    ok = [r["records_per_cpu_s"] for r in runs if r.get("ok") and r.get("records_per_cpu_s")]
    if not ok:
        return {"n": 0}
    return {"n": len(ok), "min": min(ok), "median": round(statistics.median(ok)), "max": max(ok),
            "us_per_record_median": round(1e6 / statistics.median(ok), 2),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs if r.get("ok"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.bench_dataplane", description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000)
    a = ap.parse_args(argv)
    machine = Machine()
    contenders = [RAW] + [c for c in (NATIVE, NATIVE_RUST) if native_available(c) is None]
    for c in (NATIVE, NATIVE_RUST):
        if c not in contenders:
            print(f"  ({c.key}) skipped: {native_available(c)}", flush=True)
    print(f"loadtests.bench_dataplane: {a.records:,} records of ~{a.size}, {a.rounds} rounds of "
          f"{', '.join(f'({c.key})' for c in contenders)}; load average {machine.load_before[0]:.2f} "
          f"{machine.load_before[1]:.2f} {machine.load_before[2]:.2f}", flush=True)
    env = ensure_key_env()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS / "logs" / f"dataplane-{stamp}"
    data = Dataset.for_size(a.size)
    runs: dict[str, list[dict]] = {c.key: [] for c in contenders}
    src, nbytes = fill_source(a.bootstrap, data, a.records, a.partitions)
    try:
        for rnd in range(a.rounds):
            for c in contenders:
                r = measure_throughput(c, a.bootstrap, src, a.partitions, a.records, nbytes, a.records, workdir,
                                       env, a.batch_size, progress=False)
                r.update(round=rnd + 1, load_1min=round(load_average()[0], 2))
                runs[c.key].append(r)
                print(f"  round {rnd + 1} ({c.key}): "
                      + (f"{r['records_per_cpu_s']:,} records/CPU-s, {r['records_per_s']:,} records/s, "
                         f"RSS {r['peak_rss_mb']:.0f} MB, load {r['load_1min']}" if r.get("ok") else r.get("error")),
                      flush=True)
    finally:
        delete_topics(a.bootstrap, [src])
    print()
    head = f"{'row':<5} {'contender':<58} {'min':>9} {'median':>9} {'max':>9} {'µs/rec':>7} {'vs (a)':>7}"
    print(head + "\n" + "-" * len(head))
    sums = {k: summary(v) for k, v in runs.items()}
    base = sums.get(RAW.key, {}).get("median")
    for c in contenders:
        s = sums[c.key]
        if not s["n"]:
            print(f"{c.key:<5} {c.label[:58]:<58} failed: {runs[c.key][-1].get('error')}")
            continue
        ratio = f"{s['median'] / base:.2f}" if base else "n/a"
        print(f"{c.key:<5} {c.label[:58]:<58} {s['min']:>9,} {s['median']:>9,} {s['max']:>9,} "
              f"{s['us_per_record_median']:>7.2f} {ratio:>7}")
    after = load_average()
    print(f"\nrecords per proxy CPU-second over {a.rounds} rounds; load average after: "
          f"{after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"dataplane-{stamp}.json"
    out.write_bytes(orjson.dumps({"command": "python -m loadtests.bench_dataplane " + " ".join(argv or sys.argv[1:]),
                                  "records": a.records, "size": a.size, "machine": machine.as_dict(),
                                  "summary": sums, "runs": runs}, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")
    return 0 if all(s["n"] == a.rounds for s in sums.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
