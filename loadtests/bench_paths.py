#!/usr/bin/env python
"""Micro-benchmark: the batch path on Debezium change events, rules written with an alternation
(``{before,after}.email``) against the same rules written out twice (``before.email``,
``after.email``) and against ``*.email`` (the reference step per rule). Records per CPU-second.

Not a test.  Run from the repository root::

    python loadtests/bench_paths.py [--records 20000] [--repeat 5]      # DPP_NATIVE=0: pure Python

Four value rules per side (mask, pseudonymize, mask, redact) on 20,000 update events (both sides
set, ~0.4 KB); best of ``--repeat`` ``protect_batch`` calls on one compiled route.
"""
from __future__ import annotations

import argparse
import time

import orjson

from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy_text

FIELDS = [("name", "action: mask, keep_first: 1"), ("email", "action: pseudonymize, key: k, length: 24"),
          ("mobile", "action: mask, keep_first: 3, keep_last: 4"), ("note", "action: redact, value: x")]
HEAD = """version: 1
name: bench-paths
keys: {k: {source: env, name: K}, dlq: {source: env, name: DLQ}}
routes:
  - {name: r, source: a, sink: b, dead_letter: c, dead_letter_key: dlq, key: {format: string}, rules: [%s]}
"""
ENV = {"K": "11" * 32, "DLQ": "22" * 32}


def policy(style: str) -> str:
    if style == "explicit":  # a shared domain: the same binding on both sides, as one rule has
        rules = [f'{{field: "{side}.{f}", {a}' + (f", domain: {f}}}" if "key:" in a else "}")
                 for f, a in FIELDS for side in ("before", "after")]
    else:
        spell = "{before,after}" if style == "alternation" else "*"
        rules = [f'{{field: "{spell}.{f}", {a}}}' for f, a in FIELDS]
    return HEAD % ", ".join(rules)


def events(n: int) -> list[bytes]:
    def row(i: int) -> dict:
        return {"id": i, "name": "Li Na", "email": f"u{i}@example.com", "mobile": "13900001111", "note": "n",
                "segment": "gold"}
    return [orjson.dumps({"before": row(i), "after": row(i), "op": "u", "ts_ms": 1700000000000,
                          "source": {"connector": "postgresql", "db": "crm", "table": "customers"}})
            for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    values = events(args.records)
    for style in ("explicit", "alternation", "any-key"):
        route = compile_policy(load_policy_text(policy(style), "bench.yaml"), environ=ENV).route()
        best = float("inf")
        for _ in range(args.repeat):
            t = time.process_time()
            route.protect_batch(values)
            best = min(best, time.process_time() - t)
        print(f"{style:12s} {route.record_path:7s} {len(values) / best:10,.0f} records/CPU-s")


if __name__ == "__main__":
    main()
