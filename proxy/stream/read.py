"""Read a range of one partition (for ``dpp reveal``): ``[start, end]`` inclusive offsets."""
from __future__ import annotations

from typing import Iterator

from confluent_kafka import Consumer, TopicPartition

from .clientconfig import client_config


def read_range(bootstrap: str, topic: str, partition: int, start: int, end: int | None,
               timeout_s: float = 10.0) -> Iterator[tuple[int, bytes | None, bytes | None, dict[str, bytes]]]:
    """Yield ``(offset, key, value, headers)`` for offsets ``start..end`` (``end=None``: up to the
    high watermark at call time). No consumer group offsets are committed."""
    c = Consumer({**client_config(bootstrap), "group.id": "dpp-reveal", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        last = hi - 1 if end is None else min(end, hi - 1)
        if start > last:
            return
        c.assign([TopicPartition(topic, partition, max(start, lo))])
        while True:
            m = c.poll(timeout_s)
            if m is None:
                raise TimeoutError(f"no record from {topic}[{partition}] within {timeout_s} s")
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    return
                raise RuntimeError(m.error().name())
            if m.offset() > last:
                return
            yield m.offset(), m.key(), m.value(), dict(m.headers() or [])
            if m.offset() >= last:
                return
    finally:
        c.close()


def produce_one(bootstrap: str, topic: str, value: bytes | None, key: bytes | None = None,
                headers: list | None = None, timeout_s: float = 30.0) -> None:
    """Produce one record (``headers``: ``[(name, bytes | None)]``, order kept) and wait for the
    broker's acknowledgement (raises ``RuntimeError``). Keys are partitioned with murmur2 (the
    Java client's partitioner), as the proxy's own producer does."""
    from confluent_kafka import Producer
    p = Producer({**client_config(bootstrap), "enable.idempotence": True, "partitioner": "murmur2_random"})
    errs = []
    p.produce(topic, value, key, headers=headers or None, on_delivery=lambda e, m: errs.append(e) if e else None)
    if p.flush(timeout_s) or errs:
        raise RuntimeError(f"record not acknowledged by {topic}")
