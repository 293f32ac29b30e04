"""The dead-letter envelope: the whole original record sealed, plus metadata headers in clear.

Payload (``dpp.dlq.content: record-v1``): the original key, headers and value, serialized as

    byte      0x02                            content version
    key       int32 length (-1: null) || bytes
    headers   uint32 count, then per header: uint32 name length || name (UTF-8; a name that is not
                                             text: its bytes as given)
                                             || int32 value length (-1: null) || bytes
    value     int32 length (-1: tombstone) || bytes              (integers big-endian)

sealed with AES-GCM (NIST SP 800-38D) under the route's dead-letter key, with associated data
``dpp-dlq-v2|topic|partition|offset`` binding it to where it came from (see
:mod:`proxy.crypto.aead`). The nonce is synthetic (derived from key, associated data and
payload), so redelivery of the same source record gives a byte-identical dead-letter record.
Envelopes without the ``dpp.dlq.content`` header (earlier versions) hold the value alone, under
associated data ``dpp-dlq-v1|...``; :func:`open_record` opens both.

Headers (all ASCII, none derived from the record): ``dpp.source.topic``, ``dpp.source.partition``,
``dpp.source.offset``, ``dpp.route``, ``dpp.stage``, ``dpp.reason``, ``dpp.error.class``,
``dpp.rule``, ``dpp.policy``, ``dpp.dlq.key``, ``dpp.dlq.encryption``, ``dpp.dlq.content``.
The dead-letter record's key is the protected key when the route's key rules succeeded, else null
(routes without key rules: the source key, as keys pass unchanged there).

A record too large for the dead-letter topic even sealed (reason ``too-large``) becomes a *stub*
(:func:`stub`): the same headers with ``dpp.dlq.content: dropped``, ``dpp.dropped.bytes`` (the
size of the ``record-v1`` serialization of the original record) and ``dpp.dropped.digest``
(``hmac-sha256:<hex>`` of that serialization under a key derived from the dead-letter key, so an
operator holding the key can match it with the source record at ``dpp.source.*`` while nobody
else can test guesses of its content), and an empty value: the payload is dropped.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from ..crypto import aead
from ..policy.compiler import CompiledRoute, Outcome

ENCRYPTION = "aes-gcm-siv-nonce-v1"
CONTENT = "record-v1"
DROPPED = "dropped"
_CONTENT_VERSION = 2
_I32, _U32 = struct.Struct(">i"), struct.Struct(">I")


class PayloadDropped(ValueError):
    """The dead-letter record is a stub (:func:`stub`): its payload was too large and was dropped.
    ``size`` is the original record's size in bytes, ``digest`` its ``hmac-sha256:<hex>``."""

    def __init__(self, size: int, digest: str):
        super().__init__(f"payload dropped: {size} bytes, too large for the dead-letter topic")
        self.size, self.digest = size, digest


@dataclass(frozen=True)
class SealedRecord:
    """An opened dead-letter record: the original ``key``, ``headers`` (``[(name, bytes | None)]``,
    in order) and ``value`` (``None`` for a tombstone)."""

    key: bytes | None
    headers: list
    value: bytes | None


def associated_data(topic: str, partition: int, offset: int, version: int = 2) -> bytes:
    """AEAD associated data binding a sealed payload to its source coordinates."""
    return f"dpp-dlq-v{version}|{topic}|{partition}|{offset}".encode()


def _blob(b: bytes | None) -> bytes:
    return _I32.pack(-1) if b is None else _I32.pack(len(b)) + bytes(b)


def pack_record(key: bytes | None, headers: list | None, value: bytes | None) -> bytes:
    """The ``record-v1`` serialization of a record (module doc)."""
    hs = headers or []
    parts = [bytes((_CONTENT_VERSION,)), _blob(key), _U32.pack(len(hs))]
    for name, v in hs:
        n = name if isinstance(name, (bytes, bytearray)) else name.encode("utf-8", "surrogateescape")
        parts += [_U32.pack(len(n)), bytes(n), _blob(v)]
    parts.append(_blob(value))
    return b"".join(parts)


def unpack_record(data: bytes) -> SealedRecord:
    """Inverse of :func:`pack_record`. Raises ``ValueError`` for bytes it does not describe."""
    mv, pos = memoryview(data), 1
    if not data or data[0] != _CONTENT_VERSION:
        raise ValueError("unknown dead-letter content version")

    def blob() -> bytes | None:
        nonlocal pos
        (n,) = _I32.unpack_from(mv, pos)
        pos += 4
        if n == -1:
            return None
        if n < 0 or pos + n > len(mv):
            raise ValueError("truncated dead-letter content")
        out = bytes(mv[pos:pos + n])
        pos += n
        return out
    try:
        key = blob()
        (count,) = _U32.unpack_from(mv, pos)
        pos += 4
        headers = []
        for _ in range(count):
            (ln,) = _U32.unpack_from(mv, pos)
            if pos + 4 + ln > len(mv):
                raise ValueError("truncated dead-letter content")
            name = bytes(mv[pos + 4:pos + 4 + ln]).decode("utf-8", "surrogateescape")
            pos += 4 + ln
            headers.append((name, blob()))
        value = blob()
    except struct.error:
        raise ValueError("truncated dead-letter content") from None
    if pos != len(mv):
        raise ValueError("bytes after the dead-letter content")
    return SealedRecord(key, headers, value)


def envelope(route: CompiledRoute, provenance: str, topic: str, partition: int, offset: int,
             value: bytes | None, outcome: Outcome, key: bytes | None = None,
             headers: list | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Build ``(sealed_value, headers)`` for one dead-lettered record (its original ``key``,
    ``headers`` and ``value``)."""
    ad = associated_data(topic, partition, offset)
    sealed = aead.seal_deterministic(route.dead_letter_key, pack_record(key, headers, value), ad)
    return sealed, _headers(route, provenance, topic, partition, offset, outcome, CONTENT)


def _headers(route: CompiledRoute, provenance: str, topic: str, partition: int, offset: int,
             outcome: Outcome, content: str) -> list[tuple[str, bytes]]:
    return [
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
        ("dpp.dlq.content", content.encode()),
    ]


def digest_key(dead_letter_key: bytes) -> bytes:
    """The HMAC-SHA256 key of ``dpp.dropped.digest``: HMAC-SHA256(dead-letter key, label), so the
    digest key is not the sealing key itself (RFC 2104; a one-step KDF, NIST SP 800-108 style)."""
    return hmac.new(dead_letter_key, b"dpp-dlq-dropped-digest-v1", hashlib.sha256).digest()


def stub(route: CompiledRoute, provenance: str, topic: str, partition: int, offset: int,
         value: bytes | None, outcome: Outcome, key: bytes | None = None,
         headers: list | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """``(b"", headers)``: the dead-letter record of a record too large to seal into the
    dead-letter topic (module doc). ``outcome`` is the dead-letter outcome (its reason is kept)."""
    packed = pack_record(key, headers, value)
    mac = hmac.new(digest_key(route.dead_letter_key), packed, hashlib.sha256).hexdigest()
    out = _headers(route, provenance, topic, partition, offset, outcome, DROPPED)
    out += [("dpp.dropped.bytes", str(len(packed)).encode()), ("dpp.dropped.digest", f"hmac-sha256:{mac}".encode())]
    return b"", out


def open_record(key: bytes, value: bytes, headers: dict[str, str], dlq_key: bytes | None = None) -> SealedRecord:
    """Decrypt a dead-letter record given its headers (as ``str`` values). Envelopes of earlier
    versions (value only) come back with the dead-letter record's own key (``dlq_key``) and no
    headers. Raises :class:`proxy.crypto.aead.DecryptionError` on a wrong key or tampering,
    ``ValueError`` for content it does not describe."""
    coords = (headers["dpp.source.topic"], int(headers["dpp.source.partition"]), int(headers["dpp.source.offset"]))
    if headers.get("dpp.dlq.content") == DROPPED:
        raise PayloadDropped(int(headers.get("dpp.dropped.bytes", "0")), headers.get("dpp.dropped.digest", ""))
    if headers.get("dpp.dlq.content") == CONTENT:
        return unpack_record(aead.open_(key, value, associated_data(*coords)))
    return SealedRecord(dlq_key, [], aead.open_(key, value, associated_data(*coords, version=1)))


def open_envelope(key: bytes, value: bytes, headers: dict[str, str]) -> bytes:
    """The original value bytes of a dead-letter record (tombstone: ``b""``); see :func:`open_record`."""
    return open_record(key, value, headers).value or b""
