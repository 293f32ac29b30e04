"""The key store: wrapped DEKs, one per key version, in a JSON file (no key material in clear,
safe to commit or to mount as a ConfigMap).

Deterministic transforms (FF1, AES-SIV tokens, HMAC pseudonyms) need the same DEK for a key
version on every worker and after every restart, so outputs stay joinable and a redelivered record
is protected byte-identically: a DEK is generated once (``dpp keys init``/``rotate``), wrapped by
its KEK, and every worker unwraps the same stored ciphertext at start-up.

File shape (``format`` ``dpp-key-store``, ``version`` 1)::

    {"format": "dpp-key-store", "version": 1,
     "keys": {"fpe": {"source": "vault", "kek": "dpp-fpe", "size": 32,
                      "versions": {"1": {"kek_version": 1, "wrapped": "<base64 of the KMS ciphertext>",
                                         "created": "2026-12-07T12:00:00Z"}}}}}

Key versions are dpp's (carried in the ``dpp-key-versions`` header); ``kek_version`` is the KMS
version that wrapped the DEK (``dpp keys rewrap`` moves every DEK to the newest KEK version
without changing it).
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import orjson

from ...errors import KeyLoadError
from ..keys import KeyRing, SecretKey
from . import kms_for

FORMAT, VERSION = "dpp-key-store", 1


def read_store(path: str | os.PathLike) -> dict:
    """The store document at ``path`` (an empty store when the file does not exist).
    Raises :class:`KeyLoadError` when it is unreadable or not a key store."""
    p = Path(path)
    if not p.exists():
        return {"format": FORMAT, "version": VERSION, "keys": {}}
    try:
        doc = orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise KeyLoadError(f"key store {str(path)!r}: cannot read ({type(e).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION \
            or not isinstance(doc.get("keys"), dict):
        raise KeyLoadError(f"key store {str(path)!r}: not a {FORMAT} version {VERSION} file")
    return doc


def write_store(path: str | os.PathLike, doc: dict) -> None:
    """Write ``doc`` atomically (a temporary file in the same directory, then a rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entry(doc: dict, name: str, spec, where: str) -> dict:
    e = doc["keys"].get(name)
    if e is None:
        raise KeyLoadError(f"{where}: not in the key store (run dpp keys init --policy POLICY)")
    if e.get("source") != spec.source or e.get("kek") != spec.key:
        raise KeyLoadError(f"{where}: the key store holds it for {e.get('source')} kek {e.get('kek')!r}, "
                           f"the policy names {spec.source} kek {spec.key!r}")
    if not isinstance(e.get("versions"), dict) or not e["versions"]:
        raise KeyLoadError(f"{where}: no versions in the key store")
    return e


def _wrapped(v: dict, where: str) -> bytes:
    try:
        return base64.b64decode(v["wrapped"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise KeyLoadError(f"{where}: a stored DEK is not valid base64") from None


def load_kms_keyring(name: str, spec, environ: Mapping[str, str]) -> KeyRing:
    """Every stored version of key ``name`` unwrapped through its KMS (``VaultKey``/``AwsKey`` spec).

    Raises :class:`KeyLoadError` (missing or mismatched store entry, wrong DEK length,
    :class:`~proxy.errors.KmsRefused`) or :class:`~proxy.errors.KmsUnavailable` (the KMS is away:
    the caller waits, it must not fall back to other keys)."""
    where = f"key {name!r} ({spec.source} kek {spec.key!r}, store {spec.store})"
    e = _entry(read_store(spec.store), name, spec, where)
    kms = kms_for(spec, environ)
    versions: dict[int, SecretKey] = {}
    for v, item in e["versions"].items():
        if not (isinstance(v, str) and v.isdigit() and int(v) >= 1):
            raise KeyLoadError(f"{where}: version {v!r} is not a number >= 1")
        dek = kms.unwrap(_wrapped(item, where))
        if len(dek) != spec.size:
            raise KeyLoadError(f"{where}: version {v}: the DEK has {len(dek)} bytes, the policy says {spec.size}")
        versions[int(v)] = SecretKey(name, dek)
    return KeyRing(name, versions, spec.current)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_version(entry: dict, kms, size: int) -> tuple[int, int]:
    _dek, w = kms.generate_data_key(size)  # the DEK itself is dropped: workers unwrap it
    v = max((int(x) for x in entry["versions"]), default=0) + 1
    entry["versions"][str(v)] = {"kek_version": w.kek_version, "wrapped": base64.b64encode(w.ciphertext).decode(),
                                 "created": _now()}
    return v, w.kek_version


def _kms_specs(keys: Mapping[str, object], names: Iterable[str] | None):
    chosen = sorted(keys) if names is None else list(names)
    for n in chosen:
        if n not in keys:
            raise KeyLoadError(f"key {n!r}: not in the policy")
        if getattr(keys[n], "source", None) not in ("vault", "aws"):
            if names is not None:
                raise KeyLoadError(f"key {n!r}: source {keys[n].source} is not a KMS (vault, aws)")
            continue
        yield n, keys[n]


def _update(keys: Mapping[str, object], names, environ, change) -> list[dict]:
    """Apply ``change(name, spec, entry, kms) -> report`` to each KMS key, store by store."""
    reports, docs = [], {}
    for name, spec in _kms_specs(keys, names):
        doc = docs.setdefault(spec.store, read_store(spec.store))
        r = change(name, spec, doc["keys"], kms_for(spec, environ))
        if r is not None:
            reports.append({"key": name, "store": spec.store, **r})
    for path, doc in docs.items():
        write_store(path, doc)
    return reports


def init_keys(keys: Mapping[str, object], environ: Mapping[str, str], names: Iterable[str] | None = None) -> list[dict]:
    """Create version 1 of every KMS key of a policy that its store lacks (existing keys are left
    alone). Returns one report per created key: ``{"key", "store", "version", "kek_version"}``."""
    def change(name, spec, stored, kms):
        if name in stored:
            _entry({"keys": stored}, name, spec, f"key {name!r}")  # same KEK, or an error
            return None
        stored[name] = {"source": spec.source, "kek": spec.key, "size": spec.size, "versions": {}}
        v, kv = _new_version(stored[name], kms, spec.size)
        return {"version": v, "kek_version": kv, "action": "created"}
    return _update(keys, names, environ, change)


def rotate_keys(keys: Mapping[str, object], environ: Mapping[str, str], names: Iterable[str] | None = None) -> list[dict]:
    """Add a new DEK version (wrapped by the newest KEK version) to every (named) KMS key; older
    versions stay for reveal and dead-letter reads."""
    def change(name, spec, stored, kms):
        e = _entry({"keys": stored}, name, spec, f"key {name!r}")
        v, kv = _new_version(e, kms, spec.size)
        return {"version": v, "kek_version": kv, "action": "rotated"}
    return _update(keys, names, environ, change)


def rewrap_keys(keys: Mapping[str, object], environ: Mapping[str, str], names: Iterable[str] | None = None) -> list[dict]:
    """Rewrap every stored DEK version under the newest KEK version (the DEKs do not change, so
    outputs do not either). One report per key: ``{"key", "store", "versions": {v: kek_version}}``."""
    def change(name, spec, stored, kms):
        e = _entry({"keys": stored}, name, spec, f"key {name!r}")
        out = {}
        for v, item in sorted(e["versions"].items(), key=lambda x: int(x[0])):
            w = kms.rewrap(_wrapped(item, f"key {name!r}"))
            item.update(kek_version=w.kek_version, wrapped=base64.b64encode(w.ciphertext).decode())
            out[v] = w.kek_version
        return {"versions": out, "action": "rewrapped"}
    return _update(keys, names, environ, change)
