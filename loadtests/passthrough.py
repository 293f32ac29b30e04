"""Benchmark row (a), "the limit": a raw confluent-kafka (librdkafka) consume → produce loop.

::

    python -m loadtests.passthrough --source SRC --sink DST --group G [--bootstrap 127.0.0.1:9092]

It does what ``dpp run`` does *minus the policy*, with the same client settings and the same
guarantees, so the difference between the two is the cost of protecting the records:

* consumer: same group settings as :class:`proxy.stream.engine.RouteWorker` (manual commits,
  cooperative-sticky, ``fetch.wait.max.ms=100``), batches of up to ``--batch-size`` records taken
  the way the engine takes them (:func:`next_batch`; ``--blocking``: full batches or 0.5 s);
* producer: idempotent, ``acks=all``, ``linger.ms=5``, ``batch.num.messages=10000``; value, key
  and headers copied unchanged, a delivery callback per record;
* after each batch: wait for every acknowledgement (``flush``), then commit the batch's offsets
  synchronously (at-least-once, nothing lost).

On partition assignment it prints ``{"msg": "partitions assigned", …}`` (the harness's readiness
marker, like dpp's own log line). SIGTERM finishes the batch, commits and exits 0.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


REBALANCE_COMMIT_ERRORS = frozenset({KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                                     KafkaError.UNKNOWN_MEMBER_ID, KafkaError._ASSIGNMENT_LOST})


def consumer_config(bootstrap: str, group: str) -> dict:
    """The engine's consumer settings (``proxy/stream/engine.py``)."""
    return {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 100}


def producer_config(bootstrap: str, batch_size: int) -> dict:
    """The engine's producer settings (``proxy/stream/engine.py``)."""
    return {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "batch.num.messages": 10000, "queue.buffering.max.messages": max(100000, batch_size * 4),
            "queue.buffering.max.kbytes": 1048576}


def next_batch(consumer: Consumer, batch_size: int, timeout_s: float, blocking: bool = False,
               linger_s: float = 0.005) -> list:
    """Up to ``batch_size`` records, taken like the engine takes them: records already fetched are
    returned at once; when there are none, wait up to ``timeout_s`` for the first one, then up to
    ``linger_s`` for more. ``blocking=True`` is librdkafka's plain
    ``consume(batch_size, timeout_s)``, which waits for a full batch or the whole timeout."""
    if blocking:
        return consumer.consume(batch_size, timeout_s)
    msgs = consumer.consume(batch_size, 0)
    if msgs:
        return msgs
    first = consumer.consume(1, timeout_s)
    if not first or batch_size == 1:
        return first
    return first + consumer.consume(batch_size - 1, linger_s)


def run(bootstrap: str, source: str, sink: str, group: str, batch_size: int = 1000, timeout_s: float = 0.5,
        stop: threading.Event | None = None, blocking: bool = False) -> int:
    """The loop; returns the number of records passed through when ``stop`` is set."""
    stop = stop or threading.Event()
    c = Consumer(consumer_config(bootstrap, group))
    p = Producer(producer_config(bootstrap, batch_size))
    failed: list = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(msg)

    def on_assign(_c, parts):
        print(json.dumps({"msg": "partitions assigned", "partitions": sorted(x.partition for x in parts)}), flush=True)

    c.subscribe([source], on_assign=on_assign)
    total = 0
    try:
        while not stop.is_set():
            msgs = next_batch(c, batch_size, timeout_s, blocking)
            if not msgs:
                continue
            offsets: dict[tuple[str, int], int] = {}
            good = 0
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF and err.fatal():
                        raise KafkaException(err)
                    continue
                while True:
                    try:
                        p.produce(sink, m.value(), m.key(), headers=m.headers(), on_delivery=on_delivery)
                        break
                    except BufferError:
                        p.poll(0.05)
                offsets[(m.topic(), m.partition())] = m.offset() + 1
                good += 1
            p.flush()
            if failed:
                raise RuntimeError(f"{len(failed)} records not acknowledged")
            if offsets:
                try:
                    c.commit(offsets=[TopicPartition(t, q, o) for (t, q), o in offsets.items()], asynchronous=False)
                except KafkaException as e:  # like the engine: a rebalance is not a failure
                    if e.args[0].code() not in REBALANCE_COMMIT_ERRORS:
                        raise
            total += good
    finally:
        c.close()
    return total


def loop_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every pass-through loop takes (also :mod:`loadtests.native_passthrough`)."""
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--source", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--batch-size", type=int, default=1000)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = loop_arguments(argparse.ArgumentParser(prog="python -m loadtests.passthrough",
                                                description=__doc__.split("\n")[0]))
    ap.add_argument("--blocking", action="store_true", help="consume(batch, 0.5 s): wait for full batches")
    a = ap.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    n = run(a.bootstrap, a.source, a.sink, a.group, a.batch_size, stop=stop, blocking=a.blocking)
    print(json.dumps({"msg": "stopped", "records": n}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
