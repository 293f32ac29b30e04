"""``dpp run --workers 1`` vs ``dpp run --workers 2`` (one consumer group), on this machine.

::

    python -m loadtests.scaleout [--records 200000] [--rounds 3] [--policy loadtests/policies/b-no-fpe.yaml] [--partitions 6]

In each of ``--rounds`` rounds, ``--workers 1`` and then ``--workers 2`` (interleaved; each with a
fresh consumer group and sink): start ``dpp run --workers N`` on an empty source topic, wait until
the group has split the partitions (every worker logged "partitions assigned"), then produce
``--records`` records as fast as possible and wait until the sink holds every expected record.
Reports wall records/s (from the first record produced to the last acknowledged in the sink) and
records per CPU-second (CPU summed over the supervisor and its worker processes), min / median /
max over the rounds. The producer runs in this process during the first second or so of each
run, the same way for both.

Why two workers do not double the throughput on a 2-core machine: the broker (a JVM) and the
producer need CPU too, so two busy Python workers compete with them for the same two cores; the
CPU cost per record stays the same (a worker is single-threaded, the records are independent),
so what scaling out buys here is at most the share of the second core the rest leaves free.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson

from .common import (DEFAULT_BOOTSTRAP, POLICIES, RESULTS, SIZES, Dataset, TopicWatch, create_topics, delete_topics,
                     ensure_key_env, load_average, produce_payloads, unique_prefix)
from .harness import dpp_contender, start


def _assigned_workers(text: str) -> set:
    """Workers (the ``worker`` field; ``None`` for a single process) that logged "partitions assigned"."""
    out = set()
    for line in text.splitlines():
        if '"partitions assigned"' in line and line.startswith("{"):
            out.add(orjson.loads(line).get("worker"))
    return out


def spread(values: list[float]) -> dict:
    """``{"min", "median", "max"}`` of ``values``, rounded."""
    return {"min": round(min(values)), "median": round(statistics.median(values)), "max": round(max(values))}


def run_workers(n: int, policy: Path, bootstrap: str, data: Dataset, records: int, partitions: int, env: dict,
                workdir: Path, batch_size: int) -> dict:
    """Measure ``n`` workers in one group draining a burst of ``records`` records (see module doc)."""
    pre = unique_prefix(f"so{n}")
    src, sink, dlq, group = f"{pre}.source", f"{pre}.sink", f"{pre}.dlq", f"{pre}.group"
    create_topics(bootstrap, {src: partitions, sink: partitions, dlq: partitions})
    c = dpp_contender("s", f"dpp --workers {n}", policy)
    proc = start(c, bootstrap, src, sink, dlq, group, workdir, env, batch_size, name=f"scaleout-{n}-{pre}",
                 extra=["--workers", str(n)])
    workers = [proc]
    payloads = data.payloads(records)
    expected = data.consenting(records)
    try:
        proc.wait_ready(120)
        deadline = time.monotonic() + 120
        while len(_assigned_workers(proc.text())) < n:  # every worker has partitions
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f"{n} workers did not all get partitions:\n{proc.tail()}")
            time.sleep(0.2)
        time.sleep(2.0)  # let the group settle
        cpu0 = [w.cpu() for w in workers]
        t0 = time.perf_counter()
        produce_payloads(bootstrap, src, payloads)
        watch = TopicWatch(bootstrap, sink)
        while watch.total() < expected:
            if not all(w.alive() for w in workers):
                raise RuntimeError("a worker exited:\n" + "\n".join(w.tail() for w in workers))
            if time.perf_counter() - t0 > 600:
                raise TimeoutError("sink not complete after 600 s")
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        cpu = [w.cpu() - c0 for w, c0 in zip(workers, cpu0)]
        watch.close()
        return {"workers": n, "records": records, "wall_s": round(wall, 3), "records_per_s": round(records / wall),
                "cpu_s": round(sum(cpu), 3), "records_per_cpu_s": round(records / sum(cpu))}
    finally:
        for w in workers:
            w.close()
        delete_topics(bootstrap, [src, sink, dlq])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.scaleout", description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--policy", type=Path, default=POLICIES / "b-no-fpe.yaml")
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    a = ap.parse_args(argv)
    env = ensure_key_env()
    data = Dataset.for_size(a.size)
    load0 = load_average()
    workdir = RESULTS / "logs" / time.strftime("scaleout-%Y%m%d-%H%M%S")
    results = [run_workers(n, a.policy, a.bootstrap, data, a.records, a.partitions, env, workdir, a.batch_size)
               for _ in range(a.rounds) for n in (1, 2)]
    print(f"scale-out, {a.records:,} records of ~{a.size}, policy {a.policy.name}, {a.partitions} partitions, "
          f"{a.rounds} interleaved rounds; load average {load0[0]:.2f} before, {load_average()[0]:.2f} after")
    summary = {}
    for n in (1, 2):
        mine = [r for r in results if r["workers"] == n]
        summary[n] = {"records_per_s": spread([r["records_per_s"] for r in mine]),
                      "records_per_cpu_s": spread([r["records_per_cpu_s"] for r in mine])}
        w, c = summary[n]["records_per_s"], summary[n]["records_per_cpu_s"]
        print(f"  --workers {n}: records/s min {w['min']:,} median {w['median']:,} max {w['max']:,}; "
              f"records/CPU-s min {c['min']:,} median {c['median']:,} max {c['max']:,}")
    one, two = summary[1], summary[2]
    print(f"  two workers / one (medians): {two['records_per_s']['median'] / one['records_per_s']['median']:.2f}x "
          f"records/s, {two['records_per_cpu_s']['median'] / one['records_per_cpu_s']['median']:.2f}x records per "
          "CPU-second")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scaleout-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_bytes(orjson.dumps({"results": results, "summary": {str(k): v for k, v in summary.items()},
                                  "load_before": list(load0), "load_after": list(load_average())},
                                 option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
