"""Key material named by a policy, loaded from environment variables or files.

Keys are secrets: :class:`SecretKey` never shows its bytes in ``repr``/``str``, and every error
names the key and where it was looked for, never the material.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Mapping

from ..errors import KeyLoadError


class SecretKey:
    """Opaque key bytes. ``repr`` shows the name, length and a short fingerprint (SHA-256 of the
    key, first 8 hex digits, safe to log), never the bytes. ``.material`` gives the bytes."""

    __slots__ = ("name", "_b")

    def __init__(self, name: str, material: bytes):
        self.name = name
        self._b = bytes(material)

    @property
    def material(self) -> bytes:
        return self._b

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(b"dpp-key-fingerprint\x00" + self._b).hexdigest()[:8]

    def __len__(self) -> int:
        return len(self._b)

    def __repr__(self) -> str:
        return f"SecretKey(name={self.name!r}, bytes={len(self._b)}, fingerprint={self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self):  # never pickled by accident into a log or a queue
        raise TypeError("SecretKey cannot be pickled")


def _decode(text: str | bytes, encoding: str, where: str) -> bytes:
    if encoding == "raw":
        return text if isinstance(text, bytes) else text.encode()
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    s = "".join(s.split())
    try:
        if encoding == "hex":
            return bytes.fromhex(s)
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=False)
    except (ValueError, binascii.Error):
        raise KeyLoadError(f"{where}: not valid {encoding}") from None


def load_key(name: str, spec, environ: Mapping[str, str] | None = None) -> SecretKey:
    """Load one key per its spec (:class:`proxy.policy.models.EnvKey` or ``FileKey``).

    Raises :class:`KeyLoadError` when the variable/file is missing, unreadable, badly encoded or empty.
    """
    env = os.environ if environ is None else environ
    if spec.source == "env":
        where = f"key {name!r} (environment variable {spec.name})"
        if spec.name not in env or not env[spec.name].strip():
            raise KeyLoadError(f"{where}: variable is not set")
        raw = _decode(env[spec.name], spec.encoding, where)
    else:
        where = f"key {name!r} (file {spec.path})"
        try:
            data = Path(spec.path).read_bytes()
        except OSError as e:
            raise KeyLoadError(f"{where}: cannot read ({type(e).__name__})") from None
        raw = _decode(data if spec.encoding == "raw" else data.decode("ascii", "replace"), spec.encoding, where)
    if len(raw) < 16:
        raise KeyLoadError(f"{where}: {len(raw)} bytes; at least 16 are required")
    return SecretKey(name, raw)


def require_aes(key: SecretKey, purpose: str) -> bytes:
    """Return the bytes of an AES key (16, 24 or 32 bytes) or raise :class:`KeyLoadError`."""
    if len(key) not in (16, 24, 32):
        raise KeyLoadError(f"key {key.name!r} for {purpose}: {len(key)} bytes; AES needs 16, 24 or 32")
    return key.material
