"""Per-subject keys for crypto-shredding: ids, wrapping and derivation (no storage, no Kafka).

* subject reference: ``HMAC-SHA256(KEK, "dpp-subject-v1" 0x00 id)`` (hex, 32 chars): names a data
  subject in the key topic and in the ``dpp-subject`` header without revealing the id;
* subject key: 32 random bytes, stored wrapped: AES-GCM under the KEK with the reference as
  associated data (NIST SP 800-38D);
* the key a reversible rule uses for a subject: HKDF-SHA256 (RFC 5869) of rule key || subject key,
  info ``dpp-subject-rule-key-v1``, 32 bytes. Without the subject key it cannot be recomputed, which
  is what erasing it achieves.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Iterable, Mapping, Protocol

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import aead

FORGOTTEN = None
"""Value of a forgotten subject in a key map."""


def subject_ref(kek: bytes, subject_id: str) -> str:
    """Keyed reference of a subject id (32 hex characters)."""
    return hmac.new(kek, b"dpp-subject-v1\x00" + subject_id.encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()[:32]


def new_subject_key() -> bytes:
    """32 random bytes from the OS CSPRNG."""
    return os.urandom(32)


def wrap(kek: bytes, ref: str, key: bytes) -> bytes:
    """Key-topic record value for a live subject key (JSON, key sealed with AES-GCM)."""
    return orjson.dumps({"v": 1, "wrapped": base64.b64encode(aead.seal(kek, key, ref.encode())).decode()})


def forgotten_record(ts: str) -> bytes:
    """Key-topic record value marking a subject as forgotten (no key material)."""
    return orjson.dumps({"v": 1, "forgotten": True, "ts": ts})


def unwrap(kek: bytes, ref: str, value: bytes) -> bytes | None:
    """Parse a key-topic record: the subject key, or ``None`` for a forgotten subject.
    Raises ``ValueError``/:class:`proxy.crypto.aead.DecryptionError` for a corrupt record."""
    doc = orjson.loads(value)
    if doc.get("forgotten"):
        return FORGOTTEN
    return aead.open_(kek, base64.b64decode(doc["wrapped"]), ref.encode())


def derive_rule_key(rule_key: bytes, subject_key: bytes) -> bytes:
    """The 32-byte key a reversible rule uses for one subject."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"dpp-subject-rule-key-v1").derive(rule_key + subject_key)


class SubjectKeyStore(Protocol):
    """Where subject keys live. ``keys_for`` returns ``{ref: key or None (forgotten)}`` for the given
    references, creating keys for subjects never seen before; ``forget(ref)`` erases one."""

    def keys_for(self, refs: Iterable[str]) -> Mapping[str, bytes | None]: ...

    def lookup(self, ref: str) -> bytes | None:
        """The key of a known subject (``None`` if forgotten); ``KeyError`` if never seen."""
        ...

    def forget(self, ref: str) -> None: ...


class MemorySubjectKeys:
    """In-process store (offline ``dpp apply``, tests). Not durable."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    def keys_for(self, refs: Iterable[str]) -> Mapping[str, bytes | None]:
        for r in refs:
            if r not in self.keys:
                self.keys[r] = new_subject_key()
        return self.keys

    def lookup(self, ref: str) -> bytes | None:
        return self.keys[ref]

    def forget(self, ref: str) -> None:
        self.keys[ref] = FORGOTTEN
