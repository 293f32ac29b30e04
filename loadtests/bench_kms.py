"""Steady-state cost of KMS keys: the policy engine with row (b)'s policy (and the example policy)
once with every key in a KMS and once with the same data keys as plain hex variables, in this
process, alternating, best of ``--repeat``.

::

    python -m loadtests.bench_kms [--records 20000] [--repeat 5] [--rounds 3]

The KMS is moto in server mode (a local stand-in for AWS KMS, started and stopped here): the data
keys are unwrapped once at load, so the record path is the same code with the same key bytes, and
the figures should agree within noise.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

import yaml

from .bench_engine import us_per_record
from .common import EXAMPLE_POLICY, POLICIES, SIZES, Dataset, ensure_key_env, start_moto_server


def variants(policy: Path, url: str, workdir: Path) -> tuple[Path, Path]:
    """(KMS policy, plain policy with the same DEKs in DPP_BENCH_KMS_<i> variables, set here)."""
    import boto3

    from proxy.crypto.kms.store import init_keys
    from proxy.policy.compiler import compile_policy
    from proxy.policy.loader import load_policy
    c = boto3.client("kms", region_name="us-east-1", endpoint_url=url)
    kek = f"alias/bench-{uuid.uuid4().hex[:8]}"
    c.create_alias(AliasName=kek, TargetKeyId=c.create_key()["KeyMetadata"]["KeyId"])
    doc = yaml.safe_load(policy.read_text())
    names = sorted(doc["keys"])
    doc["keys"] = {k: {"source": "aws", "key": kek, "store": str(workdir / f"keys-{policy.stem}.json"), "region": "us-east-1",
                       "endpoint_url": url} for k in names}
    kms_path = workdir / f"kms-{policy.name}"
    kms_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    init_keys(load_policy(kms_path).policy.keys, os.environ)
    rings = compile_policy(load_policy(kms_path)).route()._keyrings
    doc["keys"] = {k: {"source": "env", "name": f"DPP_BENCH_KMS_{i}"} for i, k in enumerate(names)}
    for i, k in enumerate(names):
        os.environ[f"DPP_BENCH_KMS_{i}"] = rings[k].key.material.hex()
    plain_path = workdir / f"plain-{policy.name}"
    plain_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return kms_path, plain_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.bench_kms", description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of KMS and plain keys")
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    a = ap.parse_args(argv)
    os.environ.update(ensure_key_env())
    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(k, v)
    data = [v for _, v in Dataset.for_size(a.size).payloads(a.records)]
    proc, url = start_moto_server()
    try:
        with tempfile.TemporaryDirectory() as d:
            print(f"policy engine only, {a.records} records, best of {a.repeat}, {a.rounds} rounds, "
                  f"load {os.getloadavg()[0]:.2f}")
            for row, pol in (("b", POLICIES / "b-no-fpe.yaml"), ("example", EXAMPLE_POLICY)):
                kms_path, plain_path = variants(pol, url, Path(d))
                best = {"kms": float("inf"), "plain": float("inf")}
                for _ in range(a.rounds):
                    best["kms"] = min(best["kms"], us_per_record(kms_path, data, a.repeat, gc_freeze=False))
                    best["plain"] = min(best["plain"], us_per_record(plain_path, data, a.repeat, gc_freeze=False))
                diff = (best["kms"] / best["plain"] - 1) * 100
                print(f"  ({row}) KMS keys {best['kms']:6.2f} µs/record, plain keys {best['plain']:6.2f} µs/record, "
                      f"KMS {diff:+.1f} %")
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
