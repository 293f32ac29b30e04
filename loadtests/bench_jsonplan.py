"""Micro-benchmark of the JSON record path in C (``proxy._native.JsonPlan``, issue 13): CPU µs per
record of ``CompiledRoute.protect_batch`` for the benchmark policies (b) (``b-no-fpe.yaml``) and
(c) (``c-two-ff1.yaml``) on the generated records of :mod:`loadtests.bench_engine`, with the plan (``native-json``), without it
(``DPP_NATIVE_JSON=0``: the generated batch path with ``proxy._native.Plan``) and without the C
accelerator (``DPP_NATIVE=0``), interleaved in each of ``--rounds`` rounds.

::

    python -m loadtests.bench_jsonplan [--records 20000] [--rounds 5] [--size 0.5k]

Reports min / median / max over the rounds, the share of records the plan handed back to the
batch path, (c)/(b) in records per CPU-second, and the load average (``os.getloadavg``) before
and after.
"""
from __future__ import annotations

import os
import statistics
import sys

from .bench_engine import interleaved, print_rounds
from .common import POLICIES, engine_bench_args

PATHS = {"native-json": {"DPP_NATIVE": "1", "DPP_NATIVE_JSON": "1"},
         "native": {"DPP_NATIVE": "1", "DPP_NATIVE_JSON": "0"},
         "python": {"DPP_NATIVE": "0", "DPP_NATIVE_JSON": "0"}}


def handed_back(policy, values: list[bytes]) -> float:
    """Share of ``values`` the route's JsonPlan hands back (1.0 when the route has no plan)."""
    from proxy.policy.compiler import compile_policy
    from proxy.policy.loader import load_policy
    os.environ.update(PATHS["native-json"])
    route = compile_policy(load_policy(policy)).route()
    if route.json_plan is None:
        return 1.0
    out = route.json_plan.rewrite_batch(values)[0]
    return sum(r is None for r in out) / len(values)


def main(argv: list[str] | None = None) -> int:
    a, data = engine_bench_args("python -m loadtests.bench_jsonplan", __doc__, 5, argv)
    rows = {"(b)": POLICIES / "b-no-fpe.yaml", "(c)": POLICIES / "c-two-ff1.yaml"}
    got, *load = interleaved(rows, PATHS, data, a.rounds)
    print_rounds(got, a, load, 4, 12)
    med = {k: statistics.median(v) for k, v in got.items()}
    for row, policy in rows.items():
        print(f"  {row} native-json / native: {med[(row, 'native')] / med[(row, 'native-json')]:.2f}x "
              f"(records per CPU-second); handed back by the plan: {handed_back(policy, data):.4%} of the records")
    for path in PATHS:
        print(f"  {path}: (c)/(b) = {med[('(b)', path)] / med[('(c)', path)]:.2f} (records per CPU-second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
