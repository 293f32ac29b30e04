"""Soak: ``dpp run`` at a fixed rate for minutes; does memory grow, does lag build up?

::

    python -m loadtests.soak --minutes 10 --rate 10000 [--policy policies/examples/customer-pii.yaml] [--size 0.5k]

The generator (a subprocess) produces at ``--rate`` records/s with produce-time headers; ``dpp run``
(a subprocess, the example policy by default: every action including FF1) protects them. Every
``--sample-s`` seconds the soak records, from outside the proxy:

* the proxy's RSS (psutil) and CPU use over the interval;
* the consumer group's lag (high watermarks − committed offsets, read by a consumer that never
  joins the group);
* end-to-end latency p50/p99 of the records read at the sink in the interval (separate consumer).

At the end (after the generator stopped and the proxy caught up) it reports the RSS trend -- the
least-squares slope after ``--warmup-s`` (MB per hour, and the growth it implies over the run as a
share of the mean RSS) -- and the lag over time (max, mean, slope, final), and writes
``loadtests/results/soak-<time>.json`` and ``….png``. Verdicts (printed, not asserted): *no RSS growth
trend* when the fitted growth over the measured window is under 2 % of the mean RSS (and under
8 MB); *lag does not build up* when the final lag is 0, the lag slope is under 1 % of the rate per
minute, and the maximum lag is under 2 seconds' worth of records.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import orjson

from .common import (DEFAULT_BOOTSTRAP, EXAMPLE_POLICY, RESULTS, ROOT, SIZES, Dataset, GroupLag, SinkReader, TopicWatch,
                     create_topics, delete_topics, ensure_key_env, linear_slope, load_average, percentiles_ms,
                     progress_bar, python_command, unique_prefix)
from .harness import dpp_contender, start


def verdicts(samples: list[dict], rate: float, warmup_s: float) -> dict:
    """RSS trend and lag summary of the soak's samples (see the module doc)."""
    steady = [s for s in samples if s["t"] >= warmup_s and not s.get("draining")]
    xs = [s["t"] for s in steady]
    rss = [s["rss_mb"] for s in steady]
    lag = [s["lag"] for s in steady]
    slope_mb_s = linear_slope(xs, rss)
    window = (xs[-1] - xs[0]) if len(xs) > 1 else 0.0
    mean_rss = sum(rss) / len(rss) if rss else 0.0
    growth = slope_mb_s * window
    lag_slope_min = linear_slope(xs, lag) * 60
    final_lag = samples[-1]["lag"] if samples else None
    out = {
        "window_s": round(window, 1), "samples": len(steady),
        "rss_first_mb": rss[0] if rss else None, "rss_last_mb": rss[-1] if rss else None,
        "rss_max_mb": max(rss) if rss else None, "rss_mean_mb": round(mean_rss, 1),
        "rss_slope_mb_per_hour": round(slope_mb_s * 3600, 2), "rss_fitted_growth_mb": round(growth, 2),
        "rss_fitted_growth_pct": round(100 * growth / mean_rss, 2) if mean_rss else None,
        "lag_max": max(lag) if lag else None, "lag_mean": round(sum(lag) / len(lag), 1) if lag else None,
        "lag_slope_per_min": round(lag_slope_min, 1), "lag_final": final_lag,
        "p99_max_ms": max((s["p99_ms"] for s in steady if s["p99_ms"] is not None), default=None),
    }
    out["no_rss_growth_trend"] = bool(rss) and growth < 0.02 * mean_rss and growth < 8.0
    out["lag_does_not_build_up"] = (final_lag == 0 and lag_slope_min < 0.01 * rate
                                    and (max(lag) if lag else 0) < 2 * rate)
    return out


def chart(path: Path, samples: list[dict], summary: dict, title: str) -> None:
    """PNG with RSS, lag and latency p99 over time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(t, [s["rss_mb"] for s in samples], color="#2a6fb0")
    axes[0].set_ylabel("proxy RSS, MB")
    axes[0].set_title(f"RSS slope {summary['rss_slope_mb_per_hour']:+.2f} MB/h after warm-up", fontsize=9)
    axes[1].plot(t, [s["lag"] for s in samples], color="#c0392b")
    axes[1].set_ylabel("consumer lag, records")
    axes[2].plot(t, [s["p99_ms"] if s["p99_ms"] is not None else float("nan") for s in samples], label="p99",
                 color="#444444")
    axes[2].plot(t, [s["p50_ms"] if s["p50_ms"] is not None else float("nan") for s in samples], label="p50",
                 color="#999999")
    axes[2].set_ylabel("end-to-end latency, ms")
    axes[2].set_xlabel("minutes")
    axes[2].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, required=True, help="records per second")
    ap.add_argument("--policy", type=Path, default=EXAMPLE_POLICY)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="samples before this are left out of the trend")
    a = ap.parse_args(argv)
    env = ensure_key_env()
    pre = unique_prefix("soak")
    src, sink, dlq, group = f"{pre}.source", f"{pre}.sink", f"{pre}.dlq", f"{pre}.group"
    create_topics(a.bootstrap, {src: a.partitions, sink: a.partitions, dlq: a.partitions})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = RESULTS / "logs" / f"soak-{stamp}"
    c = dpp_contender("s", f"dpp {a.policy.name}", a.policy)
    child = start(c, a.bootstrap, src, sink, dlq, group, workdir, env, name="soak-dpp")
    samples: list[dict] = []
    gen = reader = lagw = None
    seconds = a.minutes * 60
    load0 = load_average()
    try:
        child.wait_ready(120)
        reader = SinkReader(a.bootstrap, sink)
        reader.start()
        lagw = GroupLag(a.bootstrap, group, src)
        gen_log = open(workdir / "generator.log", "w")
        gen = subprocess.Popen(python_command() + ["-m", "loadtests.generator", "--bootstrap", a.bootstrap,
                                                   "--topic", src, "--size", a.size, "--rate", str(a.rate),
                                                   "--seconds", str(seconds)],
                               env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=gen_log, text=True)
        t0 = time.perf_counter()
        cpu_prev, t_prev = child.cpu(), t0
        bar = progress_bar(int(seconds), "soak (s)")
        draining_since = None
        while True:
            time.sleep(a.sample_s)
            now = time.perf_counter()
            if not child.alive():
                raise RuntimeError(f"dpp exited with {child.proc.returncode}\n{child.tail()}")
            cpu = child.cpu()
            _, lats = reader.drain()
            p = percentiles_ms(lats, (50, 99))
            lag = lagw.lag()
            done = gen.poll() is not None
            if done and draining_since is None:
                draining_since = now
            s = {"t": round(now - t0, 1), "rss_mb": round(child.ps.memory_info().rss / 2**20, 1),
                 "cpu_util": round((cpu - cpu_prev) / (now - t_prev), 3), "lag": lag, "received": len(lats),
                 "p50_ms": round(p["p50"], 1) if p["n"] else None, "p99_ms": round(p["p99"], 1) if p["n"] else None,
                 "draining": done}
            samples.append(s)
            cpu_prev, t_prev = cpu, now
            if bar is not None:
                bar.update(min(int(a.sample_s), max(0, int(seconds) - bar.n)))
            else:
                print(f"  t={s['t']:>6.0f}s rss={s['rss_mb']:.1f}MB lag={lag} p99={s['p99_ms']}ms "
                      f"cpu={s['cpu_util']:.2f}", flush=True)
            if done and (lag == 0 or now - draining_since > 60):
                break
        if bar is not None:
            bar.close()
        gen_out = orjson.loads(gen.stdout.read().strip().splitlines()[-1])
        preset = SIZES[a.size]
        data = Dataset(preset.note_chars, preset.max_orders)
        expected = data.consenting(gen_out["produced"]) if c.blocks else gen_out["produced"]
        deadline = time.monotonic() + 60
        while reader.count < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        dwatch = TopicWatch(a.bootstrap, dlq)
        counts = {"sink_records": reader.count, "expected_sink": expected, "dead_lettered": dwatch.total()}
        dwatch.close()
    finally:
        if gen is not None and gen.poll() is None:
            gen.terminate()
            gen.wait(30)
        if reader is not None:
            reader.halt()
        if lagw is not None:
            lagw.close()
        child.stop()
        child.close()
        delete_topics(a.bootstrap, [src, sink, dlq])
    summary = verdicts(samples, a.rate, a.warmup_s)
    summary.update(rate_target=a.rate, rate_achieved=gen_out["rate"], produced=gen_out["produced"], **counts)
    print(f"\nsoak: {a.minutes:g} min at {a.rate:,.0f} records/s ({gen_out['rate']:,.0f}/s achieved, "
          f"{gen_out['produced']:,} records), policy {a.policy}, ~{a.size} records")
    print(f"  RSS: {summary['rss_first_mb']} MB after warm-up -> {summary['rss_last_mb']} MB at the end, "
          f"max {summary['rss_max_mb']} MB; slope {summary['rss_slope_mb_per_hour']:+.2f} MB/h "
          f"(fitted growth {summary['rss_fitted_growth_mb']:+.2f} MB = {summary['rss_fitted_growth_pct']:+.2f} % "
          f"over {summary['window_s']:.0f} s) -> "
          f"{'no growth trend' if summary['no_rss_growth_trend'] else 'GROWS'}")
    print(f"  lag: max {summary['lag_max']:,}, mean {summary['lag_mean']:,}, slope {summary['lag_slope_per_min']:+.1f}"
          f" records/min, final {summary['lag_final']} -> "
          f"{'does not build up' if summary['lag_does_not_build_up'] else 'BUILDS UP'}")
    print(f"  sink {summary['sink_records']:,} of {summary['expected_sink']:,} expected records, "
          f"{summary['dead_lettered']} dead-lettered")
    print(f"  worst interval p99 latency {summary['p99_max_ms']} ms; load average before "
          f"{load0[0]:.2f}, after {load_average()[0]:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, png_path = RESULTS / f"soak-{stamp}.json", RESULTS / f"soak-{stamp}.png"
    doc = {"command": "python -m loadtests.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
           "policy": str(a.policy), "size": a.size, "minutes": a.minutes, "summary": summary, "samples": samples,
           "load_before": list(load0), "load_after": list(load_average())}
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    try:
        chart(png_path, samples, summary, f"soak {a.minutes:g} min at {a.rate:,.0f} records/s, {a.policy.name}")
        print(f"wrote {json_path} and {png_path}")
    except ImportError:
        print(f"wrote {json_path}")
    ok = summary["no_rss_growth_trend"] and summary["lag_does_not_build_up"]
    return 0 if ok and summary["sink_records"] == summary["expected_sink"] and not summary["dead_lettered"] else 1


if __name__ == "__main__":
    sys.exit(main())
