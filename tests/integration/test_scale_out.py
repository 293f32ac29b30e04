"""Scale-out on the real broker: ``dpp run`` workers in one consumer group share the partitions,
and a rebalance in the middle of a run (a worker joins, another leaves) loses nothing.

The run, all bounded in time (< 90 s):

1. the example route's topics get 6 partitions; the first third of the records is produced;
2. workers A and B start in the same consumer group: each gets a non-empty share, the shares are
   disjoint and cover all 6 partitions (read from their own "partitions assigned/revoked" log
   lines, incremental with the cooperative-sticky assignor);
3. the second third is produced while worker C joins (it gets partitions); then A leaves with
   SIGTERM (exit 0), B and C own all 6 partitions between them, and the last third is produced;
4. after the group's lag is 0: every consenting source record is in the sink -- exactly once, or
   with byte-identical duplicates (value and key) --, nothing unexpected is in the sink, the
   dead-letter topic is empty, the committed offsets are at the end of every partition, and each
   of A, B and C consumed records (their own ``dpp_records_consumed_total``).

Read side with kafka-python (independent of the engine's librdkafka), see ``helpers.py``.
"""
from __future__ import annotations

import threading
import time

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, Assignment, DppProcess, assert_each_once, committed_offsets, consenting_ids,
                      create_topics, delete_topics,
                      end_offsets, generated_records, group_lag, metric, policy_copy, produce, read_topic,
                      wait_until)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

PARTITIONS = 6
N_RECORDS = 9_000
FIRST_PART = 3_000
BATCH = "200"          # small batches: every worker takes many batches during the short run
DEADLINE_S = 90.0


def _message(rec: dict) -> tuple[bytes, bytes, None]:
    return rec["record_id"].encode(), orjson.dumps(rec), None


def test_workers_share_partitions_and_a_rebalance_mid_run_loses_nothing(kafka_bootstrap, topic_prefix, demo_keys,
                                                                         tmp_path):
    t_start = time.monotonic()
    bootstrap = kafka_bootstrap
    policy, topics = policy_copy(tmp_path, topic_prefix)
    create_topics(bootstrap, topics.all, partitions=PARTITIONS)
    records = generated_records(N_RECORDS)
    all_parts = set(range(PARTITIONS))
    extra = ["--batch-size", BATCH, "--reload-interval", "0"]
    producer: threading.Thread | None = None
    workers: list[DppProcess] = []
    try:
        produce(bootstrap, topics.source, (_message(r) for r in records[:FIRST_PART]))

        a = DppProcess(policy, bootstrap, tmp_path, extra=extra, name="worker-a")
        workers.append(a)
        b = DppProcess(policy, bootstrap, tmp_path, extra=extra, name="worker-b")
        workers.append(b)
        a.wait_ready()
        b.wait_ready()
        asg_a, asg_b = Assignment(a), Assignment(b)
        seen: dict = {}

        def split() -> bool:
            a.assert_running()
            b.assert_running()
            pa, pb = asg_a.current(), asg_b.current()
            seen.update(a=pa, b=pb)
            return bool(pa) and bool(pb) and not (pa & pb) and (pa | pb) == all_parts
        wait_until(split, 45, "workers A and B to split the partitions",
                   lambda: f"assignments {seen}\n{a.stderr_tail()}\n{b.stderr_tail()}")

        # The rest is produced while the group changes: the second third while C joins, the last
        # third once A has left.
        second, third = records[FIRST_PART:2 * FIRST_PART], records[2 * FIRST_PART:]
        a_left = threading.Event()
        errors: list[BaseException] = []

        def produce_rest() -> None:
            try:
                for part in (second, None, third):
                    if part is None:
                        if not a_left.wait(60):
                            raise TimeoutError("worker A did not leave within 60 s")
                        continue
                    for i in range(0, len(part), 300):
                        produce(bootstrap, topics.source, (_message(r) for r in part[i:i + 300]))
                        time.sleep(0.1)
            except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
                errors.append(e)
        producer = threading.Thread(target=produce_rest, daemon=True)
        producer.start()

        c = DppProcess(policy, bootstrap, tmp_path, extra=extra, name="worker-c")
        workers.append(c)
        c.wait_ready()
        asg_c = Assignment(c)

        def c_joined() -> bool:
            c.assert_running()
            seen.update(c=asg_c.current())
            return bool(seen["c"])
        wait_until(c_joined, 45, "worker C to get partitions", lambda: f"{seen}\n{c.stderr_tail()}")

        consumed_a = metric(a.scrape(), "dpp_records_consumed_total")  # a lower bound: A works until SIGTERM
        rc = a.stop(timeout_s=45)
        assert rc == 0, f"worker A: SIGTERM exit code {rc}\n{a.stderr_tail()}"
        a_left.set()

        def b_and_c_own_all() -> bool:
            b.assert_running()
            c.assert_running()
            pb, pc = asg_b.current(), asg_c.current()
            seen.update(b=pb, c=pc)
            return not (pb & pc) and (pb | pc) == all_parts
        wait_until(b_and_c_own_all, 45, "workers B and C to own every partition after A left",
                   lambda: f"assignments {seen}\n{b.stderr_tail()}\n{c.stderr_tail()}")

        producer.join(60)
        assert not producer.is_alive(), "producer did not finish"
        assert not errors, f"producing failed: {errors[0]!r}"
        lag = [None]

        def caught_up() -> bool:
            b.assert_running()
            c.assert_running()
            lag[0] = group_lag(bootstrap, topics.group, topics.source)
            return lag[0] == 0
        wait_until(caught_up, max(5.0, DEADLINE_S - (time.monotonic() - t_start)), "consumer group lag 0",
                   lambda: f"lag={lag[0]}\n{b.stderr_tail()}\n{c.stderr_tail()}", interval_s=0.5)
        consumed_b = metric(b.scrape(), "dpp_records_consumed_total")
        consumed_c = metric(c.scrape(), "dpp_records_consumed_total")
        for w in (b, c):
            assert w.stop(timeout_s=45) == 0, w.stderr_tail()
    finally:
        for w in workers:
            w.kill()

    try:
        assert consumed_a > 0 and consumed_b > 0 and consumed_c > 0, (
            f"every worker should have processed records: A {consumed_a}, B {consumed_b}, C {consumed_c}")

        ends = end_offsets(bootstrap, topics.source)
        assert sum(ends.values()) == N_RECORDS
        assert committed_offsets(bootstrap, topics.group, topics.source) == ends, "offsets not committed to the end"

        sink = read_topic(bootstrap, topics.sink)
        dead = read_topic(bootstrap, topics.dead_letter)
        assert not dead, f"{len(dead)} records dead-lettered"
        expected = consenting_ids(records)
        duplicates = assert_each_once(sink, expected)
        for rec in sink:
            assert rec.header("dpp-policy").startswith("customer-pii@")
    finally:
        delete_topics(bootstrap, topics.all)
    elapsed = time.monotonic() - t_start
    assert elapsed < DEADLINE_S, f"scale-out run took {elapsed:.0f} s (bound {DEADLINE_S:.0f} s)"
    print(f"\nscale-out: A {consumed_a:.0f}, B {consumed_b:.0f}, C {consumed_c:.0f} records consumed; "
          f"sink {len(sink)} records for {len(expected)} consenting, {duplicates} "
          f"byte-identical duplicates; final split B {sorted(seen['b'])} C {sorted(seen['c'])}; {elapsed:.0f} s")
