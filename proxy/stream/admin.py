"""Topic administration the CLI needs: create a route's sink and dead-letter topics if missing."""
from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .clientconfig import client_config

log = logging.getLogger("proxy.stream")


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 30.0,
                  configs: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Create each missing topic (name → partitions, replication factor 1 for a local broker;
    ``configs``: topic → topic-level configuration).

    Returns the names created. Raises ``KafkaException`` if the broker refuses.
    """
    admin = AdminClient(client_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    new = [NewTopic(t, num_partitions=n, replication_factor=1, config=(configs or {}).get(t, {}))
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
