"""Shared helpers of the integration tests (real broker, ``dpp run`` as a real subprocess).

* write side: :func:`create_topics` / :func:`delete_topics` (confluent-kafka admin) and
  :func:`produce` (confluent-kafka producer, idempotent, every delivery checked);
* read side: :func:`read_topic`, :func:`committed_offsets` and :func:`group_lag` use
  **kafka-python**, a client independent of the engine's librdkafka, so a bug shared by the
  engine and its own client library cannot hide itself;
* :class:`DppProcess` starts/stops ``dpp run`` and scrapes its ``/metrics`` endpoint with
  ``prometheus_client.parser``;
* :func:`policy_copy` writes a per-test copy of ``policies/examples/customer-pii.yaml`` with
  unique topic names and consumer group;
* checks shared by the tests: :func:`check_masked`, :func:`check_fpe`, :func:`personal_values`, and
  :func:`account_for` (where every source record ended; duplicates byte-identical).

Every wait is bounded (:func:`wait_until`) and fails with a message saying what was awaited,
what was last observed, and the tail of the proxy's stderr.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "policies" / "examples" / "customer-pii.yaml"
PARTITIONS = 3

#: kafka-python 3.0 loads its protocol schemas with deprecated importlib.resources calls.
KAFKA_PYTHON_WARNINGS = [pytest.mark.filterwarnings("ignore:read_text is deprecated:DeprecationWarning"),
                         pytest.mark.filterwarnings("ignore:open_text is deprecated:DeprecationWarning")]


# --------------------------------------------------------------------------------------------
# Policy copy
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteTopics:
    """Topic names and consumer group of the per-test copy of the example route."""

    source: str
    sink: str
    dead_letter: str
    group: str

    @property
    def all(self) -> list[str]:
        return [self.source, self.sink, self.dead_letter]


def policy_copy(directory: Path, prefix: str, example: Path = EXAMPLE_POLICY) -> tuple[Path, RouteTopics]:
    """Write ``example`` (default ``customer-pii.yaml``) into ``directory`` with topics ``<prefix>.<original name>`` and
    consumer group ``<prefix>.dpp`` (so tests never share a group with each other or the demo).

    Returns ``(path of the copy, RouteTopics)``. Raises ``AssertionError`` when the example no
    longer has the lines this rewrite expects (each must occur exactly once).
    """
    text = example.read_text(encoding="utf-8")
    topics = {}
    for key in ("source", "sink", "dead_letter"):
        pat = re.compile(rf"^([ \t]+){key}: ([A-Za-z0-9._-]+)[ \t]*$", re.M)
        found = pat.findall(text)
        assert len(found) == 1, f"example policy: expected one '{key}:' line, found {len(found)}"
        topics[key] = f"{prefix}.{found[0][1]}"
        text = pat.sub(lambda m, k=key: f"{m.group(1)}{k}: {topics[k]}", text)
    group = f"{prefix}.dpp"
    pat = re.compile(r"^([ \t]+)dead_letter_key: (\S+)[ \t]*$", re.M)
    assert len(pat.findall(text)) == 1, "example policy: expected one 'dead_letter_key:' line"
    text = pat.sub(lambda m: f"{m.group(0)}\n{m.group(1)}consumer_group: {group}", text)
    path = directory / example.name
    path.write_text(text, encoding="utf-8")
    return path, RouteTopics(topics["source"], topics["sink"], topics["dead_letter"], group)


# --------------------------------------------------------------------------------------------
# Topics and producing (confluent-kafka: setup only)
# --------------------------------------------------------------------------------------------

def create_topics(bootstrap: str, names: Sequence[str], partitions: int = PARTITIONS, timeout_s: float = 30,
                  *, replication: int = 1, topic_config: dict[str, str] | None = None,
                  client: dict[str, str] | None = None) -> None:
    """Create ``names`` with ``partitions`` partitions (``replication`` copies, ``topic_config``) and
    wait until they exist. ``client``: extra librdkafka properties (security) of the admin client."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap, **(client or {})})
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=replication,
                                            config=topic_config or {}) for n in names],
                                  operation_timeout=timeout_s)
    for fut in futures.values():
        fut.result(timeout=timeout_s)
    wait_until(lambda: all(_partition_count(admin, n) == partitions for n in names), timeout_s,
               f"topics {list(names)} to have {partitions} partitions")


def _partition_count(admin, topic: str) -> int:
    t = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    return 0 if t is None or t.error is not None else len(t.partitions)


def _best_effort(call) -> None:
    """Run an admin call returning futures and wait for each, ignoring every error (teardown)."""
    try:
        for fut in call().values():
            try:
                fut.result(timeout=30)
            except Exception:  # noqa: BLE001 - best effort
                pass
    except Exception:  # noqa: BLE001 - best effort
        pass


def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Best-effort deletion (test teardown); errors are ignored."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    _best_effort(lambda: admin.delete_topics(list(names), operation_timeout=30))


def delete_group(bootstrap: str, group: str) -> None:
    """Best-effort deletion of a consumer group (test teardown); errors are ignored."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    _best_effort(lambda: admin.delete_consumer_groups([group]))


Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]   # (key, value, headers)


def produce(bootstrap: str, topic: str, messages: Iterable[Message], timeout_s: float = 120,
            client: dict[str, str] | None = None) -> int:
    """Produce ``(key, value, headers)`` tuples with an idempotent confluent-kafka producer and
    wait for every acknowledgement. Returns the count. Raises ``AssertionError`` on any failed
    delivery or on timeout."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 20, "queue.buffering.max.messages": 200000, **(client or {})})
    errors: list = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    n = 0
    for key, value, headers in messages:
        while True:
            try:
                p.produce(topic, value, key, headers=headers or None, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        n += 1
    left = p.flush(timeout_s)
    assert left == 0, f"{left} produced records not acknowledged within {timeout_s} s"
    assert not errors, f"{len(errors)} deliveries failed, first: {errors[0]}"
    return n


# --------------------------------------------------------------------------------------------
# Reading (kafka-python: independent of the engine's client)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rec:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        """The single header ``name`` decoded as UTF-8; ``AssertionError`` if absent or repeated."""
        vals = [v for k, v in self.headers if k == name]
        assert len(vals) == 1, f"{self.topic}[{self.partition}]@{self.offset}: header {name!r} occurs {len(vals)} times"
        return vals[0].decode()


def _kafka_python_consumer(bootstrap: str, **extra):
    from kafka import KafkaConsumer
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                         max_poll_records=20000, client_id="dpp-it-reader", **extra)


def _partitions(consumer, topic: str, timeout_s: float) -> list:
    from kafka import TopicPartition
    found: list = []

    def ready() -> bool:
        ps = consumer.partitions_for_topic(topic)
        if ps:
            found[:] = [TopicPartition(topic, p) for p in sorted(ps)]
        return bool(ps)
    wait_until(ready, timeout_s, f"metadata of topic {topic}")
    return found


def read_topic(bootstrap: str, topic: str, timeout_s: float = 120, isolation: str = "read_uncommitted",
               security: dict[str, Any] | None = None) -> list[Rec]:
    """Every record of ``topic`` from the beginning to the end offsets seen at the start, with
    kafka-python (no consumer group, nothing committed). Ordered by (partition, offset).
    ``isolation="read_committed"``: only records of committed transactions (up to the last stable
    offset), as a downstream read_committed consumer sees them. ``security``: kafka-python settings
    (``security_protocol``, ``sasl_*``, ``ssl_cafile``)."""
    c = _kafka_python_consumer(bootstrap, group_id=None, isolation_level=isolation, **(security or {}))
    try:
        tps = _partitions(c, topic, 30)
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[Rec] = []
        pending = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, (
                f"reading {topic}: {len(out)} records after {timeout_s} s, partitions not at their end: "
                f"{sorted((tp.partition, c.position(tp), end[tp]) for tp in pending)}")
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    if m.offset < end[tp]:
                        out.append(Rec(topic, m.partition, m.offset, m.key, m.value,
                                       tuple((k, None if v is None else bytes(v)) for k, v in (m.headers or []))))
                if c.position(tp) >= end[tp]:
                    pending.discard(tp)
        out.sort(key=lambda r: (r.partition, r.offset))
        return out
    finally:
        c.close()


def committed_offsets(bootstrap: str, group: str, topic: str,
                      security: dict[str, Any] | None = None) -> dict[int, int]:
    """The consumer group's committed offset per partition of ``topic`` (0 where none), read with
    kafka-python without joining the group."""
    c = _kafka_python_consumer(bootstrap, group_id=group, **(security or {}))
    try:
        return {tp.partition: (c.committed(tp) or 0) for tp in _partitions(c, topic, 30)}
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark per partition of ``topic`` (kafka-python)."""
    c = _kafka_python_consumer(bootstrap, group_id=None)
    try:
        return {tp.partition: off for tp, off in c.end_offsets(_partitions(c, topic, 30)).items()}
    finally:
        c.close()


class EndOffsetWatcher:
    """A long-lived kafka-python consumer to poll a topic's total end offset cheaply (no group)."""

    def __init__(self, bootstrap: str, topic: str):
        self._c = _kafka_python_consumer(bootstrap, group_id=None)
        self._tps = _partitions(self._c, topic, 30)

    def total(self) -> int:
        """Sum of the partitions' high watermarks now."""
        return sum(self._c.end_offsets(self._tps).values())

    def close(self) -> None:
        self._c.close()


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Sum over partitions of (end offset − committed offset) of ``group`` on ``topic``."""
    end = end_offsets(bootstrap, topic)
    com = committed_offsets(bootstrap, group, topic)
    return sum(end[p] - com.get(p, 0) for p in end)


# --------------------------------------------------------------------------------------------
# `dpp run` as a subprocess
# --------------------------------------------------------------------------------------------

def dpp_command() -> list[str]:
    """The ``dpp`` console script of this interpreter's environment (``python -m proxy`` if absent)."""
    script = Path(sys.executable).with_name("dpp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "proxy"]


def run_dpp(args: Sequence[str], env: dict[str, str] | None = None,
            timeout_s: float = 60) -> subprocess.CompletedProcess:
    """Run ``dpp ARGS`` to completion (for commands expected to exit by themselves)."""
    return subprocess.run(dpp_command() + list(args), env=env, capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Samples:
    """Prometheus text → ``{sample name: [(labels, value), ...]}`` via ``prometheus_client.parser``."""
    from prometheus_client.parser import text_string_to_metric_families
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def metric(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == w for k, w in labels.items()))


class DppProcess:
    """``dpp run --policy FILE --bootstrap-servers B --metrics-port 0 --create-topics [extra]`` as a
    subprocess; stdout/stderr go to files under ``workdir`` (no pipe can fill up and stall it).

    The metrics port is the one the process announces on stderr (``"metrics_port": N`` in its
    ``dpp running`` line), so no port is guessed. Use as a context manager: on exit a process
    still running is killed (this process only, by its pid).
    """

    def __init__(self, policy: Path, bootstrap: str, workdir: Path, *, extra: Sequence[str] = (),
                 env: dict[str, str] | None = None, name: str = "dpp", create_topics: bool = True):
        self.workdir = workdir
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_path = workdir / f"{name}.stdout"
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        cmd = dpp_command() + ["run", "--policy", str(policy), "--bootstrap-servers", bootstrap,
                               "--metrics-port", "0", *(["--create-topics"] if create_topics else []), *extra]
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     env=env if env is not None else dict(os.environ))
        self.port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "DppProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process if it is still running, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(30)
        finally:
            self._err.close()
            self._out.close()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process (only if it still runs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout_s: float = 60) -> int:
        """Wait for the process to exit; returns its exit code. ``AssertionError`` on timeout."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"dpp run did not exit within {timeout_s} s\n{self.stderr_tail()}") from None

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout_s)

    def stderr(self) -> str:
        self._err.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stderr_tail(self, lines: int = 25) -> str:
        return "dpp stderr (tail):\n" + "\n".join(self.stderr().splitlines()[-lines:])

    def assert_running(self) -> None:
        rc = self.proc.poll()
        assert rc is None, f"dpp run exited early with code {rc}\n{self.stderr_tail()}"

    # -- metrics ----------------------------------------------------------------------------
    def wait_ready(self, timeout_s: float = 60) -> int:
        """Wait for the ``dpp running`` line; returns the metrics port."""
        def ready() -> bool:
            self.assert_running()
            for line in self.stderr().splitlines():
                if '"dpp running"' in line:
                    self.port = int(orjson.loads(line)["metrics_port"])
                    return True
            return False
        wait_until(ready, timeout_s, "dpp run to announce its metrics port", self.stderr_tail)
        return self.port  # type: ignore[return-value]

    def scrape(self) -> Samples:
        """GET ``/metrics`` and parse it."""
        assert self.port is not None, "call wait_ready() first"
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return parse_metrics(resp.read().decode())

    def wait_metric(self, name: str, pred: Callable[[float], bool], timeout_s: float, what: str, **labels) -> float:
        """Poll the metric ``name`` (summed over matching labels) until ``pred(value)``; returns it."""
        seen = [None]

        def ok() -> bool:
            self.assert_running()
            seen[0] = metric(self.scrape(), name, **labels)
            return pred(seen[0])
        wait_until(ok, timeout_s, what, lambda: f"last {name}={seen[0]}\n{self.stderr_tail()}", interval_s=0.05)
        return seen[0]  # type: ignore[return-value]


class Assignment:
    """A worker's current partitions, followed from its JSON log lines (``worker``: only the lines
    of that worker process of ``dpp run --workers N``, from its latest start on)."""

    def __init__(self, dpp: DppProcess, worker: int | None = None):
        self.dpp, self.worker = dpp, worker
        self.ever: set[int] = set()

    def current(self) -> set[int]:
        parts: set[int] = set()
        for line in self.dpp.stderr().splitlines():
            if not line.startswith("{"):
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if self.worker is not None and doc.get("worker") != self.worker:
                continue
            if doc.get("msg") == "worker started":  # the supervisor (re)started this worker: nothing assigned yet
                parts = set()
            elif doc.get("msg") == "partitions assigned":
                parts |= set(doc.get("partitions", ()))
                self.ever |= set(doc.get("partitions", ()))
            elif doc.get("msg") == "partitions revoked":
                parts -= set(doc.get("partitions", ()))
        return parts


def consenting_ids(records: list[dict]) -> set[bytes]:
    """Record ids (the source keys) of the generated records the example route lets through."""
    return {r["record_id"].encode() for r in records if r["consent"]["analytics"] is not False}


def assert_each_once(sink: list[Rec], expected: set[bytes]) -> int:
    """Every key of ``expected`` is in ``sink`` and nothing else is; a key found twice has byte-identical
    copies (at-least-once). Returns the number of duplicate copies."""
    by_key: dict[bytes | None, list[Rec]] = {}
    for rec in sink:
        by_key.setdefault(rec.key, []).append(rec)
    missing = expected - set(by_key)
    unexpected = set(by_key) - expected
    assert not missing, f"{len(missing)} consenting records missing from the sink (lost)"
    assert not unexpected, f"{len(unexpected)} unexpected keys in the sink"
    dups = {k: v for k, v in by_key.items() if len(v) > 1}
    differing = [k for k, v in dups.items() if len({r.value for r in v}) != 1]
    assert not differing, f"{len(differing)} records duplicated with different bytes"
    return sum(len(v) - 1 for v in dups.values())


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str,
               detail: Callable[[], str] | None = None, interval_s: float = 0.2) -> None:
    """Call ``cond`` until it returns true; ``AssertionError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}"
                                 + (f"\n{detail()}" if detail else ""))
        time.sleep(interval_s)


def drain(dpp: DppProcess, bootstrap: str, topics: RouteTopics, expected_consumed: int, timeout_s: float) -> Samples:
    """Wait until ``dpp`` consumed ``expected_consumed`` records (its own counter) and the group's
    lag on the source is 0; returns the final metrics scrape."""
    dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= expected_consumed, timeout_s,
                    f"dpp_records_consumed_total >= {expected_consumed}")
    lag = [None]

    def caught_up() -> bool:
        dpp.assert_running()
        lag[0] = group_lag(bootstrap, topics.group, topics.source)
        return lag[0] == 0
    wait_until(caught_up, 60, f"consumer group {topics.group} lag 0", lambda: f"lag={lag[0]}\n{dpp.stderr_tail()}",
               interval_s=0.5)
    return dpp.scrape()


# --------------------------------------------------------------------------------------------
# Source data
# --------------------------------------------------------------------------------------------

_RECORDS: list[dict] = []


def generated_records(count: int) -> list[dict]:
    """``proxy.generator.generate_records(count, seed=0)``, cached for the session (a shorter
    request gets the prefix of a longer one: records do not depend on ``count``)."""
    from proxy.generator import generate_records
    if len(_RECORDS) < count:
        _RECORDS[:] = list(generate_records(count, seed=0))
    return _RECORDS[:count]


def personal_values(rec: dict) -> list[str]:
    """Values of a generated record that must never reach a sink or dead-letter payload in clear."""
    vals = [rec["name"], rec["id_number"], rec["mobile"], rec["email"], rec["bank_card"], rec["address"]["street"]]
    vals += [o["card_number"] for o in rec["orders"]]
    digits = "".join(c for c in rec["bank_card"] if c.isdigit())
    if digits != rec["bank_card"]:
        vals.append(digits)
    mdigits = "".join(c for c in rec["mobile"] if c.isdigit())
    if mdigits != rec["mobile"]:
        vals.append(mdigits)
    return vals


def check_masked(orig: str, out: Any, keep_first: int, keep_last: int = 0, char: str = "*", what: str = "") -> None:
    """``out`` is ``orig`` masked as documented in :mod:`proxy.transforms.mask`: same length,
    every separator (non-alphanumeric) in place, the first/last kept alphanumerics unchanged
    (at most half of them when first + last would keep all), every other alphanumeric replaced by ``char``."""
    assert isinstance(out, str), f"{what}: masked value is not a string"
    assert len(out) == len(orig), f"{what}: length {len(out)} != {len(orig)}"
    pos = [i for i, c in enumerate(orig) if c.isalnum()]
    for i, c in enumerate(orig):
        if not c.isalnum():
            assert out[i] == c, f"{what}: separator at position {i} not kept"
    n = len(pos)
    if keep_first + keep_last < n:
        first, last = keep_first, keep_last
    else:
        first = min(keep_first, n // 2)
        last = min(keep_last, n // 2 - first)
    for j, i in enumerate(pos):
        if j < first or j >= n - last:
            assert out[i] == orig[i], f"{what}: kept character {j} changed"
        else:
            assert out[i] == char, f"{what}: character {j} not masked"


def check_fpe(orig: str, out: Any, ff1, tweak: bytes, what: str = "") -> None:
    """``out`` is FF1 over the digits of ``orig``: same length, non-digits in place, digits
    elsewhere, and the digits decrypt (``ff1`` keyed with the policy's FPE key, ``tweak`` the
    rule's binding) back to the original digits."""
    assert isinstance(out, str), f"{what}: FPE value is not a string"
    assert len(out) == len(orig), f"{what}: length {len(out)} != {len(orig)}"
    for i, c in enumerate(orig):
        if c.isdigit():
            assert out[i].isdigit(), f"{what}: position {i} is not a digit"
        else:
            assert out[i] == c, f"{what}: separator at position {i} not kept"
    src_digits = "".join(c for c in orig if c.isdigit())
    enc_digits = "".join(c for c in out if c.isdigit())
    assert enc_digits != src_digits, f"{what}: value not encrypted"
    assert ff1.decrypt(enc_digits, tweak) == src_digits, f"{what}: does not decrypt to the source value"


def group_sink_by_key(sink: list[Rec]) -> dict[bytes | None, list[Rec]]:
    """Sink records grouped by key (source keys are unique in these tests)."""
    out: dict[bytes | None, list[Rec]] = {}
    for r in sink:
        out.setdefault(r.key, []).append(r)
    return out


def group_dead_by_source(dead: list[Rec]) -> dict[tuple[int, int], list[Rec]]:
    """Dead-letter records grouped by their ``(dpp.source.partition, dpp.source.offset)`` headers."""
    out: dict[tuple[int, int], list[Rec]] = {}
    for r in dead:
        out.setdefault((int(r.header("dpp.source.partition")), int(r.header("dpp.source.offset"))), []).append(r)
    return out


@dataclass(frozen=True)
class Accounting:
    """Where every source record of a run ended (:func:`account_for`)."""

    in_sink: int
    """Distinct source records in the sink."""
    dead_lettered: int
    """Distinct source offsets in the dead-letter topic."""
    blocked: int
    """Source records withheld by a block rule (in neither topic, as the source data dictates)."""
    sink_duplicates: int
    dead_duplicates: int
    differing: list[str]
    """Records whose copies are not byte-identical to the first (key, value, headers)."""
    missing: list[tuple[int, int]]
    """Source ``(partition, offset)`` found nowhere."""
    misplaced: list[tuple[int, int]]
    """Source offsets in the wrong topic (or a blocked record that came out)."""
    unexpected: int
    """Sink keys that are not keys of the source."""

    def check(self, *, duplicates_allowed: bool = True) -> None:
        """``AssertionError`` unless every source offset is accounted for, every duplicate is
        byte-identical and, with ``duplicates_allowed=False``, there is none."""
        assert not self.missing and not self.misplaced, (
            f"{len(self.missing)} source offsets missing (first {self.missing[:5]}), "
            f"{len(self.misplaced)} in the wrong place (first {self.misplaced[:5]})")
        assert not self.unexpected, f"{self.unexpected} sink keys are not from the source"
        assert not self.differing, f"{len(self.differing)} records with differing copies, first {self.differing[:3]}"
        if not duplicates_allowed:
            assert self.sink_duplicates == self.dead_duplicates == 0, (
                f"duplicates: sink {self.sink_duplicates}, dead-letter {self.dead_duplicates}")


def account_for(source: list[Rec], sink: list[Rec], dead: list[Rec], blocked: set[bytes],
                malformed: set[bytes]) -> Accounting:
    """Match every source record (by its key, a unique record id) to where it must be: a key in
    ``blocked`` in neither topic, one in ``malformed`` in the dead-letter topic only (found by its
    ``dpp.source.*`` headers, with the source key), every other in the sink only. Copies after the
    first must be byte-identical to it (sink: value and headers; dead letter: key, value, headers)."""
    by_key, by_src = group_sink_by_key(sink), group_dead_by_source(dead)
    differing: list[str] = []
    for what, groups, fields in (("sink", by_key, ("value", "headers")), ("dead", by_src, ("key", "value", "headers"))):
        for where, copies in groups.items():
            first = [getattr(copies[0], f) for f in fields]
            if any([getattr(c, f) for f in fields] != first for c in copies[1:]):
                differing.append(f"{what} {where!r}")
    missing, misplaced = [], []
    for r in source:
        in_sink, in_dead = r.key in by_key, (r.partition, r.offset) in by_src
        if r.key in blocked:
            ok = not in_sink and not in_dead
        elif r.key in malformed:
            ok = in_dead and not in_sink and by_src[(r.partition, r.offset)][0].key == r.key
        else:
            ok = in_sink and not in_dead
        if not ok:
            (missing if not (in_sink or in_dead) else misplaced).append((r.partition, r.offset))
    return Accounting(len(by_key), len(by_src), sum(1 for r in source if r.key in blocked),
                      len(sink) - len(by_key), len(dead) - len(by_src), differing, missing, misplaced,
                      len(set(by_key) - {r.key for r in source}))


def json_loads(b: bytes) -> Any:
    """``orjson.loads`` (kept here so the tests read the same way)."""
    return orjson.loads(b)


# --------------------------------------------------------------------------------------------
# Fixture: a per-test route (policy copy + topics), imported by the test modules
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteSetup:
    """What a test needs to run the example route on its own topics."""

    bootstrap: str
    policy: Path
    topics: RouteTopics
    workdir: Path



@pytest.fixture
def route_setup(kafka_bootstrap, topic_prefix, demo_keys, tmp_path) -> RouteSetup:
    """Policy copy with this test's topics (created with 3 partitions) and consumer group; the
    topics are deleted afterwards. Depends on ``demo_keys``, so the key variables are set."""
    policy, topics = policy_copy(tmp_path, topic_prefix)
    create_topics(kafka_bootstrap, topics.all)
    try:
        yield RouteSetup(kafka_bootstrap, policy, topics, tmp_path)
    finally:
        delete_topics(kafka_bootstrap, topics.all)
        delete_group(kafka_bootstrap, topics.group)


@pytest.fixture
def native_built():
    """Skip unless the native data plane (``proxy._dataplane``) is built; a failure instead where
    CI requires it (``DPP_REQUIRE_NATIVE=1``)."""
    from proxy.stream import native
    why = native.available()
    if why is not None:
        if native.required_by_environment():
            pytest.fail(f"DPP_REQUIRE_NATIVE=1 but {why}")
        pytest.skip(why)
