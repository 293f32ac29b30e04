"""Read a sample of a topic's most recent records for ``dpp scan`` (confluent-kafka).

The sample is taken from the tail of every partition (the newest records reflect the current
shape of the data), split across partitions in proportion to how many records each holds. It
uses a throw-away consumer group, assigns partitions explicitly and never commits offsets, so
it does not disturb any consumer group.
"""
from __future__ import annotations

import time
import uuid
from typing import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from .clientconfig import client_config


class TopicNotFound(LookupError):
    """The topic does not exist (or has no partitions) on the given cluster."""


def plan_quotas(available: dict[int, int], count: int) -> dict[int, int]:
    """Records to read per partition: all of them when ``count`` covers the topic, else a share
    proportional to each partition's size (largest remainders get the leftover records)."""
    total = sum(available.values())
    if total <= count:
        return dict(available)
    quotas = {p: count * n // total for p, n in available.items()}
    left = count - sum(quotas.values())
    by_rem = sorted(available, key=lambda p: (-(count * available[p] % total), p))
    for p in by_rem[:left]:
        quotas[p] += 1
    return quotas


def sample_topic(bootstrap: str, topic: str, count: int, *, timeout_s: float = 30.0,
                 config: dict | None = None) -> Iterator[bytes | None]:
    """Yield up to ``count`` record values (``None`` for tombstones) from the tail of ``topic``.

    Stops when the planned offsets are reached or after ``timeout_s`` seconds. Raises
    :class:`TopicNotFound` for a missing topic and ``KafkaException`` for broker errors.
    """
    consumer = Consumer({
        **client_config(bootstrap),
        "group.id": f"dpp-scan-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        **(config or {}),
    })
    try:
        md = consumer.list_topics(topic, timeout=10)
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None or not tmd.partitions:
            raise TopicNotFound(f"topic {topic!r} not found")
        marks: dict[int, tuple[int, int]] = {}
        for p in sorted(tmd.partitions):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            marks[p] = (lo, hi)
        quotas = plan_quotas({p: hi - lo for p, (lo, hi) in marks.items()}, count)
        ends = {p: marks[p][1] for p, q in quotas.items() if q > 0}
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, marks[p][1] - quotas[p]) for p in ends])
        pending = set(ends)
        deadline = time.monotonic() + timeout_s
        n = 0
        while pending and n < count and time.monotonic() < deadline:
            for m in consumer.consume(min(500, count - n), 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    if err.fatal():
                        raise KafkaException(err)
                    continue
                p = m.partition()
                if p not in pending:
                    continue
                if m.offset() >= ends[p] - 1:
                    pending.discard(p)
                if m.offset() >= ends[p]:
                    continue
                n += 1
                yield m.value()
                if n >= count:
                    break
    finally:
        consumer.close()
