"""End-to-end harness: run a proxy against the local broker and measure it.

The proxy runs as it runs in production: **``dpp run`` as a subprocess** (``python -m proxy run``),
measured from outside with psutil. A subprocess (rather than the engine in-process) is what
measures best here: its CPU time is the whole proxy's -- Python *and* librdkafka's threads -- and
nothing of the harness (generator, sink reader) is mixed into it. The same harness runs the
reference contenders (the raw pass-through loop, the faust agent) the same way.

Two measurements:

* **throughput** (:func:`measure_throughput`): the source topic is filled beforehand; the proxy
  starts with a fresh consumer group and drains it. Measured from the proxy's "partitions assigned"
  line (start-up, imports and policy compilation excluded) until the sink holds every expected
  record (acknowledged = high watermarks): records/s (steady state: 10 % → 90 % of the sink), MB/s
  (source bytes), proxy CPU-seconds (``psutil`` user+system of the process) per 100k records and
  records per CPU-second, peak RSS (``VmHWM``).
* **latency** (:func:`measure_latency`): the generator (a separate process) produces at a fixed
  rate with a produce-time header; a separate consumer reads the sink and computes read time −
  produce stamp per record; p50/p95/p99/max after a warm-up, plus the proxy's CPU use.

CLI (one contender; :mod:`loadtests.bench` runs them side by side)::

    python -m loadtests.harness --policy loadtests/policies/b-no-fpe.yaml --records 100000 --size 0.5k
    python -m loadtests.harness --policy policies/examples/customer-pii.yaml --rate 20000 --seconds 30
    python -m loadtests.harness --contender raw --records 100000

``LT_DPP_SRC=/path/to/other/checkout`` runs that checkout's ``proxy`` package as ``dpp run`` (the process
starts in that directory), for before/after comparisons on the same broker and data.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import orjson
import yaml

from .common import (DEFAULT_BOOTSTRAP, POLICIES, RESULTS, SIZES, Child, Dataset, GroupWatch, SinkReader, TopicWatch,
                     create_topics, delete_topics, dpp_command, ensure_key_env, percentiles_ms, produce_payloads,
                     progress_bar, python_command, unique_prefix)

READY_MARKER = "partitions assigned"


@dataclass(frozen=True)
class Contender:
    """One row of the benchmark.

    ``kind``: ``raw`` (:mod:`loadtests.passthrough`), ``native`` / ``native-rust`` (the same loop
    in native code, :mod:`loadtests.native_passthrough`: ``proxy._dataplane`` in C / prototype (R)
    in Rust), ``dpp`` (``dpp run`` with ``policy``) or ``faust`` (:mod:`loadtests.faust_passthrough`). ``blocks``: the policy withholds records whose
    analytics consent is withdrawn (the sink then expects fewer records than the source).
    """

    key: str
    label: str
    kind: str
    policy: Path | None = None
    blocks: bool = False
    src: Path | None = None
    """``dpp`` rows: run this checkout's ``proxy`` package instead (e.g. the previous release, for a
    baseline row in the same run); default ``LT_DPP_SRC`` or this one."""
    transactional: bool = False
    """The sink is written in transactions: the row is done when the group has committed every
    source offset (the sink's end offsets also count transaction markers)."""
    dpp_args: tuple[str, ...] = ()
    """``dpp`` rows: more ``dpp run`` options (row (bp): ``--data-plane python``)."""


RAW = Contender("a", "raw confluent-kafka pass-through (the limit)", "raw")
NATIVE = Contender("a'", "pass-through through the native data plane, no rules", "native")
NATIVE_RUST = Contender("a'r", "native pass-through, prototype (R): Rust, rdkafka crate", "native-rust")
FAUST = Contender("e", "faust-streaming pass-through agent", "faust")


def dpp_contender(key: str, label: str, policy: Path) -> Contender:
    """A ``dpp run`` row whose policy has the example's consent block."""
    return Contender(key, label, "dpp", policy, blocks=True)


def policy_copy(policy: Path, out: Path, source: str, sink: str, dead_letter: str, group: str) -> Path:
    """Write ``policy`` with its (single) route reading ``source``, writing ``sink``/``dead_letter``
    and consuming as ``group``. Returns the path of the copy."""
    data = yaml.safe_load(policy.read_text(encoding="utf-8"))
    if len(data["routes"]) != 1:
        raise ValueError(f"{policy}: the harness runs single-route policies")
    r = data["routes"][0]
    r.update(source=source, sink=sink, dead_letter=dead_letter, consumer_group=group)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def start(c: Contender, bootstrap: str, source: str, sink: str, dead_letter: str, group: str, workdir: Path,
          env: dict, batch_size: int = 1000, name: str | None = None, extra: Sequence[str] = ()) -> Child:
    """Start contender ``c`` on the given topics and consumer group; returns the :class:`Child`
    (not yet ready: call ``wait_ready``). Logs go to ``workdir/<name>.log``. ``extra``: more
    ``dpp run`` options (``dpp`` rows)."""
    name = name or f"{c.key}-{c.kind}"
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(env)
    loop_args = ["--bootstrap", bootstrap, "--source", source, "--sink", sink, "--group", group,
                 "--batch-size", str(batch_size)]
    if c.kind == "raw":
        argv = python_command() + ["-m", "loadtests.passthrough", *loop_args]
        if not engine_batches_naturally():
            argv.append("--blocking")  # take batches the way this engine version takes them
    elif c.kind in ("native", "native-rust"):
        argv = python_command() + ["-m", "loadtests.native_passthrough", *loop_args,
                                   "--impl", "rust" if c.kind == "native-rust" else "c"]
    elif c.kind == "dpp":
        assert c.policy is not None
        pol = policy_copy(c.policy, workdir / f"{name}.policy.yaml", source, sink, dead_letter, group)
        argv = dpp_command() + ["run", "--policy", str(pol), "--bootstrap-servers", bootstrap, "--metrics-port", "0",
                                "--reload-interval", "0", "--batch-size", str(batch_size), "--log-level", "INFO",
                                *c.dpp_args, *extra]
    elif c.kind == "faust":
        datadir = workdir / f"{name}.faust-data"
        env.update(LT_FAUST_BROKER=bootstrap, LT_FAUST_SOURCE=source, LT_FAUST_SINK=sink, LT_FAUST_APP_ID=group,
                   LT_FAUST_DATADIR=str(datadir))
        argv = python_command() + ["-m", "faust", "-A", "loadtests.faust_passthrough", "worker", "--without-web",
                                   "-l", "info"]
    else:
        raise ValueError(f"unknown contender kind {c.kind!r}")
    src = (c.src or os.environ.get("LT_DPP_SRC")) if c.kind == "dpp" else None
    return Child(argv, env, workdir / f"{name}.log", READY_MARKER, cwd=Path(src) if src else None)


def topic_safe(name: str) -> str:
    """``name`` with the row key's prime (row (a')) spelled ``p``: Kafka topic names are
    ``[a-zA-Z0-9._-]``."""
    return name.replace("'", "p")


def native_available(c: Contender) -> str | None:
    """``None`` when native contender ``c`` can run, else why not (not built)."""
    from .native_passthrough import runner
    try:
        runner("rust" if c.kind == "native-rust" else "c")
    except RuntimeError as e:
        return str(e)
    return None


def engine_batches_naturally() -> bool:
    """Whether ``dpp run`` takes what is already fetched instead of waiting for full batches
    (``RouteWorker._next_batch``); the raw pass-through then does the same."""
    from proxy.stream.engine import RouteWorker
    return hasattr(RouteWorker, "_next_batch")


def _rate_between(points: list[tuple[float, int]], expected: int, lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Records/s between the first samples at which the sink held ``lo`` and ``hi`` of ``expected``."""
    t_lo = next((t for t, n in points if n >= lo * expected), None)
    hit = next(((t, n) for t, n in points if n >= hi * expected), None)
    if t_lo is None or hit is None:
        return None
    n_lo = next(n for t, n in points if t == t_lo)
    if hit[0] <= t_lo:
        return None
    return (hit[1] - n_lo) / (hit[0] - t_lo)


def measure_throughput(c: Contender, bootstrap: str, source: str, partitions: int, records: int, source_bytes: int,
                       expected: int, workdir: Path, env: dict, batch_size: int = 1000, timeout_s: float = 600,
                       progress: bool = True, keep_topics: bool = False) -> dict:
    """Drain the pre-filled ``source`` (``records`` records, ``source_bytes`` bytes of keys and
    values) through contender ``c`` until its sink holds ``expected`` records. See the module doc
    for what is measured. Returns a dict of figures (``ok`` False with ``error`` on failure)."""
    pre = unique_prefix(topic_safe(f"lt{c.key}"))
    sink, dlq, group = f"{pre}.sink", f"{pre}.dlq", f"{pre}.group"
    create_topics(bootstrap, {sink: partitions, dlq: partitions})
    child = start(c, bootstrap, source, sink, dlq, group, workdir, env, batch_size)
    res: dict = {"key": c.key, "label": c.label, "kind": c.kind, "policy": str(c.policy) if c.policy else None,
                 "records": records, "expected_sink": expected, "ok": False, "log": str(child.log_path)}
    watch = done_watch = None
    try:
        child.wait_ready(180)
        res["startup_cpu_s"] = round(child.cpu_at_ready, 3)
        watch = TopicWatch(bootstrap, sink)
        done_watch = GroupWatch(bootstrap, group, source) if c.transactional else None
        bar = progress_bar(expected, f"({c.key}) {c.kind}") if progress else None
        points: list[tuple[float, int]] = []
        shown = 0
        while True:
            n = watch.total()
            now = time.perf_counter()
            points.append((now, n))
            if bar is not None and n > shown:
                bar.update(n - shown)
                shown = n
            if (n >= expected) if done_watch is None else (n >= expected and done_watch.committed() >= records):
                cpu_done = child.cpu()
                threads_done = child.thread_cpu()
                t_done = now
                break
            if not child.alive():
                raise RuntimeError(f"exited with {child.proc.returncode} at {n}/{expected}; log {child.log_path}\n"
                                   f"{child.tail()}")
            if now - child.t_ready > timeout_s:
                raise TimeoutError(f"sink at {n}/{expected} after {timeout_s} s")
            time.sleep(0.01)
        if bar is not None:
            bar.close()
        peak = child.peak_rss()
        wall = t_done - child.t_ready
        cpu = cpu_done - child.cpu_at_ready
        steady = _rate_between(points, expected) or expected / wall
        time.sleep(0.3)
        res.update(
            ok=True, wall_s=round(wall, 3), cpu_s=round(cpu, 3),
            records_per_s=round(steady), records_per_s_overall=round(records / wall),
            mb_per_s=round(steady * (source_bytes / records) / 1e6, 2),
            cpu_s_per_100k=round(cpu / records * 1e5, 3),
            records_per_cpu_s=round(records / cpu) if cpu > 0 else None,
            cpu_util=round(cpu / wall, 2) if wall > 0 else None,
            peak_rss_mb=round(peak / 2**20, 1), sink_total=watch.total(),
            thread_cpu_s={k: round(v - child.threads_at_ready.get(k, 0.0), 3) for k, v in threads_done.items()
                          if v - child.threads_at_ready.get(k, 0.0) >= 0.005},
        )
        dwatch = TopicWatch(bootstrap, dlq)
        res["dead_lettered"] = dwatch.total()
        dwatch.close()
    except Exception as e:  # noqa: BLE001 - reported in the row
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        if watch is not None:
            watch.close()
        if done_watch is not None:
            done_watch.close()
        rc = child.stop()
        child.close()
        res["exit_code"] = rc
        if not keep_topics:
            delete_topics(bootstrap, [sink, dlq])
    return res


def measure_latency(c: Contender, bootstrap: str, size: str, rate: float, seconds: float, workdir: Path, env: dict,
                    partitions: int = 3, batch_size: int = 1000, warmup_s: float = 3.0, note_chars: int | None = None,
                    keep_topics: bool = False) -> dict:
    """Run contender ``c`` on fresh topics while the generator (a subprocess) produces at ``rate``
    records/s for ``seconds``; a :class:`SinkReader` in this process measures end-to-end latency
    (produce stamp → read at the sink). Records produced in the first ``warmup_s`` are excluded.
    Returns ``{"p50", "p95", "p99", "max", "n", "rate_achieved", "proxy_cpu_util", "proxy_runqueue_wait", …}``
    (latencies in ms; ``proxy_runqueue_wait``: seconds per second the proxy's threads waited for a CPU)."""
    import subprocess
    pre = unique_prefix(topic_safe(f"ll{c.key}"))
    src, sink, dlq, group = f"{pre}.source", f"{pre}.sink", f"{pre}.dlq", f"{pre}.group"
    create_topics(bootstrap, {src: partitions, sink: partitions, dlq: partitions})
    child = start(c, bootstrap, src, sink, dlq, group, workdir, env, batch_size, name=f"{c.key}-{c.kind}-latency")
    res: dict = {"key": c.key, "label": c.label, "rate_target": round(rate), "seconds": seconds, "ok": False,
                 "log": str(child.log_path)}
    reader = None
    try:
        child.wait_ready(180)
        time.sleep(0.5)  # let the proxy's first (empty) fetch settle
        reader = SinkReader(bootstrap, sink)
        reader.start()
        preset = SIZES[size]
        nc = preset.note_chars if note_chars is None else note_chars
        gen_cmd = python_command() + ["-m", "loadtests.generator", "--bootstrap", bootstrap, "--topic", src,
                                      "--size", size, "--note-chars", str(nc), "--rate", str(rate),
                                      "--seconds", str(seconds)]
        t0_ns = time.time_ns()
        cpu0, t0, rq0 = child.cpu(), time.perf_counter(), child.runqueue_wait()
        out = subprocess.run(gen_cmd, env=env, cwd=str(Path(__file__).resolve().parents[1]), capture_output=True,
                             text=True, timeout=seconds + 180)
        if out.returncode != 0:
            raise RuntimeError(f"generator failed ({out.returncode}): {out.stderr[-2000:]}")
        gen = orjson.loads(out.stdout.strip().splitlines()[-1])
        cpu1, t1, rq1 = child.cpu(), time.perf_counter(), child.runqueue_wait()
        data = Dataset(nc, preset.max_orders)
        expected = data.consenting(gen["produced"]) if c.blocks else gen["produced"]
        deadline = time.monotonic() + 120
        while reader.count < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink reader at {reader.count}/{expected}")
            if not child.alive():
                raise RuntimeError(f"proxy exited with {child.proc.returncode}\n{child.tail()}")
            time.sleep(0.05)
        cut = t0_ns + int(warmup_s * 1e9)
        lats = [lat for ts, lat in zip(reader.stamps, reader.latencies) if ts >= cut]
        res.update(percentiles_ms(lats))
        res["timeline"] = latency_timeline(reader.stamps, reader.latencies, t0_ns)
        cpu_by_s: dict[int, list] = {}
        for t, _rss, c in child.samples:  # proxy CPU use per second of the run (cores)
            if t >= t0:
                cpu_by_s.setdefault(int(t - t0), []).append((t, c))
        for x in res["timeline"]:
            pts = cpu_by_s.get(int(x["t"]), [])
            x["proxy_cpu"] = round((pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]), 2) if len(pts) > 1 else None
        steady = sorted(x["p99"] for x in res["timeline"] if x["t"] >= warmup_s and x["n"] >= 100)
        # robust to a few seconds of interference on a shared machine: the median second's p99
        res["p99_median_second"] = steady[len(steady) // 2] if steady else None
        res.update(ok=True, rate_achieved=gen["rate"], produced=gen["produced"], received=reader.count,
                   proxy_cpu_util=round((cpu1 - cpu0) / (t1 - t0), 2), peak_rss_mb=round(child.peak_rss() / 2**20, 1),
                   proxy_runqueue_wait=round((rq1 - rq0) / (t1 - t0), 2))
        for k in ("p50", "p95", "p99", "max"):
            res[k] = round(res[k], 2)
    except Exception as e:  # noqa: BLE001 - reported in the row
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        if reader is not None:
            reader.halt()
        child.stop()
        child.close()
        if not keep_topics:
            delete_topics(bootstrap, [src, sink, dlq])
    return res


def latency_timeline(stamps: list[int], lats: list[int], t0_ns: int, step_s: float = 1.0) -> list[dict]:
    """Per ``step_s`` of produce time: ``{"t": seconds since t0, "n", "p50", "p99"}`` (ms) -- shows
    whether latency is steady or builds up (a backlog)."""
    buckets: dict[int, list[int]] = {}
    for ts, lat in zip(stamps, lats):
        buckets.setdefault(int((ts - t0_ns) / 1e9 / step_s), []).append(lat)
    out = []
    for k in sorted(buckets):
        p = percentiles_ms(buckets[k], (50, 99))
        out.append({"t": round(k * step_s, 1), "n": p["n"], "p50": round(p["p50"], 1), "p99": round(p["p99"], 1)})
    return out


def added_latency(raw: Contender, proxy: Contender, bootstrap: str, size: str, rate: float, seconds: float,
                  workdir: Path, env: dict, partitions: int = 3, batch_size: int = 1000) -> dict:
    """:func:`measure_latency` of ``raw`` and then ``proxy`` at the same ``rate``; returns
    ``{"rate", "seconds", raw.key: {...}, proxy.key: {...}, "added_p50_ms", "added_p95_ms",
    "added_p99_ms", "added_p99_median_second_ms"}`` (what ``proxy`` adds over ``raw``, ms; absent
    when a row failed)."""
    out: dict = {"rate": int(rate), "seconds": seconds}
    for c in (raw, proxy):
        print(f"  latency ({c.key}) at {int(rate):,} records/s for {seconds:g} s …", flush=True)
        out[c.key] = measure_latency(c, bootstrap, size, rate, seconds, workdir, env, partitions, batch_size)
    la, lb = out[raw.key], out[proxy.key]
    if la.get("ok") and lb.get("ok"):
        for q in ("p50", "p95", "p99"):
            out[f"added_{q}_ms"] = round(lb[q] - la[q], 2)
        if la.get("p99_median_second") is not None and lb.get("p99_median_second") is not None:
            out["added_p99_median_second_ms"] = round(lb["p99_median_second"] - la["p99_median_second"], 2)
    return out


def fill_source(bootstrap: str, data: Dataset, records: int, partitions: int, progress: bool = True,
                name: str | None = None) -> tuple[str, int]:
    """Create a source topic and produce records ``0..records-1`` of ``data`` into it (no
    stamps). Returns ``(topic, bytes of keys and values)``."""
    topic = name or f"{unique_prefix('lts')}.source"
    create_topics(bootstrap, {topic: partitions})
    payloads = data.payloads(records)
    nbytes = sum(len(p[0]) + len(p[1]) + sum(len(n) + len(v or b"") for n, v in (p[2] if len(p) > 2 else ()))
                 for p in payloads)
    produce_payloads(bootstrap, topic, payloads, total=records, desc=f"fill {topic}" if progress else None)
    return topic, nbytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.harness", description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    ap.add_argument("--contender", choices=["dpp", "raw", "native", "native-rust", "faust"], default="dpp")
    ap.add_argument("--policy", type=Path, default=POLICIES / "b-no-fpe.yaml", help="for --contender dpp")
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    ap.add_argument("--note-chars", type=int, default=None, help="override the size preset's note length")
    ap.add_argument("--records", type=int, default=100_000, help="throughput mode: records to pre-produce")
    ap.add_argument("--rate", type=float, default=None, help="latency mode: produce at this rate (records/s)")
    ap.add_argument("--seconds", type=float, default=20.0, help="latency mode: produce for this long")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    a = ap.parse_args(argv)
    env = ensure_key_env()
    if a.contender == "dpp":
        c = dpp_contender("b", f"dpp {a.policy.name}", a.policy)
    else:
        c = {"raw": RAW, "native": NATIVE, "native-rust": NATIVE_RUST, "faust": FAUST}[a.contender]
    workdir = RESULTS / "logs" / time.strftime("harness-%Y%m%d-%H%M%S")
    if a.rate:
        res = measure_latency(c, a.bootstrap, a.size, a.rate, a.seconds, workdir, env, a.partitions, a.batch_size,
                              note_chars=a.note_chars)
    else:
        preset = SIZES[a.size]
        data = Dataset(a.note_chars if a.note_chars is not None else preset.note_chars, preset.max_orders)
        topic, nbytes = fill_source(a.bootstrap, data, a.records, a.partitions)
        try:
            expected = data.consenting(a.records) if c.blocks else a.records
            res = measure_throughput(c, a.bootstrap, topic, a.partitions, a.records, nbytes, expected, workdir, env,
                                     a.batch_size)
        finally:
            delete_topics(a.bootstrap, [topic])
    print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
    if a.json:
        a.json.write_text(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
