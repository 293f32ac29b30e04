"""``dpp run --workers 2`` on the real broker: one supervisor, two worker processes in one consumer group.

20,000 generated records go into a 6-partition source while the run goes on; both workers get
partitions; after about a quarter is consumed one worker is killed with SIGKILL, the supervisor
restarts it (``dpp_worker_restarts_total{worker="1"}`` 1, a new pid) and nothing is lost: every
consenting record is in the sink (duplicates byte-identical: at-least-once, counted distinct),
no withdrawn one is, the dead-letter topic is empty, the offsets are committed to the end, and
SIGTERM to the supervisor exits 0 with no worker left running. Read back with kafka-python.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, Assignment, DppProcess, assert_each_once, committed_offsets,
                      consenting_ids, create_topics, delete_topics, end_offsets, generated_records, group_lag,
                      metric, policy_copy, produce, read_topic, wait_until)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

PARTITIONS = 6
N_RECORDS = 20_000


def _started(dpp: DppProcess) -> dict[int, list[int]]:
    """Worker index → pids of its starts, from the supervisor's ``worker started`` lines."""
    out: dict[int, list[int]] = {}
    for line in dpp.stderr().splitlines():
        if '"worker started"' in line:
            doc = orjson.loads(line)
            out.setdefault(doc["worker"], []).append(doc["pid"])
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_share_the_group_and_a_killed_worker_is_restarted(kafka_bootstrap, topic_prefix, demo_keys,
                                                                      tmp_path):
    bootstrap = kafka_bootstrap
    policy, topics = policy_copy(tmp_path, topic_prefix)
    create_topics(bootstrap, topics.all, partitions=PARTITIONS)
    records = generated_records(N_RECORDS)
    errors: list[BaseException] = []

    def produce_all() -> None:
        try:
            for i in range(0, N_RECORDS, 500):
                produce(bootstrap, topics.source, ((r["record_id"].encode(), orjson.dumps(r), None)
                                                   for r in records[i:i + 500]))
                time.sleep(0.1)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            errors.append(e)

    dpp = DppProcess(policy, bootstrap, tmp_path, name="supervisor",
                     extra=["--workers", "2", "--batch-size", "200", "--reload-interval", "0"])
    try:
        dpp.wait_ready(60)
        w0, w1 = Assignment(dpp, 0), Assignment(dpp, 1)
        seen: dict = {}

        def split() -> bool:
            dpp.assert_running()
            seen.update(w0=w0.current(), w1=w1.current())
            return bool(seen["w0"]) and bool(seen["w1"]) and not (seen["w0"] & seen["w1"]) \
                and (seen["w0"] | seen["w1"]) == set(range(PARTITIONS))
        wait_until(split, 60, "both workers to split the 6 partitions", lambda: f"{seen}\n{dpp.stderr_tail()}")
        wait_until(lambda: dpp.scrape() and metric(dpp.scrape(), "dpp_workers_running") == 2, 30, "2 workers running")

        producer = threading.Thread(target=produce_all, daemon=True)
        producer.start()
        dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= N_RECORDS // 4, 90, "a quarter consumed")
        victim = _started(dpp)[1][-1]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(_started(dpp).get(1, [])) == 2, 30, "worker 1 restarted", dpp.stderr_tail)
        assert _started(dpp)[1][-1] != victim
        dpp.wait_metric("dpp_worker_restarts_total", lambda v: v == 1, 30, "the restart counted", worker="1")

        producer.join(120)
        assert not producer.is_alive() and not errors, f"producing failed: {errors[:1]}"
        lag = [None]

        def caught_up() -> bool:
            dpp.assert_running()
            lag[0] = group_lag(bootstrap, topics.group, topics.source)
            return lag[0] == 0
        wait_until(caught_up, 120, "consumer group lag 0", lambda: f"lag={lag[0]}\n{dpp.stderr_tail()}", interval_s=0.5)
        final = dpp.scrape()
        assert metric(final, "dpp_records_consumed_total", worker="0") > 0
        assert metric(final, "dpp_records_blocked_total", reason="consent-withdrawn") > 0
        worker_pids = [pids[-1] for pids in _started(dpp).values()]
        rc = dpp.stop(timeout_s=60)
        assert rc == 0, f"SIGTERM exit code {rc}\n{dpp.stderr_tail()}"
        assert not [p for p in worker_pids if _alive(p)], "a worker outlived the supervisor"
        assert '"stopping workers"' in dpp.stderr()
    finally:
        dpp.kill()

    try:
        ends = end_offsets(bootstrap, topics.source)
        assert sum(ends.values()) == N_RECORDS
        assert committed_offsets(bootstrap, topics.group, topics.source) == ends, "offsets not committed to the end"
        assert not read_topic(bootstrap, topics.dead_letter), "records dead-lettered"
        sink = read_topic(bootstrap, topics.sink)
        expected = consenting_ids(records)
        duplicates = assert_each_once(sink, expected)  # the withdrawn ones (counted blocks) are not there
        assert len(expected) < N_RECORDS
    finally:
        delete_topics(bootstrap, topics.all)
    print(f"\n--workers 2: {len(sink)} sink records for {len(expected)} consenting ({duplicates} byte-identical "
          f"duplicates after the kill), {N_RECORDS - len(expected)} blocked; split {seen}")
