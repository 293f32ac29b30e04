"""The incident switch on the real broker: ``dpp halt`` during a run stops the route within 2 s
(the sink gets nothing more, the committed offsets stand still, the lag grows, ``dpp_route_halted``
is 1, ``/readyz`` says halted), ``dpp resume`` processes the records that waited, and every source
record ends in the sink or as a counted block: none lost. Halt and resume are in the audit topic
(who, when, why), read back with kafka-python; a route halted before a worker starts stays halted
from its first record."""
from __future__ import annotations

import threading
import time
import urllib.request

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, account_for, committed_offsets, drain, end_offsets,
                      generated_records, group_lag, metric, produce, read_topic, route_setup, run_dpp,
                      wait_until)  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

ROUTE = "crm-to-analytics"
N = 12_000


def _switch(rs, what: str, control: str, audit: str, reason: str) -> None:
    out = run_dpp([what, ROUTE, "--reason", reason, "--policy", str(rs.policy), "--bootstrap-servers", rs.bootstrap,
                   "--actor", "oncall-7", "--control-topic", control, "--audit-topic", audit])
    assert out.returncode == 0, out.stderr
    assert f"route {ROUTE}: {'halted' if what == 'halt' else 'running'}" in out.stdout


def _readyz(dpp: DppProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{dpp.port}/readyz", timeout=5) as resp:
        return resp.read().decode()


def _sink_total(rs) -> int:
    return sum(end_offsets(rs.bootstrap, rs.topics.sink).values())


@pytest.mark.parametrize("plane", ["auto", "python"])  # auto: the native data plane where it is built
def test_halt_stops_the_route_and_resume_loses_nothing(route_setup, topic_prefix, plane):
    rs = route_setup
    t = rs.topics
    control, audit = f"{topic_prefix}.control", f"{topic_prefix}.audit"
    records = generated_records(N)
    blocked = {r["record_id"].encode() for r in records if r["consent"]["analytics"] is False}

    def slow_producer():  # the run goes on while the route is halted: 500 records every 0.1 s
        for i in range(0, N, 500):
            produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None)
                                             for r in records[i:i + 500]))
            time.sleep(0.1)
    producing = threading.Thread(target=slow_producer)
    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, extra=["--batch-size", "200", "--control-topic", control,
                                                                "--data-plane", plane], name="dpp-halt") as dpp:
        dpp.wait_ready()
        assert metric(dpp.scrape(), "dpp_route_halted", route=ROUTE) == 0
        producing.start()
        dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= 2000, 120, "2000 records consumed")
        _switch(rs, "halt", control, audit, "INC-42 complaint")
        halted_at = time.monotonic()
        dpp.wait_metric("dpp_route_halted", lambda v: v == 1, 2, "dpp_route_halted 1 within 2 s", route=ROUTE)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - halted_at)))
        sink_at, committed_at = _sink_total(rs), committed_offsets(rs.bootstrap, t.group, t.source)
        lag_at = group_lag(rs.bootstrap, t.group, t.source)
        assert sum(committed_at.values()) < N, "the halt came after the whole topic: not during the run"
        time.sleep(3.0)  # the producer goes on; the halted route must not
        assert _sink_total(rs) == sink_at, "the sink got records more than 2 s after the halt"
        assert committed_offsets(rs.bootstrap, t.group, t.source) == committed_at, "offsets advanced while halted"
        lag_later = group_lag(rs.bootstrap, t.group, t.source)
        assert lag_later > lag_at or lag_later >= N - sum(committed_at.values()) > 0, (lag_at, lag_later)
        assert "halted: " + ROUTE in _readyz(dpp)
        wait_until(lambda: dpp.scrape() and metric(dpp.scrape(), "dpp_consumer_lag") > 0, 10, "dpp_consumer_lag > 0")
        producing.join(120)

        _switch(rs, "resume", control, audit, "INC-42 fixed")
        dpp.wait_metric("dpp_route_halted", lambda v: v == 0, 5, "dpp_route_halted 0 after resume", route=ROUTE)
        samples = drain(dpp, rs.bootstrap, t, N, timeout_s=180)
        assert "halted" not in _readyz(dpp)
        assert dpp.stop() == 0, dpp.stderr_tail()
    assert metric(samples, "dpp_records_produced_total", route=ROUTE) + metric(
        samples, "dpp_records_blocked_total", route=ROUTE) + metric(
        samples, "dpp_records_dead_lettered_total", route=ROUTE) == metric(samples, "dpp_records_consumed_total", route=ROUTE)
    acc = account_for(read_topic(rs.bootstrap, t.source), read_topic(rs.bootstrap, t.sink),
                      read_topic(rs.bootstrap, t.dead_letter), blocked, set())
    acc.check()
    assert acc.in_sink + acc.blocked == N

    docs = [orjson.loads(r.value) for r in read_topic(rs.bootstrap, audit)]
    assert [(d["action"], d["route"], d["actor"], d["reason"]) for d in docs] == [
        ("halt", ROUTE, "oncall-7", "INC-42 complaint"), ("resume", ROUTE, "oncall-7", "INC-42 fixed")]
    assert all(d["ts"] and d["policy"].startswith("customer-pii@") for d in docs)
    control_docs = [orjson.loads(r.value) for r in read_topic(rs.bootstrap, control)]
    assert [d["state"] for d in control_docs] == ["halted", "running"]


def test_a_route_halted_before_the_start_stays_halted(route_setup, topic_prefix):
    rs = route_setup
    t = rs.topics
    control, audit = f"{topic_prefix}.control", f"{topic_prefix}.audit"
    records = generated_records(500)
    produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in records))
    _switch(rs, "halt", control, audit, "INC-43")
    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, extra=["--control-topic", control], name="dpp-pre") as dpp:
        dpp.wait_ready()
        dpp.wait_metric("dpp_route_halted", lambda v: v == 1, 10, "halted at start", route=ROUTE)
        time.sleep(3.0)
        assert metric(dpp.scrape(), "dpp_records_consumed_total", route=ROUTE) == 0
        assert _sink_total(rs) == 0 and sum(committed_offsets(rs.bootstrap, t.group, t.source).values()) == 0
        _switch(rs, "resume", control, audit, "INC-43 closed")
        drain(dpp, rs.bootstrap, t, len(records), timeout_s=60)
        assert dpp.stop() == 0, dpp.stderr_tail()
