#!/usr/bin/env python
"""Benchmark: time and peak memory to load and compile a policy of N rules (issue 11: linear load).

Not a test.  Run from the repository root::

    python -m loadtests.bench_policy_load [--rules 1000 5000 25000] [--rounds 3]

Each measurement is a fresh interpreter (``python -c``) that reads a generated policy (the shipped
example policy's keys and one route of N ``mask`` rules on distinct fields ``f{i}.x``), then

* **load**: parse the YAML, validate the schema and the semantic checks (what ``dpp check`` does),
* **compile**: build the route's reference and batch paths (what ``dpp run`` does next),

and reports its peak RSS (``ru_maxrss``, which includes the interpreter, about 35 MB).  Sizes are
interleaved round by round (1k, 5k, 25k, 1k, 5k, …) so that a change in the machine's load hits
every size alike; the table gives min / median / max over the rounds and the time per rule, whose
flatness across sizes is the linearity claim.  The machine's load average is printed with it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEAD = """version: 1
name: load-bench
keys:
  pseudonym:   {source: env, name: DPP_KEY_PSEUDONYM}
  fpe:         {source: env, name: DPP_KEY_FPE}
  dead-letter: {source: env, name: DPP_KEY_DEAD_LETTER}
routes:
  - name: bench
    source: bench.in
    sink: bench.out
    dead_letter: bench.dlq
    dead_letter_key: dead-letter
    key: {format: string}
    unlisted_fields: keep
    rules:
"""

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy
t1 = time.perf_counter()
lp = load_policy(sys.argv[1])
t2 = time.perf_counter()
compile_policy(lp, {k: "00" * 32 for k in ("DPP_KEY_PSEUDONYM", "DPP_KEY_FPE", "DPP_KEY_DEAD_LETTER")})
t3 = time.perf_counter()
print(json.dumps({"load_s": t2 - t1, "compile_s": t3 - t2,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


WILD = ("'*.f{i}'", "'**.f{i}'", "'{{a,b}}.f{i}.x'")
"""Spellings of rule ``i`` among ``write_policy(..., wild_every=N)``'s wildcard rules."""


def write_policy(path: Path, rules: int, wild_every: int = 0) -> None:
    """A policy with one route of ``rules`` mask rules on fields ``f0.x`` … ``f{rules-1}.x``;
    with ``wild_every`` N, every N-th rule is ``*.f{i}``, ``**.f{i}`` or ``{a,b}.f{i}.x`` instead."""
    with path.open("w") as f:
        f.write(HEAD)
        for i in range(rules):
            field = WILD[i // wild_every % 3].format(i=i) if wild_every and i % wild_every == 0 else f"f{i}.x"
            f.write(f"      - {{field: {field}, action: mask, keep_first: 1}}\n")


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def mmm(xs: list[float], fmt: str) -> str:
    return " / ".join(format(x, fmt) for x in (min(xs), statistics.median(xs), max(xs)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=int, nargs="+", default=[1000, 5000, 25000])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    results: dict[int, list[dict]] = {n: [] for n in args.rules}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: Path(tmp) / f"p{n}.yaml" for n in args.rules}
        for n, p in paths.items():
            write_policy(p, n)
        load_before = os.getloadavg()
        for _ in range(args.rounds):
            for n in args.rules:
                results[n].append(measure(paths[n]))
        load_after = os.getloadavg()
    print(f"policy load + compile, {args.rounds} interleaved rounds, min / median / max; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} cores")
    print(f"{'rules':>7}  {'load s':>20}  {'compile s':>20}  {'µs per rule (load+compile, median)':>36}  {'peak RSS MB':>20}")
    for n in args.rules:
        rs = results[n]
        load = [r["load_s"] for r in rs]
        comp = [r["compile_s"] for r in rs]
        total = statistics.median([r["load_s"] + r["compile_s"] for r in rs])
        rss = [r["peak_rss_mb"] for r in rs]
        print(f"{n:>7}  {mmm(load, '.2f'):>20}  {mmm(comp, '.2f'):>20}  {total / n * 1e6:>36.0f}  {mmm(rss, '.0f'):>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
