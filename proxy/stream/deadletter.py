"""The dead-letter envelope: sealed payload plus metadata headers in clear.

Payload: the original value bytes sealed with AES-GCM (NIST SP 800-38D) under the route's
dead-letter key, with associated data ``dpp-dlq-v1|topic|partition|offset`` binding it to where it
came from (see :mod:`proxy.crypto.aead`). The nonce is synthetic (derived from key, associated
data and payload), so redelivery of the same source record gives a byte-identical dead-letter record.

Headers (all ASCII, none derived from the value): ``dpp.source.topic``, ``dpp.source.partition``,
``dpp.source.offset``, ``dpp.route``, ``dpp.stage``, ``dpp.reason``, ``dpp.error.class``,
``dpp.rule``, ``dpp.policy``, ``dpp.dlq.key``, ``dpp.dlq.encryption``.
"""
from __future__ import annotations

from ..crypto import aead
from ..policy.compiler import CompiledRoute, Outcome

ENCRYPTION = "aes-gcm-siv-nonce-v1"


def associated_data(topic: str, partition: int, offset: int) -> bytes:
    """AEAD associated data binding a sealed payload to its source coordinates."""
    return f"dpp-dlq-v1|{topic}|{partition}|{offset}".encode()


def envelope(route: CompiledRoute, provenance: str, topic: str, partition: int, offset: int,
             value: bytes | None, outcome: Outcome) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Build ``(sealed_value, headers)`` for one dead-lettered record."""
    ad = associated_data(topic, partition, offset)
    sealed = aead.seal_deterministic(route.dead_letter_key, value or b"", ad)
    headers = [
        ("dpp.source.topic", topic.encode()),
        ("dpp.source.partition", str(partition).encode()),
        ("dpp.source.offset", str(offset).encode()),
        ("dpp.route", route.name.encode()),
        ("dpp.stage", outcome.stage.encode()),
        ("dpp.reason", outcome.reason.encode()),
        ("dpp.error.class", outcome.error_class.encode()),
        ("dpp.rule", outcome.rule.encode()),
        ("dpp.policy", provenance.encode()),
        ("dpp.dlq.key", route.dead_letter_key_name.encode()),
        ("dpp.dlq.encryption", ENCRYPTION.encode()),
    ]
    return sealed, headers


def open_envelope(key: bytes, value: bytes, headers: dict[str, str]) -> bytes:
    """Decrypt a dead-letter payload given its headers (as ``str`` values). Raises
    :class:`proxy.crypto.aead.DecryptionError` on a wrong key or tampering."""
    ad = associated_data(headers["dpp.source.topic"], int(headers["dpp.source.partition"]),
                         int(headers["dpp.source.offset"]))
    return aead.open_(key, value, ad)
