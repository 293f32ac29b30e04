"""Micro-benchmark of the policy engine alone (no Kafka): CPU µs per record of
``CompiledRoute.protect_batch`` (the engine's path) for the benchmark policies, in this process.

::

    python -m loadtests.bench_engine [--records 20000] [--repeat 5] [--size 0.5k]

Used for before/after figures of hot-path changes (``docs/performance.md``): it isolates the
policy engine (parse, block, rules, serialize, counters) from the Kafka clients. The same data
sets as :mod:`loadtests.bench` (``detect`` runs on 200-character notes). Reports the best of
``--repeat`` runs of CPU time (``time.process_time``), batches of ``--batch`` (default 1000, as in ``dpp run``),
after ``gc.freeze()`` (as ``dpp run``; ``--no-gc-freeze`` to compare). Set ``PYTHONPATH`` to another
checkout's root to measure its ``proxy`` package (before/after figures), and ``DPP_NATIVE=0`` to
measure the generated batch path without the C accelerator.
"""
from __future__ import annotations

import argparse
import sys
import time

from .common import DETECT_NOTE_CHARS, EXAMPLE_POLICY, POLICIES, SIZES, Dataset, ensure_key_env

POLICY_ROWS = [("b", POLICIES / "b-no-fpe.yaml", False), ("c", POLICIES / "c-two-ff1.yaml", False),
               ("d", POLICIES / "d-detect.yaml", True), ("example", EXAMPLE_POLICY, False)]


def us_per_record(policy, values: list[bytes], repeat: int, batch: int = 1000, gc_freeze: bool = True) -> float:
    """Best CPU µs per record of ``protect_batch`` over ``values`` in batches of ``batch``
    (after ``gc.freeze()``, as ``dpp run`` does once started, unless ``gc_freeze`` is false)."""
    import gc
    from proxy.policy.compiler import compile_policy
    from proxy.policy.loader import load_policy
    route = compile_policy(load_policy(policy)).route()
    run = getattr(route, "protect_batch", None) or route.process_batch  # a checkout before protect_batch
    run(values[:batch])  # warm up
    if gc_freeze:
        gc.freeze()
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for i in range(0, len(values), batch):
            run(values[i:i + batch])
        best = min(best, time.process_time() - t)
        route.stats.drain()
    return best / len(values) * 1e6


def interleaved(rows: dict, paths: dict[str, dict[str, str]], values: list[bytes], rounds: int) -> tuple:
    """:func:`us_per_record` of every policy of ``rows`` (name -> policy file) on every path of
    ``paths`` (name -> environment it sets), interleaved within each of ``rounds`` rounds:
    ``({(row, path): [µs per round]}, load average before, after)``."""
    import os
    load0 = os.getloadavg()
    got: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for row, policy in rows.items():
            for path, env in paths.items():
                os.environ.update(env)
                got.setdefault((row, path), []).append(us_per_record(policy, values, 1, gc_freeze=False))
    return got, load0, os.getloadavg()


def print_rounds(got: dict, a, load: tuple, row_w: int, path_w: int) -> None:
    """The table of :func:`interleaved`'s results: min / median / max per row and path."""
    import statistics
    print(f"policy engine only, {a.records} records of {a.size}, batches of 1000, {a.rounds} interleaved rounds, "
          f"load {load[0][0]:.2f} before, {load[1][0]:.2f} after")
    print(f"  {'row':<{row_w}} {'path':<{path_w}} {'min':>7} {'median':>7} {'max':>7}  µs/record   records/CPU-s (median)")
    for (row, path), us in got.items():
        med = statistics.median(us)
        print(f"  {row:<{row_w}} {path:<{path_w}} {min(us):7.2f} {med:7.2f} {max(us):7.2f}              {1e6 / med:>9,.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.bench_engine", description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    ap.add_argument("--only", default="b,c,d,example", help="rows, comma-separated (default %(default)s)")
    ap.add_argument("--no-gc-freeze", action="store_true", help="leave the start-up objects to the collector")
    ap.add_argument("--batch", type=int, default=1000, help="records per protect_batch call (dpp's --batch-size)")
    a = ap.parse_args(argv)
    import os
    os.environ.update(ensure_key_env())
    data = [v for _, v in Dataset.for_size(a.size).payloads(a.records)]
    data_d = [v for _, v in Dataset(DETECT_NOTE_CHARS).payloads(a.records)]
    print(f"policy engine only, {a.records} records, batches of {a.batch}, best of {a.repeat}, "
          f"load {os.getloadavg()[0]:.2f}")
    for key, pol, detect in POLICY_ROWS:
        if key not in a.only.split(","):
            continue
        us = us_per_record(pol, data_d if detect else data, a.repeat, a.batch, not a.no_gc_freeze)
        print(f"  ({key}) {pol.name:<18} {us:7.2f} µs/record  {1e6 / us:>9,.0f} records/CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
