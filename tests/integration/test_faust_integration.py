"""A real faust-streaming worker protects a dpp route on the local broker (issue 6, item 8).

The worker runs ``tests/integration/faust_app.py`` (an app with an agent of its own plus the one
:func:`proxy.integrations.faust.protect_stream` registers) as a subprocess, exactly as an
operator would start it. The test produces generated customer records and malformed payloads
with kafka-python, reads the sink and dead-letter topics back with kafka-python and checks:

* every consenting record (and a tombstone, as a tombstone) reached the sink once, byte-equal to what the same policy gives
  offline (``CompiledRoute.process`` in this process), with no original personal value left,
  the source headers kept and the ``dpp-policy`` provenance header added;
* records whose analytics consent is withdrawn are withheld and counted
  (``dpp_records_blocked_total`` served by the faust app);
* malformed payloads are in the dead-letter topic, sealed (AES-GCM) and opening to the original;
* the faust consumer group committed the source topic up to its end (nothing left unacknowledged);
* the worker's output holds no personal value.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml

from proxy.generator import generate_records, malformed_payloads
from proxy.policy.compiler import SINK, compile_policy
from proxy.policy.loader import load_policy
from proxy.stream.admin import ensure_topics
from proxy.stream.deadletter import open_envelope

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "policies" / "examples" / "customer-pii.yaml"
N_RECORDS = 240
N_MALFORMED = 3
DEADLINE_S = 75.0


def _require_faust() -> None:
    try:
        import faust  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("faust-streaming is not installed (pip install -e '.[test]')")
        pytest.skip("faust-streaming is not installed (pip install -e '.[test]'); CI fails here")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _policy_for(tmp_path: Path, prefix: str) -> Path:
    """The example policy with this test's own topic names."""
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    route = data["routes"][0]
    route["source"] = f"{prefix}.crm.customers"
    route["sink"] = f"{prefix}.analytics.customers"
    route["dead_letter"] = f"{prefix}.crm.customers.dlq"
    out = tmp_path / "policy.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return out


def _read_all(bootstrap: str, topic: str, want: int, deadline: float, worker: subprocess.Popen) -> list:
    """Read ``topic`` from the beginning with kafka-python until ``want`` records, the deadline or
    the worker's exit."""
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000)
    out = []
    try:
        while len(out) < want and time.time() < deadline and worker.poll() is None:
            out.extend(c)            # iterates until consumer_timeout_ms without a record
        # a little longer, to catch duplicates or records that should not be there
        c.config["consumer_timeout_ms"] = 1500
        out.extend(c)
    finally:
        c.close()
    return out


def _scrape(port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """``{partition: committed offset}`` of ``group`` on ``topic`` (0 where nothing was committed)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p) for p in c.list_topics(topic, timeout=10).topics[topic].partitions]
        return {tp.partition: max(tp.offset, 0) for tp in c.committed(parts, timeout=10)}
    finally:
        c.close()


def _records_in(bootstrap: str, topic: str) -> int:
    """Number of records ever written to ``topic`` (sum of high watermarks minus low ones)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "dpp-test-watermarks"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(hi - lo for lo, hi in (c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts))
    finally:
        c.close()


def _committed_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of ``topic`` after the offsets ``group`` committed (librdkafka; does not join the group)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p) for p in c.list_topics(topic, timeout=10).topics[topic].partitions]
        lag = 0
        for tp in c.committed(parts, timeout=10):
            lag += c.get_watermark_offsets(tp, timeout=10)[1] - max(tp.offset, 0)
        return lag
    finally:
        c.close()


def _start_worker(bootstrap: str, policy_file: Path, app_id: str, metrics_port: int, tmp_path: Path,
                  log_path: Path) -> subprocess.Popen:
    """Start ``faust worker`` on tests/integration/faust_app.py (own process group), output to ``log_path``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), DPP_FAUST_BROKER=bootstrap, DPP_FAUST_POLICY=str(policy_file),
               DPP_FAUST_APP_ID=app_id, DPP_FAUST_DATADIR=str(tmp_path / "faust-data"),
               DPP_FAUST_METRICS_PORT=str(metrics_port))
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "tests.integration.faust_app", "worker", "--without-web", "-l", "warn"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_worker(worker: subprocess.Popen) -> None:
    """SIGTERM the worker's process group; SIGKILL after 20 s."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)


def test_faust_worker_protects_route(kafka_bootstrap, topic_prefix, demo_keys, tmp_path):
    _require_faust()
    from kafka import KafkaProducer

    policy_file = _policy_for(tmp_path, topic_prefix)
    cp = compile_policy(load_policy(policy_file))
    route = cp.route()
    ensure_topics(kafka_bootstrap, {route.source: 3, route.sink: 3, route.dead_letter: 3,
                                    f"{route.source}.heartbeat": 1})

    records = list(generate_records(N_RECORDS, seed=606))
    bad = malformed_payloads(N_MALFORMED, seed=6)
    withheld = {r["record_id"] for r in records if r["consent"]["analytics"] is False}
    assert withheld and len(withheld) < N_RECORDS, "the seed must give both consenting and withheld records"

    prod = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for r in records:
        prod.send(route.source, orjson.dumps(r), key=r["record_id"].encode(), headers=[("trace", b"t-" + r["record_id"].encode())])
    for i, payload in enumerate(bad):
        prod.send(route.source, payload, key=f"bad-{i}".encode())
    prod.send(route.source, None, key=b"tombstone-0")     # a delete stays a delete
    prod.flush(30)
    prod.close()

    metrics_port = _free_port()
    app_id = f"{topic_prefix}-faust"
    log_path = tmp_path / "worker.log"
    worker = _start_worker(kafka_bootstrap, policy_file, app_id, metrics_port, tmp_path, log_path)
    try:
        deadline = time.time() + DEADLINE_S
        want_sink = N_RECORDS - len(withheld) + 1
        sink = _read_all(kafka_bootstrap, route.sink, want_sink, deadline, worker)
        dlq = _read_all(kafka_bootstrap, route.dead_letter, N_MALFORMED, deadline, worker)
        assert worker.poll() is None, f"faust worker exited early:\n{log_path.read_text()[-3000:]}"

        # --- sink: exactly the consenting records, once each, protected as the policy says ---
        by_key = {}
        for m in sink:
            assert m.key not in by_key, "a record reached the sink twice"
            by_key[m.key] = m
        expected_keys = {r["record_id"].encode() for r in records if r["record_id"] not in withheld} | {b"tombstone-0"}
        assert set(by_key) == expected_keys, (
            f"sink has {len(by_key)} records, expected {len(expected_keys)}; worker log:\n"
            f"{log_path.read_text()[-3000:]}")
        for r in records:
            m = by_key.get(r["record_id"].encode())
            if m is None:
                continue
            offline = route.process(orjson.dumps(r))
            assert offline.kind == SINK
            assert m.value == offline.value, "the faust worker's output differs from the policy's"
            out = orjson.loads(m.value)
            for secret in (r["email"], r["id_number"], r["mobile"], r["bank_card"], r["customer_id"],
                           r["address"]["street"]):
                assert secret.encode() not in m.value
            assert "street" not in out["address"] and out["note"] == "[redacted]"
            assert out["customer_id"].startswith("cus_") and out["email"].startswith("em_")
            assert len(out["id_number"]) == len(r["id_number"]) and out["id_number"] != r["id_number"]
            headers = dict(m.headers)
            assert headers["dpp-policy"] == cp.provenance.encode()
            assert headers["trace"] == b"t-" + r["record_id"].encode()
        tomb = by_key[b"tombstone-0"]
        assert tomb.value is None and dict(tomb.headers)["dpp-policy"] == cp.provenance.encode()

        # --- dead-letter: the malformed payloads, sealed ---
        assert len(dlq) == N_MALFORMED
        dl_key = bytes.fromhex(demo_keys["DPP_KEY_DEAD_LETTER"])
        opened = set()
        for m in dlq:
            h = {k: v.decode() for k, v in m.headers}
            assert h["dpp.route"] == route.name and h["dpp.source.topic"] == route.source
            assert h["dpp.reason"] in {"invalid-json", "not-an-object"}
            assert m.value not in bad
            opened.add(open_envelope(dl_key, m.value, h))
        assert opened == set(bad)

        # --- metrics the app serves; the group's committed offsets reach the end of the source ---
        blocked = consumed = None
        lag = None
        while time.time() < deadline and worker.poll() is None:
            s = _scrape(metrics_port)
            blocked = s.get(("dpp_records_blocked_total", (("reason", "consent-withdrawn"), ("route", route.name))))
            consumed = s.get(("dpp_records_consumed_total", (("route", route.name),)))
            lag = _committed_lag(kafka_bootstrap, app_id, route.source)
            if consumed == N_RECORDS + N_MALFORMED + 1 and lag == 0:
                break
            time.sleep(0.5)
        assert consumed == N_RECORDS + N_MALFORMED + 1
        assert blocked == len(withheld)
        assert lag == 0, "the faust group did not commit the source topic to its end"

        # nothing personal in the worker's output (logs name routes, offsets and reason codes only)
        log_text = log_path.read_bytes()
        for r in records:
            for secret in (r["email"], r["id_number"], r["bank_card"], r["name"]):
                assert secret.encode() not in log_text
    finally:
        _stop_worker(worker)


def test_faust_worker_never_commits_what_the_sink_refused(kafka_bootstrap, topic_prefix, demo_keys, tmp_path):
    """The broker refuses every protected record (sink topic max.message.bytes too small for them):
    the worker stops (non-zero exit) on DeliveryFailed, nothing reaches the sink, and no partition's committed
    offset passes its first record that should have gone to the sink (fail closed, at-least-once)."""
    _require_faust()
    from kafka import KafkaConsumer, KafkaProducer

    policy_file = _policy_for(tmp_path, topic_prefix)
    cp = compile_policy(load_policy(policy_file))
    route = cp.route()
    ensure_topics(kafka_bootstrap, {route.source: 3, route.dead_letter: 3, f"{route.source}.heartbeat": 1})
    ensure_topics(kafka_bootstrap, {route.sink: 3}, configs={route.sink: {"max.message.bytes": "200"}})

    records = list(generate_records(60, seed=607))
    prod = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for r in records:
        prod.send(route.source, orjson.dumps(r), key=r["record_id"].encode())
    prod.flush(30)
    prod.close()

    # per partition: offset of the first record whose outcome is not a block (must not be committed past)
    src = KafkaConsumer(route.source, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                        enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    bound: dict[int, int] = {}
    seen = 0
    for m in src:
        seen += 1
        if m.partition not in bound and route.process(m.value).kind != "block":
            bound[m.partition] = m.offset
    src.close()
    assert seen == len(records) and bound

    app_id = f"{topic_prefix}-faust"
    log_path = tmp_path / "worker.log"
    worker = _start_worker(kafka_bootstrap, policy_file, app_id, _free_port(), tmp_path, log_path)
    try:
        try:
            code = worker.wait(45)
        except subprocess.TimeoutExpired:
            code = None
        log_text = log_path.read_text(errors="replace")
        assert code not in (None, 0), f"the worker did not stop on the refused records:\n{log_text[-3000:]}"
        assert "DeliveryFailed" in log_text
        for r in records:
            assert r["email"] not in log_text and r["id_number"] not in log_text
        committed = _committed(kafka_bootstrap, app_id, route.source)
        for partition, first_unsent in bound.items():
            assert committed.get(partition, 0) <= first_unsent, (
                f"partition {partition}: committed {committed.get(partition)} past offset {first_unsent}, "
                "whose protected record the broker refused")
        assert _records_in(kafka_bootstrap, route.sink) == 0, "a refused record reached the sink"
    finally:
        _stop_worker(worker)


def test_acks_are_released_in_offset_order_per_partition():
    """faust 0.15 commits past an unacknowledged offset when a later one is acknowledged first, so the
    integration releases acks strictly in order per partition (pure logic, no broker needed)."""
    from types import SimpleNamespace

    from proxy.integrations.faust import _InOrderAcks

    acked: list[tuple[str, int]] = []

    def event(tp: str, offset: int):
        ev = SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))
        ev.ack = lambda: acked.append((tp, offset))
        return ev

    acks = _InOrderAcks()
    a0, a1, a2 = (acks.enter(event("a", i)) for i in range(3))
    b0 = acks.enter(event("b", 0))
    acks.complete(a2)          # e.g. a blocked record: done at once, but offsets 0 and 1 are in flight
    acks.complete(a1)
    acks.complete(b0)          # another partition is not held back
    assert acked == [("b", 0)]
    acks.complete(a0)          # the head is delivered: 0, 1, 2 go out in order
    assert acked == [("b", 0), ("a", 0), ("a", 1), ("a", 2)]
    a3, a4 = acks.enter(event("a", 3)), acks.enter(event("a", 4))
    acks.complete(a4)          # a3 never completes (its delivery was refused): a4 stays unacknowledged
    assert acked[-1] == ("a", 2) and acks.waiting == 2
