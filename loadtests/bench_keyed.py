"""Micro-benchmark of the keyed rules in the policy engine alone (no Kafka): CPU µs per record of
``CompiledRoute.protect_batch`` for a one-rule FF1 policy, a one-rule tokenize (AES-SIV) policy and
the benchmark policies (b) and (c), each with the C accelerator (``proxy._native``) and without it
(``DPP_NATIVE=0``: the transforms' Python closures; FF1 then encrypts per batch).

::

    python -m loadtests.bench_keyed [--records 20000] [--rounds 3] [--size 0.5k]

Rows and paths are interleaved within each of ``--rounds`` rounds; reports min / median / max
over the rounds, the ratio (c)/(b) in records per CPU-second, each keyed rule's own cost (its row
minus a one-rule policy whose field no record has), and the load average before and after. Same records as :mod:`loadtests.bench_engine` (whose ``us_per_record`` it uses).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from .bench_engine import interleaved, print_rounds
from .common import POLICIES, engine_bench_args

ONE_RULE = """version: 1
name: bench-one-{action}
keys:
  k: {{source: env, name: DPP_KEY_FPE}}
  dead-letter: {{source: env, name: DPP_KEY_DEAD_LETTER}}
routes:
  - name: bench
    source: lt.source
    sink: lt.sink
    dead_letter: lt.dlq
    dead_letter_key: dead-letter
    rules:
      - {{field: {field}, action: {action}, key: k}}
"""


def main(argv: list[str] | None = None) -> int:
    a, data = engine_bench_args("python -m loadtests.bench_keyed", __doc__, 3, argv)
    tmp = Path(tempfile.mkdtemp(prefix="dpp-bench-keyed-"))
    rows = {}
    # "no rule matches": a tokenize rule on a field the records lack, the cost of everything but the rule
    for name, field, action in [("fpe", "id_number", "fpe"), ("tokenize", "email", "tokenize"),
                                ("unmatched", "no_such_field", "tokenize")]:
        rows[f"one {name} rule"] = tmp / f"{name}.yaml"
        rows[f"one {name} rule"].write_text(ONE_RULE.format(field=field, action=action))
    rows["(b) b-no-fpe"] = POLICIES / "b-no-fpe.yaml"
    rows["(c) c-two-ff1"] = POLICIES / "c-two-ff1.yaml"
    got, *load = interleaved(rows, {"python": {"DPP_NATIVE": "0"}, "C": {"DPP_NATIVE": "1"}}, data, a.rounds)
    print_rounds(got, a, load, 18, 7)
    for path in ("python", "C"):
        b, c = (statistics.median(got[(r, path)]) for r in ("(b) b-no-fpe", "(c) c-two-ff1"))
        tok, ff1, base = (statistics.median(got[(f"one {r} rule", path)]) for r in ("tokenize", "fpe", "unmatched"))
        print(f"  {path}: (c)/(b) = {b / c:.2f} (records per CPU-second); per record tokenize / fpe = {tok / ff1:.2f}; "
              f"the rule alone (minus the unmatched row): tokenize {tok - base:.2f} µs, fpe {ff1 - base:.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
