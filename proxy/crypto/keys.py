"""Key material named by a policy, loaded from environment variables or files, or unwrapped
through a KMS (:mod:`proxy.crypto.kms`).

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


_URLSAFE = str.maketrans("-_", "+/")


def _decode(text: str | bytes, encoding: str, where: str) -> bytes:
    if encoding == "raw":
        return text if isinstance(text, bytes) else text.encode()
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    s = "".join(s.split())
    try:
        if encoding == "hex":
            return bytes.fromhex(s)
        # strict: a stray character must not silently give another key; url-safe alphabet accepted
        return base64.b64decode(s.translate(_URLSAFE) + "=" * (-len(s) % 4), validate=True)
    except (ValueError, binascii.Error):
        raise KeyLoadError(f"{where}: not valid {encoding}") from None


class KeyRing:
    """The versions of one named key. ``current`` is the version new records are protected with;
    older versions stay for re-identification of records protected before a rotation.

    ``repr`` lists versions and fingerprints only.
    """

    __slots__ = ("name", "versions", "current")

    def __init__(self, name: str, versions: dict[int, SecretKey], current: int | None = None):
        if not versions:
            raise KeyLoadError(f"key {name!r}: no versions found")
        self.name = name
        self.versions = dict(sorted(versions.items()))
        self.current = current if current is not None else max(self.versions)
        if self.current not in self.versions:
            raise KeyLoadError(f"key {name!r}: current version {self.current} not found")

    @property
    def key(self) -> SecretKey:
        """The current version's key."""
        return self.versions[self.current]

    def version(self, v: int) -> SecretKey:
        """Key of version ``v``; raises :class:`KeyLoadError` if this keyring lacks it."""
        try:
            return self.versions[v]
        except KeyError:
            raise KeyLoadError(f"key {self.name!r} has no version {v}") from None

    def __repr__(self) -> str:
        fps = ", ".join(f"v{v}:{k.fingerprint}" for v, k in self.versions.items())
        return f"KeyRing(name={self.name!r}, current={self.current}, versions=[{fps}])"


_HEX = frozenset("0123456789abcdefABCDEF")
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")


def looks_like_key_material(ref: str) -> bool:
    """True when a variable name or file path from a policy looks like key material pasted in its
    place (32+ hex digits, or 22+ base64 characters mixing lower case, upper case and digits, not
    starting with ``/``): such a reference is never echoed in a message."""
    s = "".join(ref.split())
    if len(s) >= 32 and _HEX.issuperset(s):
        return True
    return (len(s) >= 22 and not s.startswith("/") and _B64.issuperset(s) and any(c.islower() for c in s)
            and any(c.isupper() for c in s) and any(c.isdigit() for c in s))


def _shown(ref: str) -> str:
    return "<value looks like key material, not shown>" if looks_like_key_material(ref) else ref


def _read_env(name: str, var: str, encoding: str, env: Mapping[str, str]) -> bytes:
    where = f"key {name!r} (environment variable {_shown(var)})"
    if var not in env or not env[var].strip():
        raise KeyLoadError(f"{where}: variable is not set")
    return _checked(_decode(env[var], encoding, where), where)


def _read_file(name: str, path: str, encoding: str) -> bytes:
    where = f"key {name!r} (file {_shown(path)})"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyLoadError(f"{where}: cannot read ({type(e).__name__})") from None
    return _checked(_decode(data if encoding == "raw" else data.decode("ascii", "replace"), encoding, where), where)


def _checked(raw: bytes, where: str) -> bytes:
    if len(raw) < 16:
        raise KeyLoadError(f"{where}: {len(raw)} bytes; at least 16 are required")
    return raw


def load_keyring(name: str, spec, environ: Mapping[str, str] | None = None) -> KeyRing:
    """Load every version of a key per its spec (``EnvKey``, ``FileKey``, ``DirKey``, or the KMS
    sources ``VaultKey`` and ``AwsKey`` of :mod:`proxy.policy.models`, see :mod:`proxy.crypto.kms.store`).

    Raises :class:`KeyLoadError` when a variable/file is missing, unreadable, badly encoded or
    shorter than 16 bytes, or when a directory holds no ``<prefix>.v<N>`` file.
    """
    env = os.environ if environ is None else environ
    if spec.source in ("vault", "aws"):  # envelope encryption: DEKs unwrapped through the KMS
        from .kms.store import load_kms_keyring
        return load_kms_keyring(name, spec, env)
    versions: dict[int, SecretKey] = {}
    if spec.source == "env":
        vars_ = spec.versions or {1: spec.name}
        for v, var in vars_.items():
            versions[v] = SecretKey(name, _read_env(name, var, spec.encoding, env))
    elif spec.source == "file":
        paths = spec.versions or {1: spec.path}
        for v, path in paths.items():
            versions[v] = SecretKey(name, _read_file(name, path, spec.encoding))
    else:
        prefix = spec.prefix or name
        d = Path(spec.path)
        if not d.is_dir():
            raise KeyLoadError(f"key {name!r} (directory {_shown(spec.path)}): not a directory")
        for f in d.iterdir():
            stem, dot, ver = f.name.rpartition(".v")
            if dot and stem == prefix and ver.isdigit() and int(ver) >= 1:
                if int(ver) in versions:
                    raise KeyLoadError(f"key {name!r} (directory {spec.path}): version {int(ver)} given twice")
                versions[int(ver)] = SecretKey(name, _read_file(name, str(f), spec.encoding))
        if not versions:
            raise KeyLoadError(f"key {name!r} (directory {spec.path}): no {prefix}.v<N> files")
    return KeyRing(name, versions, spec.current)


def load_key(name: str, spec, environ: Mapping[str, str] | None = None) -> SecretKey:
    """The current version of a key (see :func:`load_keyring`). Raises :class:`KeyLoadError`."""
    return load_keyring(name, spec, environ).key


def require_aes(key: SecretKey, purpose: str) -> bytes:
    """Return the bytes of an AES key (16, 24 or 32 bytes) or raise :class:`KeyLoadError`."""
    if len(key) not in (16, 24, 32):
        raise KeyLoadError(f"key {key.name!r} for {purpose}: {len(key)} bytes; AES needs 16, 24 or 32")
    return key.material
