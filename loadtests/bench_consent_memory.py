"""Memory and speed of the consent table (proxy.policy.consent.ConsentTable) with millions of subjects.

    python -m loadtests.bench_consent_memory [--subjects 5000000] [--memory-subjects 1000000] [--runs 3]

Each run is a fresh process: it parses and applies ``--subjects`` consent records (as the reader
does with records from the topic: ``parse_consent`` then ``apply``), then looks up 200,000 random
subjects. Reported per run: resident set growth (VmRSS after - before, MiB), peak (VmHWM), load time
and lookup time; then min / median / max. The stated limit (docs/operating.md) is checked with
``--limit-mib``: exit 1 when the median resident growth is above it.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time


def _vm(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def one_run(subjects: int, memory_subjects: int) -> dict:
    from proxy.policy import consent as cs
    rss0 = _vm("VmRSS")
    table = cs.ConsentTable(memory_subjects=memory_subjects)
    table.purpose_index("marketing")
    purposes = [b'{"marketing":"granted","analytics":"withdrawn"}', b'{"marketing":"withdrawn"}', b'{"support":"granted"}']
    t0 = time.perf_counter()
    for i in range(subjects):
        s = f"C{i:010d}"
        key = s.encode()
        value = b'{"subject":"' + key + b'","purposes":' + purposes[i % 3] + b',"updated_at":"2026-12-07T10:00:00Z"}'
        subject, states = cs.parse_consent(key, value)
        table.apply(subject, states)
    load_s = time.perf_counter() - t0
    rss = _vm("VmRSS") - rss0
    rng = random.Random(7)
    probe = [f"C{rng.randrange(subjects):010d}" for _ in range(200_000)]
    p = table.purpose_index("marketing")
    t0 = time.perf_counter()
    granted = sum(table.state(s, p) == cs.GRANTED for s in probe)
    lookup_us = (time.perf_counter() - t0) / len(probe) * 1e6
    out = {"subjects": len(table), "on_disk": table.on_disk, "rss_growth_mib": round(rss, 1),
           "peak_rss_mib": round(_vm("VmHWM"), 1), "load_s": round(load_s, 1),
           "load_us_per_subject": round(load_s / subjects * 1e6, 2), "lookup_us": round(lookup_us, 2),
           "granted_share": round(granted / len(probe), 3)}
    table.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=5_000_000)
    ap.add_argument("--memory-subjects", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit-mib", type=float, default=None, help="fail when the median RSS growth exceeds it")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one_run(a.subjects, a.memory_subjects)))
        return 0
    load = os.getloadavg()
    print(f"consent table: {a.subjects:,} subjects, {a.memory_subjects:,} in memory; load average before: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    rows = []
    for i in range(a.runs):
        res = subprocess.run([sys.executable, "-m", "loadtests.bench_consent_memory", "--one", "--subjects",
                              str(a.subjects), "--memory-subjects", str(a.memory_subjects)],
                             capture_output=True, text=True, check=True)
        row = json.loads(res.stdout)
        rows.append(row)
        print(f"run {i + 1}: {json.dumps(row)}")
    for k in ("rss_growth_mib", "peak_rss_mib", "load_us_per_subject", "lookup_us"):
        v = [r[k] for r in rows]
        print(f"{k}: min {min(v)} / median {statistics.median(v)} / max {max(v)}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if a.limit_mib is not None and statistics.median(r["rss_growth_mib"] for r in rows) > a.limit_mib:
        print(f"FAIL: median resident growth above {a.limit_mib} MiB")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
