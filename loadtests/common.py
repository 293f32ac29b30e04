"""Shared pieces of the load tests: data sets, topics, process monitoring, latency reading, stats.

Data: records come from the project's generator (:func:`proxy.generator.generate_records`). A
*pool* of distinct records is generated once per size and cached under ``loadtests/results/cache/``
(git-ignored; generating costs about 0.5 ms a record, so 100k fresh records would take ~50 s).
Record ``i`` of a data set is pool record ``i % len(pool)`` with ``record_id`` set to ``lt-<i>``;
the Kafka key is that record id, so every record of a run is unique.

Sizes (``--size``): the generator's records carry 0-3 orders of ~140 bytes each, so even an empty
note gives 0.68 KB on average. The presets keep the generator's records that have at most one order
(they are otherwise unchanged) and size the ``note``: ``0.5k`` = 20-character notes, ~0.59 KB;
``2k`` = 750-character notes, ~2.06 KB. Row (d) of the benchmark needs a 200-character note
(:data:`DETECT_NOTE_CHARS`, ~0.95 KB) and gets a data set of its own.

Time stamps for latency: the generator puts ``time.time_ns()`` at produce time into the
:data:`STAMP_HEADER` header (8 bytes, big-endian); the sink reader subtracts it from its own
``time.time_ns()`` when it reads the record. Both run on this machine, on the same clock.
"""
from __future__ import annotations

import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "loadtests" / "results"
POLICIES = ROOT / "loadtests" / "policies"
EXAMPLE_POLICY = ROOT / "policies" / "examples" / "customer-pii.yaml"
DEFAULT_BOOTSTRAP = os.environ.get("DPP_BENCH_BOOTSTRAP", "127.0.0.1:9092")
STAMP_HEADER = "lt-produced-ns"
KEY_VARS = ("DPP_KEY_PSEUDONYM", "DPP_KEY_FPE", "DPP_KEY_DEAD_LETTER")


@dataclass(frozen=True)
class SizePreset:
    """A record size: generator ``note_chars`` and the most orders a kept record may have."""

    name: str
    note_chars: int
    max_orders: int = 1


SIZES = {"0.5k": SizePreset("0.5k", 20), "2k": SizePreset("2k", 750)}
DETECT_NOTE_CHARS = 200
"""Note length of the data set of benchmark row (d) (``detect`` on the note)."""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def _faker_version() -> str:
    try:
        from importlib.metadata import version
        return version("Faker")
    except Exception:  # noqa: BLE001 - only used in a cache file name
        return "unknown"


def record_pool(note_chars: int, max_orders: int = 1, size: int = 5000, seed: int = 7) -> list[dict]:
    """``size`` distinct generated records (``generate_records(…, seed, note_chars=note_chars)``
    keeping those with at most ``max_orders`` orders), cached as JSON lines under
    ``loadtests/results/cache/``. Deterministic for a given Faker version."""
    cache = RESULTS / "cache" / f"pool-s{seed}-n{note_chars}-o{max_orders}-{size}-faker{_faker_version()}.jsonl"
    if cache.exists():
        recs = [orjson.loads(line) for line in cache.read_bytes().splitlines() if line]
        if len(recs) == size:
            return recs
    from proxy.generator import _record  # one record at a time, by index (deterministic)
    recs = []
    index = 0
    while len(recs) < size:
        r = _record(seed, index, note_chars)
        index += 1
        if len(r["orders"]) <= max_orders:
            recs.append(r)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    tmp.replace(cache)
    return recs


class Dataset:
    """Records ``0..n-1`` of a load test: pool records cycled, ``record_id`` = key = ``lt-<i>``.

    ``note_chars``/``max_orders``: see :func:`record_pool`. ``payload(i)`` gives ``(key, value)``
    bytes; ``blocked(i)`` tells whether the example policies withhold record ``i`` (analytics
    consent withdrawn).
    """

    def __init__(self, note_chars: int, max_orders: int = 1, pool_size: int = 5000, seed: int = 7,
                 mode: str = "json", avro_schema_id: int | None = None):
        self.note_chars, self.max_orders, self.mode = note_chars, max_orders, mode
        self.pool = record_pool(note_chars, max_orders, pool_size, seed)
        self._blocked = [r["consent"]["analytics"] is False for r in self.pool]
        if mode == "avro":  # the pool written once as Avro (proxy.generator.CUSTOMER_AVRO_SCHEMA)
            import io

            import fastavro

            from proxy.formats.base import frame
            from proxy.generator import CUSTOMER_AVRO_SCHEMA, avro_datum
            parsed = fastavro.parse_schema(CUSTOMER_AVRO_SCHEMA)
            self._avro = []
            for r in self.pool:
                bio = io.BytesIO()
                fastavro.schemaless_writer(bio, parsed, avro_datum(r))
                self._avro.append((avro_schema_id, bio.getvalue(), frame))

    @classmethod
    def for_size(cls, size: str) -> "Dataset":
        """The data set of a :data:`SIZES` preset."""
        p = SIZES[size]
        return cls(p.note_chars, p.max_orders)

    def payload(self, i: int) -> tuple:
        """``(key, value)``; mode ``keyed``: ``(mobile, value, [("x-user-email", email)])``;
        mode ``avro``: ``(key, Confluent-framed Avro)`` (the pool record's Avro bytes with the
        record id ``lt-<i>`` written in place of the pool's, same length class)."""
        rec = dict(self.pool[i % len(self.pool)])
        rid = f"lt-{i}"
        rec["record_id"] = rid
        if self.mode == "keyed":
            return rec["mobile"].encode(), orjson.dumps(rec), [("x-user-email", rec["email"].encode())]
        if self.mode == "avro":
            sid, body, frame = self._avro[i % len(self.pool)]
            old = self.pool[i % len(self.pool)]["record_id"].encode()
            # record_id is the first field: a zigzag-varint length, then the UTF-8 bytes
            return rid.encode(), frame(sid, _avro_str(rid) + body[len(_avro_str(old.decode())):])
        return rid.encode(), orjson.dumps(rec)

    def payloads(self, n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
        """``[payload(i) for i in range(start, start + n)]``."""
        return [self.payload(i) for i in range(start, start + n)]

    def blocked(self, i: int) -> bool:
        return self._blocked[i % len(self.pool)]

    def consenting(self, n: int, start: int = 0) -> int:
        """How many of records ``start..start+n-1`` a policy with the consent block lets through."""
        return sum(1 for i in range(start, start + n) if not self.blocked(i))

    def mean_bytes(self) -> float:
        """Mean value size (bytes) over the pool."""
        return sum(len(orjson.dumps(r)) for r in self.pool) / len(self.pool)


def _avro_str(s: str) -> bytes:
    """Avro binary encoding of a string: zigzag varint length, then UTF-8 (Avro 1.11 spec)."""
    b = s.encode()
    n, out = len(b) << 1, bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + b


def ensure_key_env(env: dict | None = None) -> dict:
    """``env`` (default ``os.environ``) with random 32-byte hex keys for the example policies'
    key variables that are not set. The keys are never printed."""
    env = dict(os.environ if env is None else env)
    for var in KEY_VARS:
        if not env.get(var):
            env[var] = secrets.token_hex(32)
    return env


def engine_bench_args(prog: str, doc: str, rounds: int, argv: list[str] | None) -> tuple:
    """The policy-engine micro-benchmarks' command line (``--records``, ``--rounds``, ``--size``)
    parsed, the keys in the environment (:func:`ensure_key_env`) and the generated record values:
    ``(args, values)``."""
    import argparse
    ap = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k")
    a = ap.parse_args(argv)
    os.environ.update(ensure_key_env())
    return a, [v for _, v in Dataset.for_size(a.size).payloads(a.records)]


def unique_prefix(tag: str = "lt") -> str:
    """A fresh topic/group prefix, e.g. ``lt.3f9a2c1b``."""
    return f"{tag}.{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------

def create_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 30) -> None:
    """Create ``{name: partitions}`` (replication 1) and wait until their metadata is visible."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    futs = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()],
                               operation_timeout=timeout_s)
    for f in futs.values():
        f.result(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        md = admin.list_topics(timeout=10).topics
        if all(t in md and md[t].error is None and len(md[t].partitions) == n for t, n in topics.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {sorted(topics)} not visible after {timeout_s} s")
        time.sleep(0.1)


def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Best-effort deletion of ``names``."""
    from confluent_kafka.admin import AdminClient
    if not names:
        return
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})  # keep a reference: a destroyed client fails its futures
        futs = admin.delete_topics(list(names), operation_timeout=30)
        for f in futs.values():
            try:
                f.result(timeout=30)
            except Exception:  # noqa: BLE001 - best effort
                pass
    except Exception:  # noqa: BLE001 - best effort
        pass


class TopicWatch:
    """Sum of a topic's high watermarks (acknowledged records), asked of the broker each time."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import Consumer, TopicPartition
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lt-watch-{uuid.uuid4().hex[:8]}",
                            "enable.auto.commit": False})
        md = self._c.list_topics(topic, timeout=10).topics[topic]
        self._tps = [TopicPartition(topic, p) for p in sorted(md.partitions)]

    def total(self) -> int:
        return sum(self._c.get_watermark_offsets(tp, timeout=5, cached=False)[1] for tp in self._tps)

    def close(self) -> None:
        self._c.close()


class GroupWatch:
    """Sum of a consumer group's committed offsets on a topic, asked of the broker each time."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        from confluent_kafka import Consumer, TopicPartition
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        md = self._c.list_topics(topic, timeout=10).topics[topic]
        self._tps = [TopicPartition(topic, p) for p in sorted(md.partitions)]
        self._last = 0

    def committed(self) -> int:
        """The sum now; when the broker does not answer within 5 s (a coordinator moving while
        workers are killed, a loaded machine), the last sum seen (offsets only grow)."""
        from confluent_kafka import KafkaException
        try:
            self._last = sum(max(tp.offset, 0) for tp in self._c.committed(self._tps, timeout=5))
        except KafkaException:
            pass
        return self._last

    def close(self) -> None:
        self._c.close()


def produce_payloads(bootstrap: str, topic: str, items: Iterator[tuple] | Sequence,
                     total: int | None = None, desc: str | None = None, config: dict | None = None) -> int:
    """Produce ``(key, value)`` pairs (or ``(key, value, headers)``) as fast as possible (idempotent, acks=all) and wait for every
    acknowledgement; returns the count. ``config``: producer settings that override these. Raises ``RuntimeError`` on a
    failed delivery."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 20, "batch.num.messages": 10000, "queue.buffering.max.messages": 500000,
                  "queue.buffering.max.kbytes": 1048576, "compression.type": "none", **(config or {})})
    errors: list = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)
    bar = _bar(total, desc)
    n = 0
    for item in items:
        key, value = item[0], item[1]
        headers = item[2] if len(item) > 2 else None
        while True:
            try:
                p.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 5000 == 0:
            p.poll(0)
            if bar:
                bar.update(5000)
    if p.flush(120):
        raise RuntimeError(f"producing to {topic}: records not acknowledged after 120 s")
    if bar:
        bar.update(n % 5000)
        bar.close()
    if errors:
        raise RuntimeError(f"producing to {topic}: {len(errors)} deliveries failed ({errors[0]})")
    return n


def _bar(total: int | None, desc: str | None):
    if not desc or (not sys.stderr.isatty() and os.environ.get("LT_PROGRESS") != "1") or os.environ.get("LT_PROGRESS") == "0":
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="rec", unit_scale=True, leave=False, file=sys.stderr)


def progress_bar(total: int | None, desc: str):
    """A tqdm bar on stderr when it is a terminal (or ``LT_PROGRESS=1``), else ``None``."""
    return _bar(total, desc)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

def python_command() -> list[str]:
    """This interpreter, unbuffered."""
    return [sys.executable, "-u"]


def dpp_command() -> list[str]:
    """``dpp`` as this interpreter running the package (``python -m proxy``): the measured
    process is the Python process itself, not a launcher shim."""
    return [sys.executable, "-m", "proxy"]


def cpu_seconds(proc) -> float:
    """User + system CPU seconds of a ``psutil.Process`` (all its threads)."""
    t = proc.cpu_times()
    return t.user + t.system


def peak_rss_bytes(pid: int) -> int | None:
    """Peak resident set size of ``pid`` (Linux ``VmHWM``), or ``None`` where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Child:
    """A measured subprocess (the proxy, the raw pass-through, the faust worker).

    Its stdout and stderr are merged and copied line by line to ``log_path`` by a reader thread;
    the first line containing ``ready_marker`` sets :attr:`ready` and records, at that moment,
    the process's CPU seconds (:attr:`cpu_at_ready`) and ``time.perf_counter()``
    (:attr:`t_ready`): start-up (imports, policy compilation, group join) is excluded from the
    measured CPU. A thread samples RSS every ``sample_s`` seconds into :attr:`samples`
    (``(perf_counter, rss bytes, cpu seconds)``).
    """

    def __init__(self, argv: Sequence[str], env: dict, log_path: Path, ready_marker: str, sample_s: float = 0.25,
                 on_line: Callable[[str], None] | None = None, cwd: Path | None = None):
        import psutil
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(list(argv), env=env, cwd=str(cwd or ROOT), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self.ps = psutil.Process(self.proc.pid)
        self.ready = threading.Event()
        self.cpu_at_ready = 0.0
        self.threads_at_ready: dict[str, float] = {}
        self.t_ready = 0.0
        self.samples: list[tuple[float, int, float]] = []
        self._marker, self._on_line = ready_marker, on_line
        self._stop = threading.Event()
        self._sample_s = sample_s
        self._peak = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if not self.ready.is_set() and self._marker in line:
                try:
                    self.cpu_at_ready = cpu_seconds(self.ps)
                    self.threads_at_ready = self.thread_cpu()
                except Exception:  # noqa: BLE001 - process gone
                    pass
                self.t_ready = time.perf_counter()
                self.ready.set()
            self._log.write(line)
            if self._on_line is not None:
                self._on_line(line)
        self._log.flush()

    def _sample(self) -> None:
        while not self._stop.wait(self._sample_s):
            try:
                rss = self.ps.memory_info().rss
                cpu = cpu_seconds(self.ps)
            except Exception:  # noqa: BLE001 - process gone
                return
            self._peak = max(self._peak, rss)
            self.samples.append((time.perf_counter(), rss, cpu))

    def cpu(self) -> float:
        """CPU seconds of the process and of its live descendants (the workers of ``dpp run --workers N``)."""
        import psutil
        total = cpu_seconds(self.ps)
        for child in self.ps.children(recursive=True):
            try:
                total += cpu_seconds(child)
            except psutil.NoSuchProcess:
                pass
        return total

    def runqueue_wait(self) -> float:
        """Seconds the process's threads have spent runnable but waiting for a CPU (Linux
        ``/proc/<pid>/task/*/schedstat``, second field; 0.0 where unavailable). Growing by about a
        second per second means the proxy is starved of CPU by other processes."""
        total = 0
        try:
            for t in Path(f"/proc/{self.proc.pid}/task").iterdir():
                try:
                    total += int((t / "schedstat").read_text().split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        except OSError:
            return 0.0
        return total / 1e9

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds per thread name (``/proc/<pid>/task/<tid>/comm``: ``route-<name>`` is the
        record thread, ``rdk:*`` librdkafka's), summed over threads of the same name."""
        out: dict[str, float] = {}
        try:
            for t in self.ps.threads():
                try:
                    name = Path(f"/proc/{self.proc.pid}/task/{t.id}/comm").read_text().strip()
                except OSError:
                    name = str(t.id)
                if name.startswith("rdk:broker"):
                    name = "rdk:broker*"
                out[name] = out.get(name, 0.0) + t.user_time + t.system_time
        except Exception:  # noqa: BLE001 - process gone
            pass
        return out

    def peak_rss(self) -> int:
        """Peak RSS in bytes (``VmHWM`` while the process lives, else the sampled maximum)."""
        hwm = peak_rss_bytes(self.proc.pid) if self.alive() else None
        return max(hwm or 0, self._peak)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.1):
            if not self.alive():
                raise RuntimeError(f"{self.proc.args[:4]} exited with {self.proc.returncode} before it was ready; "
                                   f"log: {self.log_path}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout_s} s; log: {self.log_path}\n{self.tail()}")

    def text(self) -> str:
        """Everything the process has written so far (its log file, flushed first)."""
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, n: int = 15) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL (this process only). Returns the exit code."""
        self._stop.set()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.flush()
        return self.proc.returncode

    def close(self) -> None:
        self.stop()
        self._log.close()


# --------------------------------------------------------------------------------------------
# Reading the sink, latency
# --------------------------------------------------------------------------------------------

class SinkReader(threading.Thread):
    """Reads every partition of ``topic`` from the beginning with its own consumer (no group
    commit) and records, for each record carrying :data:`STAMP_HEADER`, ``(produced ns,
    latency ns)`` where latency = read time − produce stamp. :attr:`count` counts every record.
    :meth:`drain` hands over (and forgets) what was recorded so far, for long runs."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lt-reader-{uuid.uuid4().hex[:8]}",
                            "enable.auto.commit": False, "fetch.wait.max.ms": 50, "fetch.min.bytes": 1,
                            "enable.partition.eof": False})
        md = self._c.list_topics(topic, timeout=10).topics[topic]
        self._c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(md.partitions)])
        self.count = 0
        self.stamps: list[int] = []
        self.latencies: list[int] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        c = self._c
        name = STAMP_HEADER
        while not self._halt.is_set():
            msgs = c.consume(10000, 0)
            if not msgs:
                m = c.poll(0.05)
                if m is None:
                    continue
                msgs = [m]
            now = time.time_ns()
            stamps: list[int] = []
            lats: list[int] = []
            n = 0
            for m in msgs:
                if m.error() is not None:
                    continue
                n += 1
                for k, v in m.headers() or ():
                    if k == name:
                        ts = int.from_bytes(v, "big")
                        stamps.append(ts)
                        lats.append(now - ts)
                        break
            with self._lock:
                self.count += n
                self.stamps.extend(stamps)
                self.latencies.extend(lats)
        c.close()

    def drain(self) -> tuple[list[int], list[int]]:
        """``(stamps, latencies)`` recorded since the last call (ns), then forgotten."""
        with self._lock:
            out = (self.stamps, self.latencies)
            self.stamps, self.latencies = [], []
        return out

    def halt(self) -> None:
        self._halt.set()
        self.join(10)


class GroupLag:
    """Lag of a consumer group on a topic, measured from outside the proxy: sum over partitions
    of (high watermark − committed offset), read with a consumer that never joins the group."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        from confluent_kafka import Consumer, TopicPartition
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        md = self._c.list_topics(topic, timeout=10).topics[topic]
        self._tps = [TopicPartition(topic, p) for p in sorted(md.partitions)]

    def lag(self) -> int:
        committed = {tp.partition: tp.offset for tp in self._c.committed(self._tps, timeout=10)}
        total = 0
        for tp in self._tps:
            hi = self._c.get_watermark_offsets(tp, timeout=5, cached=False)[1]
            total += hi - max(0, committed.get(tp.partition, 0))
        return total

    def close(self) -> None:
        self._c.close()


def percentiles_ms(lat_ns: Sequence[int], qs=(50, 95, 99)) -> dict[str, float]:
    """``{"p50": ms, "p95": ms, "p99": ms, "max": ms, "n": count}`` of latencies in ns (nearest rank)."""
    if not lat_ns:
        return {**{f"p{q}": float("nan") for q in qs}, "max": float("nan"), "n": 0}
    s = sorted(lat_ns)
    n = len(s)
    out = {f"p{q}": s[min(n - 1, max(0, math.ceil(q / 100 * n) - 1))] / 1e6 for q in qs}
    out["max"] = s[-1] / 1e6
    out["n"] = n
    return out


def linear_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0.0 with fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def load_average() -> tuple[float, float, float]:
    """``os.getloadavg()`` (1, 5, 15 minutes)."""
    return os.getloadavg()


@dataclass
class Machine:
    """What ran the benchmark (goes into the JSON)."""

    cpus: int = field(default_factory=lambda: os.cpu_count() or 0)
    load_before: tuple = field(default_factory=load_average)
    python: str = field(default_factory=lambda: sys.version.split()[0])

    def as_dict(self) -> dict:
        import platform
        try:
            from importlib.metadata import version
            versions = {p: version(p) for p in ("confluent-kafka", "orjson", "cryptography")}
        except Exception:  # noqa: BLE001
            versions = {}
        import confluent_kafka
        return {"cpus": self.cpus, "load_before": list(self.load_before), "load_after": list(load_average()),
                "python": self.python, "platform": platform.platform(), "librdkafka": confluent_kafka.libversion()[0],
                **versions}


def start_moto_server():
    """``moto`` in server mode (a local stand-in for AWS KMS and other AWS APIs, not AWS) on a free
    127.0.0.1 port: ``(process, endpoint URL)``, once it answers. The caller terminates it."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")
