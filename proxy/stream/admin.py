"""Topic administration the CLI needs: create a route's sink and dead-letter topics if missing."""
from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .clientconfig import client_config

log = logging.getLogger("proxy.stream")


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 30.0,
                  configs: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Create each missing topic (name → partitions; the cluster's ``default.replication.factor``,
    KIP-464, so a three-broker cluster gets replicated topics; ``configs``: topic → topic-level
    configuration).

    Returns the names created. Raises ``KafkaException`` if the broker refuses.
    """
    admin = AdminClient(client_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    new = [NewTopic(t, num_partitions=n, replication_factor=-1, config=(configs or {}).get(t, {}))
           for t, n in topics.items() if t not in existing]
    if not new:
        return []
    for name, fut in admin.create_topics(new, operation_timeout=timeout_s).items():
        try:
            fut.result()
        except KafkaException as e:
            if e.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: created concurrently
                raise
        log.info("topic created", extra={"topic": name})
    return [t.topic for t in new]


def partition_count(bootstrap: str, topic: str, timeout_s: float = 30.0) -> int | None:
    """Number of partitions of ``topic``, or ``None`` when it does not exist."""
    md = AdminClient(client_config(bootstrap)).list_topics(topic=topic, timeout=timeout_s)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1048588
"""Kafka's default ``message.max.bytes`` (broker) and ``max.message.bytes`` (topic), since 2.x."""


def max_message_bytes(bootstrap: str, topics: list[str], timeout_s: float = 10.0) -> dict[str, int | None]:
    """Each topic's effective ``max.message.bytes`` (topic override, else the broker's
    ``message.max.bytes``) in bytes, read with DescribeConfigs; ``None`` for a topic whose
    configuration cannot be read (no DescribeConfigs ACL, a timeout). The limit is checked by the
    broker against a whole (uncompressed, here) record batch."""
    from confluent_kafka.admin import ConfigResource, ResourceType
    admin = AdminClient(client_config(bootstrap))
    out: dict[str, int | None] = {t: None for t in topics}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in dict.fromkeys(topics)],
                                     request_timeout=timeout_s)
    for res, fut in futures.items():
        try:
            entry = fut.result(timeout=timeout_s).get("max.message.bytes")
        except (KafkaException, TimeoutError) as e:
            log.warning("cannot read the topic's max.message.bytes", extra={"topic": res.name,
                                                                            "error_class": type(e).__name__})
            continue
        if entry is not None and entry.value is not None:
            out[res.name] = int(entry.value)
    return out
