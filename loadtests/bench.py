"""The benchmark: dpp measured against the physical limit of the same machine, side by side.

::

    python -m loadtests.bench [--records 200000] [--size 0.5k|2k] [--rounds 3] [--only a,b,c,k0,ke]

One run, one broker, the same pre-produced data for every row (each row reads the same source
topic with a consumer group of its own and writes a sink topic of its own):

* (a) a raw confluent-kafka consume → produce pass-through loop (:mod:`loadtests.passthrough`),
  the same client settings and guarantees as ``dpp run``: **the limit**;
* (a') the same pass-through through the native data plane, no rules (:mod:`loadtests.native_passthrough`,
  ``proxy._dataplane``): the new limit (n/a where the extension is not built);
* (b) ``dpp run`` with the example policy's rules without the FPE rules (``loadtests/policies/b-no-fpe.yaml``),
  as ``dpp run`` runs it by default (the native data plane where the route is eligible);
* (bp) (b) with ``--data-plane python``: the Python worker, side by side with (b);
* (c) (b) plus two FF1 fields, ``id_number`` and ``bank_card`` (``c-two-ff1.yaml``);
* (d) (b) with ``detect`` on the note instead of ``redact`` (``d-detect.yaml``), on records whose
  note is 200 characters (a data set of its own, so its ratio is to (a) re-run on that data, row a200);
* (e) a faust-streaming pass-through agent (:mod:`loadtests.faust_passthrough`), for reference;
* (f) (b)'s rules on Avro values (``f-avro.yaml``: Confluent wire format through the schema
  registry, sink schema derived), on the same records written as Avro, with (aa), the raw
  pass-through on that Avro data, beside it (its ratio is to (aa));
* (h) (b) with ``processing_guarantee: exactly_once`` (``h-exactly-once.yaml``: a Kafka transaction
  per batch holding its sink records, dead-letter records and consumed offsets), right after (b);
* (g) (b) plus key and header rules (``g-key-headers.yaml``: the mobile-number key and the
  ``x-user-email`` header pseudonymized), on the same records keyed by mobile number with that
  header, with (ak), the raw pass-through on that data (its ratio is to (ak));
* (k0) Kroxylicious 0.12 without a filter and (ke) with its RecordEncryption filter (in-memory KMS,
  every value encrypted whole), measured as its users deploy it: a producer writing the same records
  through the proxy, its JVM's CPU counted (:mod:`loadtests.peer`; ``deploy/kroxylicious.sh``).
  The work differs (whole-value AES-GCM on the produce path vs dpp's field-level rules between two
  topics): both are shown side by side.

Rows (f)/(aa) need a schema registry: ``--schema-registry URL``, else ``deploy/registry.sh start``.

Every row runs as its own process, measured by :mod:`loadtests.harness` (CPU from the
"partitions assigned" line to the last record acknowledged in the sink). ``--rounds N`` (default 3)
repeats the throughput runs interleaved (round 1: a, b, c, ..., k0, ke; round 2: the same, ...) and
the table gives min / median / max over the rounds of records per proxy CPU-second and CPU µs per
record, and the ratio to (a) taken within each round, then its median (:mod:`loadtests.rounds`).
Then the latency phase (once, at half of (b)'s median throughput):
(a) and (b) on fresh topics while the generator produces at half of (b)'s measured throughput;
end-to-end latency (produce stamp → read at the sink by a separate consumer), and the latency
dpp adds = (b) − (a) at each percentile.

Prints a table of records per proxy CPU-second and each row's ratio to (a), checks the issue's
targets, and writes ``loadtests/results/bench-<size>-<time>.json`` (every round's run under each
row's ``runs``) and ``….png`` (medians, min–max whiskers) (git-ignored).
The machine's load average is printed before and after: on a shared machine, rerun when it is idle.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import time
from pathlib import Path

import orjson

from .common import (DEFAULT_BOOTSTRAP, DETECT_NOTE_CHARS, POLICIES, RESULTS, SIZES, Dataset, Machine,
                     delete_topics, ensure_key_env, load_average)
from .harness import (FAUST, NATIVE, RAW, Contender, dpp_contender, fill_source, measure_throughput, native_available,
                      added_latency)
from .peer import DEFAULT_PORT as KROXYLICIOUS_PORT
from .peer import PEERS, WORK_NOTE, measure_peer
from .peer import available as kroxylicious_available
from .rounds import interleave, summarize

TARGETS = {"b_records_per_cpu_s": 100_000, "b_ratio_to_a": 1 / 3, "c_records_per_cpu_s": 30_000,
           "added_p99_ms": 50.0}

ROWS_B = dataclasses.replace(dpp_contender("b", "dpp, example policy without FPE", POLICIES / "b-no-fpe.yaml"),
                             dpp_args=("--data-plane", "auto"))  # the native data plane where eligible
ROWS_BP = Contender("bp", "dpp, (b) on the Python data plane (--data-plane python)", "dpp", ROWS_B.policy,
                    blocks=True, dpp_args=("--data-plane", "python"))
ROWS_C = dpp_contender("c", "dpp, (b) + two FF1 fields", POLICIES / "c-two-ff1.yaml")
ROWS_D = dpp_contender("d", f"dpp, (b) + detect on a {DETECT_NOTE_CHARS}-char note", POLICIES / "d-detect.yaml")
RAW_D = Contender("a200", f"raw pass-through on the {DETECT_NOTE_CHARS}-char-note data (reference for d)", "raw")
ROWS_F = dpp_contender("f", "dpp, (b) on Avro values (schema registry)", POLICIES / "f-avro.yaml")
RAW_F = Contender("aa", "raw pass-through on the Avro data (reference for f)", "raw")
ROWS_G = dpp_contender("g", "dpp, (b) + key and header pseudonyms", POLICIES / "g-key-headers.yaml")
ROWS_H = Contender("h", "dpp, (b) with processing_guarantee: exactly_once", "dpp", POLICIES / "h-exactly-once.yaml",
                   blocks=True, transactional=True)
RAW_G = Contender("ak", "raw pass-through on the keyed data (reference for g)", "raw")
REFERENCE = {"d": "a200", "f": "aa", "g": "ak"}
"""Rows measured on a data set of their own: the raw row on that data their ratio is to."""


def registry_url(given: str | None) -> str:
    """``given``, else the local registry of ``deploy/registry.sh start`` (its printed URL)."""
    if given:
        return given
    import subprocess
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["bash", str(root / "deploy" / "registry.sh"), "start"], check=True,
                         stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def detect_available(env: dict) -> str | None:
    """``None`` when row (d) can run, else why not."""
    if importlib.util.find_spec("proxy.transforms.detect") is None:
        return "proxy/transforms/detect.py does not exist yet"
    old = dict(os.environ)
    try:
        os.environ.update(env)
        from proxy.policy.compiler import compile_policy
        from proxy.policy.loader import load_policy
        compile_policy(load_policy(ROWS_D.policy))
    except Exception as e:  # noqa: BLE001 - reported as the row's reason
        return f"the detect policy does not compile: {type(e).__name__}: {str(e)[:200]}"
    finally:
        os.environ.clear()
        os.environ.update(old)
    return None


def faust_available() -> str | None:
    """``None`` when faust-streaming is importable, else why not."""
    if importlib.util.find_spec("faust") is None:
        return "faust-streaming is not installed (pip install faust-streaming)"
    return None


def _fmt(v, spec: str, na: str = "n/a") -> str:
    return na if v is None else format(v, spec)


def _spread_s(sp: dict | None, spec: str) -> str:
    """``min / median / max`` of a spread dict, or ``n/a``."""
    if not sp:
        return "n/a"
    return " / ".join(format(sp[k], spec) for k in ("min", "median", "max"))


def table(rows: list[dict], ref: dict[str, dict]) -> str:
    """The results table (text): per row, over the rounds, min / median / max of records per proxy
    CPU-second and of CPU µs per record, the median ratio to the row's reference (per round), and the
    median records/s and MB/s."""
    head = (f"{'row':<5} {'contender':<46} {'rec/s':>8} {'MB/s':>6} {'rec/CPU-s min / med / max':>27} "
            f"{'µs/rec min / med / max':>22} {'ratio to (a)':>17} {'RSS MB':>7}")
    out = [head, "-" * len(head)]
    for r in rows:
        if not r.get("ok"):
            why = r.get("na") or r.get("error", "failed")
            out.append(f"{r['key']:<5} {r['label'][:46]:<46} n/a: {why}")
            continue
        base = ref.get(r["key"])
        ratio, rs = r.get("ratio_to_a"), r.get("ratio_to_a_spread")
        if r["key"] in ("a", *REFERENCE.values()):
            ratio_s = "1.00 (limit)"
        else:
            ratio_s = _fmt(ratio, ".2f") + (f" ({rs['min']:.2f}-{rs['max']:.2f})" if rs and rs["n"] > 1 else "")
        if r["key"] in REFERENCE and base is not None:
            ratio_s += f" vs {REFERENCE[r['key']]}"
        rounds = f" [{r['rounds'] - len(r.get('failed_rounds', ()))}/{r['rounds']} rounds]" if r.get("failed_rounds") else ""
        out.append(f"{r['key']:<5} {r['label'][:46]:<46} {_fmt(r['records_per_s'], ',.0f'):>8} {r['mb_per_s']:>6.1f} "
                   f"{_spread_s(r.get('records_per_cpu_s_spread'), ',.0f'):>27} "
                   f"{_spread_s(r.get('us_per_record_spread'), '.2f'):>22} {ratio_s:>17} "
                   f"{_fmt(r.get('peak_rss_mb'), '.0f'):>7}{rounds}")
    return "\n".join(out)


def check_targets(rows: dict[str, dict], latency: dict | None) -> list[tuple[str, bool | None, str]]:
    """``[(target, met (None = not measured), detail)]`` for the issues' targets: the earlier
    absolute floors, and issue 13's ratios between rows of the same run (medians over the rounds)."""
    def v(key: str) -> float | None:
        r = rows.get(key, {})
        return r.get("records_per_cpu_s") if r.get("ok") else None

    def ratio(num: str, den: str, floor: float, what: str) -> tuple[str, bool | None, str]:
        x, y = v(num), v(den)
        q = x / y if x is not None and y else None
        return (what, None if q is None else q >= floor, f"{_fmt(q, '.2f')}")

    out = []
    bv, cv = v("b"), v("c")
    out.append(("(b) >= 100,000 records per proxy CPU-second", None if bv is None else bv >= 100_000, f"{_fmt(bv, ',d')}"))
    out.append(ratio("b", "a", 1 / 3, "(b) >= 1/3 of (a) in the same run"))
    out.append(("(c) >= 30,000 records per proxy CPU-second", None if cv is None else cv >= 30_000, f"{_fmt(cv, ',d')}"))
    out.append(ratio("b", "b0", 2.5, "(b) >= 2.5x the baseline code's (b0, --baseline-src)"))
    out.append(ratio("b", "ke", 1.0, "(b) >= Kroxylicious with RecordEncryption (ke)"))
    out.append(ratio("b", "a'", 0.6, "(b) >= 0.6 of (a'), the native pass-through"))
    out.append(ratio("c", "b", 0.6, "(c) >= 0.6 of (b)"))
    out.append(ratio("d", "b", 0.5, "(d) >= 0.5 of (b)"))
    added = latency.get("added_p99_ms") if latency else None
    out.append(("added p99 latency <= 20 ms at half of (b)'s max throughput", None if added is None else added <= 20,
                f"{_fmt(added, '.1f')} ms" if added is not None else "not measured"))
    return out


COLORS = {"raw": "#888888", "native": "#888888", "faust": "#d08c1f", "kroxylicious": "#3a9d5d"}


def chart(path: Path, rows: list[dict], latency: dict | None, title: str) -> None:
    """PNG: median records per proxy CPU-second per row with min–max whiskers over the rounds
    (median ratio to (a) on the bars) and, when measured, the latency percentiles of (a) and (b)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in rows if r.get("ok")]
    ncols = 2 if latency and latency.get("a", {}).get("ok") and latency.get("b", {}).get("ok") else 1
    fig, axes = plt.subplots(1, ncols, figsize=(max(7, 0.9 * len(ok) + 2) + 7 * (ncols - 1), 5.2), squeeze=False)
    ax = axes[0][0]
    labels = [f"({r['key']})" for r in ok]
    vals = [r["records_per_cpu_s"] or 0 for r in ok]
    spreads = [r.get("records_per_cpu_s_spread") or {"min": v, "max": v} for r, v in zip(ok, vals)]
    err = [[v - sp["min"] for v, sp in zip(vals, spreads)], [sp["max"] - v for v, sp in zip(vals, spreads)]]
    colors = [COLORS.get(r["kind"], "#2a6fb0") for r in ok]
    bars = ax.bar(labels, vals, color=colors, yerr=err, capsize=4, ecolor="#333333")
    for bar, r, sp in zip(bars, ok, spreads):
        ratio = r.get("ratio_to_a")
        ref = f"({REFERENCE.get(r['key'], 'a')})"
        txt = f"{r['records_per_cpu_s']:,}" + (f"\n{ratio:.2f}× {ref}" if ratio is not None and r["kind"] not in ("raw", "native") else "")
        ax.annotate(txt, (bar.get_x() + bar.get_width() / 2, sp["max"]), ha="center", va="bottom", fontsize=8)
    ax.axhline(TARGETS["b_records_per_cpu_s"], color="#c0392b", linestyle="--", linewidth=1)
    ax.annotate("target (b) 100k", (0, TARGETS["b_records_per_cpu_s"]), color="#c0392b", fontsize=8,
                va="bottom")
    n_rounds = max((r.get("rounds", 1) for r in ok), default=1)
    ax.set_ylabel("records per proxy CPU-second")
    ax.set_title(f"throughput per CPU, median of {n_rounds} rounds, min–max whiskers (higher is better)", fontsize=9)
    if any(r["kind"] == "kroxylicious" for r in ok):
        ax.text(0.01, -0.13, "green: Kroxylicious (produce path only; ke seals whole values) - "
                "blue: dpp (consume, field-level rules, produce)", transform=ax.transAxes, fontsize=7, va="top")
    ax.margins(y=0.2)
    if ncols == 2:
        ax2 = axes[0][1]
        qs = ["p50", "p95", "p99"]
        xs = range(len(qs))
        a, b = latency["a"], latency["b"]
        ax2.bar([x - 0.2 for x in xs], [a[q] for q in qs], width=0.4, label="(a) raw", color="#888888")
        ax2.bar([x + 0.2 for x in xs], [b[q] for q in qs], width=0.4, label="(b) dpp", color="#2a6fb0")
        ax2.set_xticks(list(xs), qs)
        ax2.set_ylabel("end-to-end latency, ms")
        ax2.set_title(f"latency at {latency['rate']:,} records/s (half of (b)'s max)", fontsize=10)
        ax2.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000, help="records per row (default %(default)s)")
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k", help="record size (default %(default)s)")
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="Kafka bootstrap (default %(default)s)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000, help="dpp --batch-size and the raw loop's batch")
    ap.add_argument("--only", default="a,a',b,bp,c,d,e,f,g,h,k0,ke", help="rows to run, comma-separated (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="throughput runs per row, interleaved across the rows (default %(default)s)")
    ap.add_argument("--kroxylicious-port", type=int, default=KROXYLICIOUS_PORT,
                    help="bootstrap port of the Kroxylicious rows' proxy (it uses PORT..PORT+4; default %(default)s)")
    ap.add_argument("--warmup-records", type=int, default=None,
                    help="records of the Kroxylicious rows' discarded warm-up run (default: --records)")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="a checkout of an earlier version: adds row (b0), (b)'s policy run by that code, "
                         "right after (b) on the same data")
    ap.add_argument("--schema-registry", default=None, help="registry URL for rows (f)/(aa) "
                    "(default: deploy/registry.sh start)")
    ap.add_argument("--latency-seconds", type=float, default=13.0,
                    help="produce time per latency row, the first 3 s not counted (0: skip)")
    ap.add_argument("--faust-records", type=int, default=50_000,
                    help="records for row (e), the first of the same source topic (default %(default)s: faust is slow)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON and PNG (default %(default)s)")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    only = set(a.only.split(","))
    machine = Machine()
    print(f"loadtests.bench: {a.records:,} records of ~{a.size} per row, {a.partitions} partitions, "
          f"broker {a.bootstrap}, {a.rounds} round(s); {machine.cpus} CPUs, load average {machine.load_before[0]:.2f} "
          f"{machine.load_before[1]:.2f} {machine.load_before[2]:.2f}", flush=True)
    if machine.load_before[0] > 1.0:
        print("  note: the machine is busy (1-minute load > 1): figures will be noisy; rerun when idle.", flush=True)
    env = ensure_key_env()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS / "logs" / f"bench-{stamp}"
    data = Dataset.for_size(a.size)
    d_na = detect_available(env) if "d" in only else "not selected (--only)"
    e_na = faust_available() if "e" in only else "not selected (--only)"
    peers = [p for p in PEERS if p.key in only]
    k_na = kroxylicious_available() if peers else None
    t_start = time.perf_counter()
    topics: list[str] = []
    rows: list[dict] = []
    latency: dict | None = None
    try:
        src, nbytes = fill_source(a.bootstrap, data, a.records, a.partitions)
        topics.append(src)
        expected_dpp = data.consenting(a.records)
        native_na = None
        plan: list[tuple] = []   # contender, source, bytes, expected sink (records: a.records unless a 5th item)
        for c in (RAW, NATIVE, ROWS_B, ROWS_BP, ROWS_H, ROWS_C):
            if c is NATIVE and c.key in only and native_available(c) is not None:
                native_na = native_available(c)
            elif c.key in only:
                plan.append((c, src, nbytes, expected_dpp if c.blocks else a.records))
            if c is ROWS_B and a.baseline_src is not None:
                b0 = Contender("b0", f"(b) run by {a.baseline_src.name} (baseline code)", "dpp",
                               ROWS_B.policy, blocks=True, src=a.baseline_src)
                plan.append((b0, src, nbytes, expected_dpp))
        if d_na is None:
            data_d = Dataset(DETECT_NOTE_CHARS, data.max_orders)
            src_d, nbytes_d = fill_source(a.bootstrap, data_d, a.records, a.partitions)
            topics.append(src_d)
            plan.append((RAW_D, src_d, nbytes_d, a.records))
            plan.append((ROWS_D, src_d, nbytes_d, data_d.consenting(a.records)))
        if "f" in only:
            url = registry_url(a.schema_registry)
            env = {**env, "DPP_SCHEMA_REGISTRY_URL": url}
            from proxy.formats.base import RegisteredSchema
            from proxy.generator import CUSTOMER_AVRO_SCHEMA
            from proxy.schemaregistry import Registry, resolve_config
            sid = Registry(resolve_config(url, {})).register(
                f"lt-bench-{stamp}-value", RegisteredSchema("AVRO", orjson.dumps(CUSTOMER_AVRO_SCHEMA).decode()))
            data_f = Dataset(data.note_chars, data.max_orders, mode="avro", avro_schema_id=sid)
            src_f, nbytes_f = fill_source(a.bootstrap, data_f, a.records, a.partitions)
            topics.append(src_f)
            plan.append((RAW_F, src_f, nbytes_f, a.records))
            plan.append((ROWS_F, src_f, nbytes_f, data_f.consenting(a.records)))
        if "g" in only:
            data_g = Dataset(data.note_chars, data.max_orders, mode="keyed")
            src_g, nbytes_g = fill_source(a.bootstrap, data_g, a.records, a.partitions)
            topics.append(src_g)
            plan.append((RAW_G, src_g, nbytes_g, a.records))
            plan.append((ROWS_G, src_g, nbytes_g, data_g.consenting(a.records)))
        if e_na is None:
            n_e = min(a.faust_records or a.records, a.records)
            plan.append((FAUST, src, int(nbytes * n_e / a.records), n_e, n_e))
        if k_na is None:
            for p in peers:  # the same records as (a), written through the proxy
                plan.append((p, None, nbytes, a.records))
        # each raw reference runs right before its dpp row (same data, minutes apart at most); the rounds
        # interleave: every row once, then every row again
        runs: list[dict] = []
        for rnd, (c, source, nb, expected, *n) in interleave(plan, a.rounds):
            n_rec = n[0] if n else a.records
            print(f"  round {rnd}/{a.rounds}: ({c.key}) {c.label} …", flush=True)
            if c.kind == "kroxylicious":
                res = measure_peer(c, a.bootstrap, data, n_rec, a.partitions, nb, workdir / f"round-{rnd}",
                                   a.kroxylicious_port, a.warmup_records)
            else:
                res = measure_throughput(c, a.bootstrap, source, a.partitions, n_rec, nb, expected, workdir / f"round-{rnd}",
                                         env, a.batch_size)
            res["round"] = rnd
            runs.append(res)
        rows = summarize(runs, REFERENCE)
        if native_na is not None:
            rows.insert(min(1, len(rows)), {"key": NATIVE.key, "label": NATIVE.label, "kind": NATIVE.kind, "ok": False,
                                            "na": native_na})
        if "d" in only and d_na is not None:
            rows.append({"key": "d", "label": ROWS_D.label, "kind": "dpp", "ok": False, "na": d_na})
        if "e" in only and e_na is not None:
            rows.append({"key": "e", "label": FAUST.label, "kind": "faust", "ok": False, "na": e_na})
        if k_na is not None:
            rows.extend({"key": p.key, "label": p.label, "kind": p.kind, "ok": False, "na": k_na} for p in peers)
        by = {r["key"]: r for r in rows}
        b = by.get("b", {})
        if a.latency_seconds > 0 and b.get("ok") and "a" in only:
            rate = max(1000, round(b["records_per_s"] / 2, -2))  # (b)'s median over the rounds
            latency = added_latency(RAW, ROWS_B, a.bootstrap, a.size, rate, a.latency_seconds, workdir, env,
                                    a.partitions, a.batch_size)
    finally:
        delete_topics(a.bootstrap, topics)
    elapsed = time.perf_counter() - t_start
    by = {r["key"]: r for r in rows}
    print()
    print(table(rows, {k: by.get(v, {}) for k, v in REFERENCE.items()}))
    if any(r.get("kind") == "kroxylicious" and r.get("ok") for r in rows):
        print(WORK_NOTE)
    if latency:
        print()
        print(f"end-to-end latency at {latency['rate']:,} records/s (half of (b)'s {b['records_per_s']:,}/s), "
              f"{a.latency_seconds:g} s, first 3 s excluded:")
        for k in ("a", "b"):
            r = latency.get(k, {})
            if r.get("ok"):
                print(f"  ({k}) p50 {r['p50']:.1f} ms  p95 {r['p95']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms"
                      f"  ({r['n']:,} records, {r['rate_achieved']:,.0f}/s achieved, proxy CPU {r['proxy_cpu_util']:.2f}, "
                      f"waiting for a CPU {r['proxy_runqueue_wait']:.2f} s/s)")
            else:
                print(f"  ({k}) failed: {r.get('error')}")
        if "added_p99_ms" in latency:
            print(f"  added by dpp: p50 {latency['added_p50_ms']:+.1f} ms  p95 {latency['added_p95_ms']:+.1f} ms  "
                  f"p99 {latency['added_p99_ms']:+.1f} ms")
        if "added_p99_median_second_ms" in latency:
            print(f"  per-second p99, median second: (a) {latency['a']['p99_median_second']:.1f} ms, "
                  f"(b) {latency['b']['p99_median_second']:.1f} ms, added {latency['added_p99_median_second_ms']:+.1f} ms "
                  f"(less sensitive to a few seconds of interference from other jobs)")
    print()
    targets = check_targets(by, latency)
    for name, met, detail in targets:
        print(f"  target {name}: {detail} -> {'met' if met else 'NOT met' if met is False else 'not measured'}")
    load_after = load_average()
    print(f"\ntotal {elapsed:.0f} s; load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    a.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = a.out / f"bench-{a.size}-{stamp}.json", a.out / f"bench-{a.size}-{stamp}.png"
    doc = {"command": "python -m loadtests.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
           "records": a.records, "size": a.size, "mean_record_bytes": round(data.mean_bytes()),
           "partitions": a.partitions, "batch_size": a.batch_size, "rounds": a.rounds, "machine": machine.as_dict(),
           "rows": rows,
           "latency": latency, "targets": [{"target": n, "met": m, "value": d} for n, m, d in targets],
           "elapsed_s": round(elapsed, 1)}
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    try:
        chart(png_path, rows, latency,
              f"dpp benchmark, {a.records:,} records of ~{a.size}, {a.rounds} rounds, {machine.cpus} CPUs, "
              f"load {machine.load_before[0]:.1f}")
        print(f"wrote {json_path} and {png_path}")
    except ImportError:
        print(f"wrote {json_path} (no chart: pip install matplotlib)")
    return 0 if all(r.get("ok") or r.get("na") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
