#!/usr/bin/env python
"""Micro-benchmark: FF1 (proxy.crypto.ff1) vs pyffx, microseconds per value.

Not a test.  Run from the repository root::

    python loadtests/bench_fpe.py [--values 2000] [--repeat 3] [--lengths 11 16 18]

For each digit length it encrypts the same random sample of ``--values`` decimal
strings with

* ``FF1.encrypt``       -- one call per value (NIST SP 800-38G Rev.1 FF1, AES-128)
* ``FF1.encrypt_many``  -- one batch call for the whole sample
* ``FF1.decrypt``       -- one call per value
* ``pyffx.Integer``     -- legacy codec, ints
* ``pyffx.String``      -- legacy codec, digit strings

and reports the best of ``--repeat`` runs as µs/value, plus the speed-up ratios
pyffx.String / FF1 (single and batch).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import cryptography  # noqa: E402
import pyffx  # noqa: E402

from proxy.crypto.ff1 import FF1  # noqa: E402

DIGITS = "0123456789"


def best_us_per_value(fn, count: int, repeat: int) -> float:
    """Best wall time of ``repeat`` runs of ``fn()``, in µs per value."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=int, default=2000, help="random values per length")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[11, 16, 18])
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    key = os.urandom(16)
    ff1 = FF1(key, DIGITS)
    tweak = b"bench"

    print(f"python {platform.python_version()}  cryptography {cryptography.__version__}  "
          f"pyffx {pyffx.__version__}  |  {args.values} values/length, best of {args.repeat}")
    header = (f"{'digits':>6} | {'FF1 enc':>8} {'FF1 many':>8} {'FF1 dec':>8} | "
              f"{'pyffx Int':>9} {'pyffx Str':>9} | {'Str/enc':>7} {'Str/many':>8} {'Int/enc':>7}")
    print("µs per value (lower is better); ratios = how many times faster FF1 is")
    print(header)
    print("-" * len(header))

    for n in args.lengths:
        texts = ["".join(rng.choice(DIGITS) for _ in range(n)) for _ in range(args.values)]
        ints = [int(t) for t in texts]
        p_int = pyffx.Integer(key, length=n)
        p_str = pyffx.String(key, alphabet=DIGITS, length=n)

        # correctness guard before timing
        cts = ff1.encrypt_many(texts, tweak)
        assert cts[:200] == [ff1.encrypt(t, tweak) for t in texts[:200]]
        assert ff1.decrypt_many(cts, tweak) == texts

        enc, dec = ff1.encrypt, ff1.decrypt
        t_enc = best_us_per_value(lambda: [enc(t, tweak) for t in texts], len(texts), args.repeat)
        t_many = best_us_per_value(lambda: ff1.encrypt_many(texts, tweak), len(texts), args.repeat)
        t_dec = best_us_per_value(lambda: [dec(c, tweak) for c in cts], len(texts), args.repeat)
        t_pint = best_us_per_value(lambda: [p_int.encrypt(i) for i in ints], len(texts), args.repeat)
        t_pstr = best_us_per_value(lambda: [p_str.encrypt(t) for t in texts], len(texts), args.repeat)

        print(f"{n:>6} | {t_enc:>8.2f} {t_many:>8.2f} {t_dec:>8.2f} | "
              f"{t_pint:>9.2f} {t_pstr:>9.2f} | {t_pstr / t_enc:>6.1f}x {t_pstr / t_many:>7.1f}x "
              f"{t_pint / t_enc:>6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
