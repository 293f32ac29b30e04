"""The peer rows of the benchmark: Kroxylicious, measured as its users deploy it.

Kroxylicious is a proxy on the Kafka protocol: producers and consumers connect to it instead of the
broker, and its filters rewrite the requests in flight. So its rows are measured with a producer
writing through it (bootstrap = the proxy's port) into a topic of the broker:

* (k0) Kroxylicious 0.12 without a filter (``DPP_KROXYLICIOUS_FILTER=none``): the cost of the proxy;
* (ke) its RecordEncryption filter, in-memory KMS, every topic's records encrypted whole
  (``record-encryption``: one AES-256-GCM data key per KEK, the whole value sealed, its key left
  in clear, an ``kroxylicious.io/encryption`` header added).

Per row and round: ``deploy/kroxylicious.sh start`` (a fresh JVM), a warm-up run of
``warmup`` records into a topic of its own (discarded: the JIT compiles the hot path), then the
measured run: the same records as the dpp rows (:class:`loadtests.common.Dataset`) produced through
the proxy (idempotent, ``acks=all``, as :func:`loadtests.common.produce_payloads`), timed from the
first record handed to the producer to the last one acknowledged; the proxy JVM's CPU time
(``/proc/PID/stat`` utime + stime, every thread) over that span is what counts. The producer runs in
the benchmark's process, not in the measured one. Then ``stop``.

The work differs from dpp's: a dpp row consumes the source, applies field-level rules to each
parsed record and produces to the sink (two client sides, a JSON parse and serialization per
record); (ke) seals the whole value with one AES-GCM call per record on the produce path only and
cannot protect a field, block a record or keep a value usable. Both are shown side by side.
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .common import (
    ROOT,
    Dataset,
    TopicWatch,
    create_topics,
    delete_topics,
    peak_rss_bytes,
    produce_payloads,
    unique_prefix,
)

SCRIPT = ROOT / "deploy" / "kroxylicious.sh"
DEFAULT_PORT = int(os.environ.get("DPP_BENCH_KROXYLICIOUS_PORT", "9192"))


@dataclass(frozen=True)
class Peer:
    """A Kroxylicious row: ``filter`` is ``DPP_KROXYLICIOUS_FILTER`` (``none`` or ``record-encryption``)."""

    key: str
    label: str
    filter: str
    kind: str = "kroxylicious"


K0 = Peer("k0", "Kroxylicious, no filter", "none")
KE = Peer("ke", "Kroxylicious, RecordEncryption, in-memory KMS", "record-encryption")
PEERS = (K0, KE)
WORK_NOTE = ("note: the work differs: (k0)/(ke) proxy the produce path only, and (ke) seals each whole value "
             "(AES-256-GCM, in-memory KMS); dpp's rows consume, parse and apply field-level rules "
             "(masks, pseudonyms, FF1, a consent block) and produce")


PRODUCER = {"batch.size": 500_000}
"""Producer batches of at most 500 kB (librdkafka's default is 1 MB): RecordEncryption makes each
record larger (its data key reference, IV and tag), and a 1 MB batch of them exceeds the broker's
``message.max.bytes`` (1 MB), which fails every record of it. The same setting for (k0) and (ke)."""


def proc_cpu_seconds(stat_text: str, ticks_per_s: int) -> float:
    """User + system CPU seconds of a process from the text of its ``/proc/PID/stat`` (fields 14
    and 15, in clock ticks; the command name in parentheses may itself hold spaces and parentheses,
    so the fields are counted after its last ``)``). Raises ``ValueError`` on another shape."""
    rest = stat_text[stat_text.rindex(")") + 2:].split()
    if len(rest) < 13:
        raise ValueError("not a /proc/PID/stat line")
    return (int(rest[11]) + int(rest[12])) / ticks_per_s


def jvm_cpu_seconds(pid: int) -> float:
    """:func:`proc_cpu_seconds` of the live process ``pid``."""
    return proc_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))


def script_env(peer: Peer, port: int, target: str) -> dict:
    return dict(os.environ, DPP_KROXYLICIOUS_PORT=str(port), DPP_KROXYLICIOUS_TARGET=target,
                DPP_KROXYLICIOUS_FILTER=peer.filter)


def available() -> str | None:
    """``None`` when Kroxylicious's jars are there or can be resolved (``deploy/kroxylicious.sh fetch``),
    else why not (the end of what the script said)."""
    out = subprocess.run(["bash", str(SCRIPT), "fetch"], capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        return "deploy/kroxylicious.sh fetch failed: " + " ".join(out.stderr.split())[-300:]
    return None


def timed_produce(bootstrap: str, topic: str, payloads: list, pid: int) -> tuple[float, float]:
    """Produce ``payloads`` to ``topic`` through ``bootstrap`` and wait for every acknowledgement:
    ``(wall seconds, CPU seconds of process pid)`` from the first record to the last acknowledged."""
    cpu0, t0 = jvm_cpu_seconds(pid), time.perf_counter()
    produce_payloads(bootstrap, topic, payloads, config=PRODUCER)
    t1, cpu1 = time.perf_counter(), jvm_cpu_seconds(pid)
    return t1 - t0, cpu1 - cpu0


def measure_peer(peer: Peer, broker: str, data: Dataset, records: int, partitions: int, source_bytes: int,
                 workdir: Path, port: int = DEFAULT_PORT, warmup: int | None = None) -> dict:
    """One round of a peer row (see the module doc): a fresh proxy in front of ``broker``, a
    warm-up of ``warmup`` records (default ``records``), then ``records`` records of ``data`` timed.
    Returns the harness's figures (``ok`` False with ``error`` on failure); ``source_bytes`` are
    the bytes of keys and values of those records (for MB/s)."""
    env = script_env(peer, port, broker.split(",")[0])
    res: dict = {"key": peer.key, "label": peer.label, "kind": peer.kind, "filter": peer.filter, "records": records,
                 "expected_sink": records, "ok": False}
    pre = unique_prefix(f"lt{peer.key}")
    warm_topic, topic = f"{pre}.warmup", f"{pre}.sink"
    create_topics(broker, {warm_topic: partitions, topic: partitions})
    workdir.mkdir(parents=True, exist_ok=True)
    started = False
    try:
        out = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300, check=False)
        (workdir / f"{peer.key}-kroxylicious-start.log").write_text(out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"deploy/kroxylicious.sh start failed: {' '.join(out.stderr.split())[-400:]}")
        started = True
        proxy = out.stdout.strip().splitlines()[-1]
        pid = int(subprocess.run(["bash", str(SCRIPT), "pid"], env=env, capture_output=True, text=True,
                                 check=True).stdout.strip())
        payloads = data.payloads(records)
        warm = payloads if warmup is None or warmup >= records else payloads[:warmup]
        res["warmup_records"] = len(warm)
        res["warmup_wall_s"], res["warmup_cpu_s"] = (round(x, 3) for x in timed_produce(proxy, warm_topic, warm, pid))
        wall, cpu = timed_produce(proxy, topic, payloads, pid)
        watch = TopicWatch(broker, topic)
        try:
            sink_total = watch.total()
        finally:
            watch.close()
        if sink_total != records:
            raise RuntimeError(f"the topic holds {sink_total} records, {records} were acknowledged")
        peak = peak_rss_bytes(pid) or 0
        res.update(ok=True, wall_s=round(wall, 3), cpu_s=round(cpu, 3), records_per_s=round(records / wall),
                   records_per_s_overall=round(records / wall),
                   mb_per_s=round(source_bytes / wall / 1e6, 2), cpu_s_per_100k=round(cpu / records * 1e5, 3),
                   records_per_cpu_s=round(records / cpu) if cpu > 0 else None,
                   cpu_util=round(cpu / wall, 2) if wall > 0 else None, peak_rss_mb=round(peak / 2**20, 1),
                   sink_total=sink_total, log=str(Path(os.environ.get("DPP_KROXYLICIOUS_CACHE", ROOT / ".cache" / "kroxylicious"))
                                                  / f"proxy-{port}" / "proxy.log"))
    except Exception as e:  # noqa: BLE001 - reported in the row
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120, check=False)
        delete_topics(broker, [warm_topic, topic])
    return res
