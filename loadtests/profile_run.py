"""Profile ``dpp run`` under load with py-spy and summarize where the time goes.

::

    pip install py-spy
    python -m loadtests.profile_run [--policy loadtests/policies/b-no-fpe.yaml] [--records 200000] [--size 0.5k]

Fills a source topic, starts ``dpp run`` (subprocess), attaches ``py-spy record --format
speedscope`` to it (``--native`` off, 500 samples/s, every thread, idle frames dropped) while
it drains the topic, and writes
``loadtests/results/profile-<policy>-<size>.speedscope.json`` (open it in https://www.speedscope.app)
plus a text summary (``….txt``): the share of samples of the record thread in which each
function is on the stack (inclusive) and at the top (self), and the source lines with the most
self time (without ``--native`` a call into C -- librdkafka, orjson, hashlib -- is charged to the
Python line that makes it, which is what tells consume, produce, flush and commit apart).
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .common import DEFAULT_BOOTSTRAP, POLICIES, RESULTS, SIZES, Dataset, TopicWatch, create_topics, delete_topics, \
    ensure_key_env, unique_prefix
from .harness import dpp_contender, fill_source, start

def summarize(speedscope: Path, top: int = 40) -> str:
    """Text summary of a py-spy speedscope file: per function, % of samples inclusive and self,
    for the thread that runs the route (the one with the most samples)."""
    doc = json.loads(speedscope.read_text())
    frames = doc["shared"]["frames"]
    best = max(doc["profiles"], key=lambda p: len(p["samples"]))
    samples, weights = best["samples"], best.get("weights") or [1] * len(best["samples"])
    total = sum(weights)

    root = str(Path(__file__).resolve().parents[1]) + "/"

    def where(i: int) -> tuple[str, str, int]:
        f = frames[i]
        file = (f.get("file") or "").replace(root, "")
        if "site-packages/" in file:
            file = file.split("site-packages/", 1)[1]
        if "/lib/python3" in file:
            file = "stdlib/" + file.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return f["name"], file, f.get("line") or 0

    incl: Counter = Counter()
    self_fn: Counter = Counter()
    self_line: Counter = Counter()
    for stack, w in zip(samples, weights):
        if not stack:
            continue
        fn, file, line = where(stack[-1])
        self_fn[f"{fn} ({file})"] += w
        self_line[f"{fn} ({file}:{line})"] += w
        for key in {"%s (%s)" % where(i)[:2] for i in stack}:
            incl[key] += w
    lines = [f"py-spy profile {speedscope.name}: thread {best.get('name', '?')}, {total} samples", "",
             "per function (incl = on the stack, self = innermost Python frame):",
             f"{'incl %':>7} {'self %':>7}  function (file)"]
    for fn, w in incl.most_common(top):
        lines.append(f"{100 * w / total:7.1f} {100 * self_fn[fn] / total:7.1f}  {fn}")
    lines += ["", "self time by source line (C calls are charged to the calling line):"]
    for fn, w in self_line.most_common(top):
        lines.append(f"{100 * w / total:7.1f}  {fn}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.profile_run", description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    ap.add_argument("--policy", type=Path, default=POLICIES / "b-no-fpe.yaml")
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    ap.add_argument("--note-chars", type=int, default=None)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too; slower)")
    ap.add_argument("--summary-only", type=Path, default=None, help="summarize an existing speedscope file")
    a = ap.parse_args(argv)
    if a.summary_only:
        print(summarize(a.summary_only))
        return 0
    if not shutil.which("py-spy"):
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    env = ensure_key_env()
    preset = SIZES[a.size]
    data = Dataset(a.note_chars if a.note_chars is not None else preset.note_chars, preset.max_orders)
    source, _ = fill_source(a.bootstrap, data, a.records, 3)
    pre = unique_prefix("ltp")
    sink, dlq = f"{pre}.sink", f"{pre}.dlq"
    create_topics(a.bootstrap, {sink: 3, dlq: 3})
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{a.policy.stem}-{a.size}"
    out = RESULTS / f"{stem}.speedscope.json"
    c = dpp_contender("p", "profiled", a.policy)
    child = start(c, a.bootstrap, source, sink, dlq, f"{pre}.group", RESULTS / "logs" / pre, env)
    spy = None
    try:
        child.wait_ready(120)
        cmd = ["py-spy", "record", "--pid", str(child.proc.pid), "--format", "speedscope", "-o", str(out),
               "--rate", str(a.rate), "--threads"] + (["--native"] if a.native else [])
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        watch = TopicWatch(a.bootstrap, sink)
        expected = data.consenting(a.records)
        t0, cpu0 = time.perf_counter(), child.cpu()
        while watch.total() < expected:
            if not child.alive():
                raise RuntimeError(child.tail())
            time.sleep(0.05)
        wall, cpu = time.perf_counter() - t0, child.cpu() - cpu0
        watch.close()
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        print(f"drained {a.records} records in {wall:.2f} s, proxy CPU {cpu:.2f} s while profiled "
              f"({a.records / cpu:,.0f} records/CPU-s under py-spy)")
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        child.close()
        delete_topics(a.bootstrap, [source, sink, dlq])
    text = summarize(out)
    (RESULTS / f"{stem}.txt").write_text(text + "\n")
    print(text)
    print(f"\nspeedscope: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
