"""Workers killed at random: three ``dpp run`` workers in one consumer group, one of them SIGKILLed
every ``--interval`` seconds and restarted, until the group has consumed everything.

::

    python -m loadtests.killrun [--records 200000] [--guarantee exactly_once|at_least_once] [--interval 10]
                                [--rate 2000] [--seed 1]

The run (topics of its own, ``--partitions`` 6):

1. ``--records`` records go into the source at ``--rate`` records/s (default 2,000, so that the run
   lasts long enough for many kills; 0: all before the workers start): the example policy's
   generated customer records (:class:`loadtests.common.Dataset`, key = record id ``lt-<i>``), one in
   ``--malformed-every`` (200) replaced by a malformed payload (key ``bad-<j>``) that must be
   dead-lettered;
2. meanwhile ``--workers`` (3) workers start on ``policies/examples/customer-pii.yaml`` with
   ``processing_guarantee: --guarantee`` and their own ``--instance-id`` (``w0``, ``w1``, ``w2``:
   the transactional id of an exactly-once worker, which a restart reuses, fencing the dead
   incarnation and aborting its open transaction);
3. every ``--interval`` seconds one worker, drawn by ``random.Random(--seed)``, is killed with
   SIGKILL and started again at once with the same instance id; a worker that exits by itself fails
   the run;
4. once every record is produced and the group's committed offsets are at the end of every source
   partition, the workers stop (each once it has started: SIGTERM, exit 0 expected) and everything
   is read back with kafka-python, a client independent of the engine's librdkafka
   (``tests/integration/helpers.py``), ``read_committed`` for exactly-once: every source offset
   must be accounted for (a consenting record in the sink, a malformed one in the dead-letter
   topic, a consent-withdrawn one in neither: a counted block), every duplicate byte-identical,
   none at all with exactly-once, no personal value of a source record in clear in the sink.

The wall time runs from the first record produced until the group has committed the last offset.

Prints the figures (records, kills, restarts, duplicates, missing, dead-lettered, blocked, wall
time, load average) and writes ``loadtests/results/killrun-<guarantee>-<time>.json``; exits 1 when
an offset is not accounted for, a duplicate differs (or exists, exactly-once) or a value leaked.
``tests/integration/test_kill_workers.py`` runs a smaller version of the same function in CI.
"""
from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml

from proxy.generator import malformed_payloads

from .common import (DEFAULT_BOOTSTRAP, EXAMPLE_POLICY, RESULTS, Child, Dataset, GroupLag, GroupWatch, create_topics,
                     delete_topics, ensure_key_env, load_average, produce_payloads, unique_prefix)
from .harness import dpp_contender, start

GUARANTEES = ("exactly_once", "at_least_once")


@dataclass
class KillRun:
    """Figures of one run (:func:`kill_run`) and where every source record ended."""

    figures: dict
    accounting: object
    """``tests.integration.helpers.Accounting``: call ``check()``."""

    @property
    def ok(self) -> bool:
        try:
            self.accounting.check(duplicates_allowed=self.figures["guarantee"] != "exactly_once")
        except AssertionError:
            return False
        return self.figures["in_clear"] == 0 and self.figures["unclean_exits"] == 0


def guarantee_policy(guarantee: str, out: Path) -> Path:
    """The example policy with ``processing_guarantee: guarantee`` on its route, written to ``out``."""
    data = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    data["routes"][0]["processing_guarantee"] = guarantee
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def source_messages(data: Dataset, records: int, malformed_every: int, seed: int) -> tuple[list, set, set]:
    """``(messages, blocked keys, malformed keys)``: ``records`` ``(key, value)`` pairs, record ``i``
    from ``data`` unless ``i % malformed_every == malformed_every // 2`` (then a malformed payload)."""
    n_bad = records // malformed_every if malformed_every else 0
    bad = malformed_payloads(n_bad, seed=seed) if n_bad else []
    msgs, blocked, malformed = [], set(), set()
    for i in range(records):
        j = i // malformed_every if malformed_every else 0
        if malformed_every and i % malformed_every == malformed_every // 2 and j < n_bad:
            key = f"bad-{j}".encode()
            msgs.append((key, bad[j]))
            malformed.add(key)
            continue
        key, value = data.payload(i)
        msgs.append((key, value))
        if data.blocked(i):
            blocked.add(key)
    return msgs, blocked, malformed


def paced(items: list, rate: float, halt: threading.Event):
    """Yield ``items`` at about ``rate`` per second (all at once when ``rate`` is 0), until ``halt``."""
    t0 = time.monotonic()
    for n, item in enumerate(items):
        if rate and n % 100 == 0:
            if halt.is_set():
                return
            ahead = t0 + n / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        yield item


def kill_run(bootstrap: str, records: int, guarantee: str, interval_s: float, *, rate: float = 2000,
             max_kills: int | None = None, workers: int = 3,
             partitions: int = 6, batch_size: int = 500, malformed_every: int = 200, seed: int = 1,
             workdir: Path | None = None, env: dict | None = None, timeout_s: float = 1200,
             keep_topics: bool = False) -> KillRun:
    """One run as the module doc says; returns its :class:`KillRun`. ``max_kills``: stop killing after
    that many (the CI version: the rest drains without kills), default: kill until the end. Raises ``RuntimeError`` when
    a worker exits by itself or the group does not consume everything within ``timeout_s``."""
    from tests.integration.helpers import account_for, personal_values, read_topic
    if guarantee not in GUARANTEES:
        raise ValueError(f"guarantee must be one of {GUARANTEES}")
    env = ensure_key_env(env)
    workdir = workdir or RESULTS / "logs" / time.strftime(f"killrun-{guarantee}-%Y%m%d-%H%M%S")
    pre = unique_prefix("kr")
    src, sink, dlq, group = f"{pre}.source", f"{pre}.sink", f"{pre}.dlq", f"{pre}.group"
    data = Dataset.for_size("0.5k")
    msgs, blocked, malformed = source_messages(data, records, malformed_every, seed)
    policy = dpp_contender("k", f"dpp {guarantee}", guarantee_policy(guarantee, workdir / f"policy-{guarantee}.yaml"))
    create_topics(bootstrap, {src: partitions, sink: partitions, dlq: partitions})
    rng = random.Random(seed)
    procs: list[Child] = []
    gone: list[Child] = []
    kills = restarts = 0
    load0 = load_average()
    lag = None
    progress = None
    timeline: list[tuple[float, int, int]] = []  # (seconds since start, committed, lag), about once a second

    def launch(k: int, gen: int) -> Child:
        return start(policy, bootstrap, src, sink, dlq, group, workdir, env, batch_size, name=f"w{k}.{gen}",
                     extra=["--instance-id", f"w{k}"])
    produced: list = []
    halt = threading.Event()

    def produce() -> None:
        try:
            produced.append(produce_payloads(bootstrap, src, paced(msgs, rate, halt)))
        except BaseException as e:  # noqa: BLE001 - raised in the main thread
            produced.append(e)
    producer = threading.Thread(target=produce, name="killrun-producer", daemon=True)
    try:
        t0 = time.monotonic()
        if rate:
            producer.start()
        else:
            produce()
        procs = [launch(k, 0) for k in range(workers)]
        gens = [0] * workers
        lag = GroupLag(bootstrap, group, src)
        progress = GroupWatch(bootstrap, group, src)
        next_kill = t0 + interval_s
        while True:
            for k, w in enumerate(procs):
                if not w.alive():
                    raise RuntimeError(f"worker w{k} exited by itself with {w.proc.returncode}; log {w.log_path}\n"
                                       f"{w.tail()}")
            try:
                left = lag.lag()
            except Exception:  # noqa: BLE001 - the group has no committed offsets yet, or a slow answer
                left = None
            if produced and isinstance(produced[0], BaseException):
                raise RuntimeError(f"producing the source failed: {produced[0]!r}")
            if left == 0 and produced:
                break
            now = time.monotonic()
            if left is not None and (not timeline or now - t0 - timeline[-1][0] >= 1.0):
                timeline.append((round(now - t0, 1), progress.committed(), left))
            if now - t0 > timeout_s:
                raise RuntimeError(f"not consumed after {timeout_s} s (lag {left}); logs in {workdir}")
            if now >= next_kill and (max_kills is None or kills < max_kills):
                k = rng.randrange(workers)
                victim = procs[k]
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait(30)
                kills += 1
                gone.append(victim)
                gens[k] += 1
                procs[k] = launch(k, gens[k])
                restarts += 1
                next_kill += interval_s
            time.sleep(0.2)
        wall = time.monotonic() - t0
        for w in procs:  # a worker restarted just now: SIGTERM only once it runs (handler installed)
            try:
                w.wait_ready(60)
            except (RuntimeError, TimeoutError):
                pass  # its exit code says what happened
        codes = [w.stop(60) for w in procs]
        load1 = load_average()

        source = read_topic(bootstrap, src, timeout_s=600)
        isolation = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
        out = read_topic(bootstrap, sink, timeout_s=600, isolation=isolation)
        dead = read_topic(bootstrap, dlq, timeout_s=600, isolation=isolation)
        aborted = None
        if guarantee == "exactly_once":
            aborted = len(read_topic(bootstrap, sink, timeout_s=600)) - len(out)
    finally:
        halt.set()
        if producer.is_alive():
            producer.join(130)
        for watch in (lag, progress):
            if watch is not None:
                watch.close()
        for w in procs + gone:
            w.close()
        if not keep_topics:
            delete_topics(bootstrap, [src, sink, dlq])

    acc = account_for(source, out, dead, blocked, malformed)
    secrets = {}
    in_clear = 0
    for r in out:
        i = int(r.key.decode().removeprefix("lt-")) % len(data.pool) if r.key.startswith(b"lt-") else None
        if i is None:
            continue
        if i not in secrets:
            secrets[i] = [v.encode() for v in personal_values(data.pool[i])]
        in_clear += any(v in r.value for v in secrets[i])
    figures = {
        "guarantee": guarantee, "records": records, "rate": rate, "workers": workers, "partitions": partitions,
        "interval_s": interval_s, "seed": seed, "kills": kills, "restarts": restarts,
        "in_sink": acc.in_sink, "sink_records": len(out), "dead_lettered": acc.dead_lettered, "blocked": acc.blocked,
        "duplicates_sink": acc.sink_duplicates, "duplicates_dead_letter": acc.dead_duplicates,
        "differing_duplicates": len(acc.differing), "missing": len(acc.missing), "misplaced": len(acc.misplaced),
        "unexpected": acc.unexpected, "in_clear": in_clear, "aborted_copies_in_log": aborted,
        "final_exit_codes": codes, "unclean_exits": sum(1 for c in codes if c != 0),
        "longest_stall_s": longest_stall(timeline), "wall_s": round(wall, 1), "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
        "logs": str(workdir), "lag_timeline": timeline,
    }
    return KillRun(figures, acc)


def longest_stall(timeline: list[tuple[float, int, int]]) -> float:
    """The longest time (s) the group committed nothing while records were waiting (lag above 0)."""
    best, since = 0.0, None
    for (t, done, lag), (t_prev, done_prev, _lag) in zip(timeline[1:], timeline):
        if lag > 0 and done <= done_prev:
            since = t_prev if since is None else since
            best = max(best, t - since)
        else:
            since = None
    return round(best, 1)


def report(run: KillRun) -> str:
    """The figures as printed by the CLI."""
    f = run.figures
    lines = [
        f"kill run, {f['guarantee']}: {f['records']:,} records at {f['rate']:,.0f}/s, {f['workers']} workers, {f['partitions']} partitions, "
        f"one worker SIGKILLed every {f['interval_s']:g} s (seed {f['seed']})",
        f"  kills {f['kills']}, restarts {f['restarts']}, wall time {f['wall_s']} s, "
        f"longest time with records waiting and no offset committed {f['longest_stall_s']} s",
        f"  sink: {f['in_sink']:,} records ({f['sink_records']:,} copies"
        + (f", read_committed; {f['aborted_copies_in_log']:,} aborted copies in the log" if f["aborted_copies_in_log"]
           is not None else "") + ")",
        f"  dead-lettered {f['dead_lettered']:,}, blocked {f['blocked']:,}, "
        f"accounted for {f['in_sink'] + f['dead_lettered'] + f['blocked']:,} of {f['records']:,}",
        f"  duplicates: sink {f['duplicates_sink']:,}, dead-letter {f['duplicates_dead_letter']:,}, "
        f"differing {f['differing_duplicates']}",
        f"  missing {f['missing']}, misplaced {f['misplaced']}, unexpected {f['unexpected']}, in clear {f['in_clear']}",
        f"  final SIGTERM exit codes {f['final_exit_codes']}",
        f"  load average {f['load_before'][0]:.2f} before, {f['load_after'][0]:.2f} after (2 cores)",
        f"  {'OK' if run.ok else 'FAILED'}; logs {f['logs']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.killrun", description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--guarantee", choices=GUARANTEES, default="exactly_once")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between kills")
    ap.add_argument("--rate", type=float, default=2000, help="records/s into the source (0: all first)")
    ap.add_argument("--max-kills", type=int, default=None, help="stop killing after N kills (default: never)")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--malformed-every", type=int, default=200, help="one malformed record in N (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP)
    a = ap.parse_args(argv)
    run = kill_run(a.bootstrap, a.records, a.guarantee, a.interval, rate=a.rate, max_kills=a.max_kills, workers=a.workers, partitions=a.partitions,
                   batch_size=a.batch_size, malformed_every=a.malformed_every, seed=a.seed)
    print(report(run))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"killrun-{a.guarantee}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_bytes(orjson.dumps(run.figures, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
