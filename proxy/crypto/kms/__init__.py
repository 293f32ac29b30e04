"""Envelope encryption: key-encryption keys (KEKs) in a KMS wrap the data keys (DEKs) dpp uses.

* :mod:`.base`: the :class:`~.base.Kms` interface (wrap, unwrap, generate data key, describe key);
* providers: :mod:`.vault` (HashiCorp Vault Transit / OpenBao), :mod:`.aws` (AWS KMS);
* decorators: :mod:`.caching`, :mod:`.resilience`, :mod:`.instrumentation`;
* :mod:`.store`: the key store of wrapped DEKs and the keyrings unwrapped from it.

:func:`kms_for` builds the decorated client of a policy key spec, one per KMS and KEK in a process
(so keys sharing a KEK share its cache and circuit breaker).
"""
from __future__ import annotations

import hashlib
import threading
from typing import Mapping

from .base import Kms, KmsDecorator, Wrapped
from .caching import CachingKms
from .instrumentation import InstrumentedKms, set_observer
from .resilience import CircuitBreaker, ResilientKms

__all__ = ["Kms", "KmsDecorator", "Wrapped", "CachingKms", "InstrumentedKms", "ResilientKms", "CircuitBreaker",
           "set_observer", "kms_for", "provider_for", "decorate", "reset"]

_clients: dict[tuple, Kms] = {}
_lock = threading.Lock()


_CLIENT_LIBRARY = {"vault": ("hvac", "vault"), "aws": ("boto3", "aws")}


def provider_for(spec, environ: Mapping[str, str]) -> Kms:
    """The bare provider client of a ``VaultKey`` or ``AwsKey`` policy spec (no decorators).
    Raises :class:`~proxy.errors.KeyLoadError` when the provider's client library is missing."""
    import importlib.util
    lib, extra = _CLIENT_LIBRARY.get(spec.source, (None, None))
    if lib and importlib.util.find_spec(lib) is None:
        from ...errors import KeyLoadError
        raise KeyLoadError(f"source {spec.source} needs the {lib} library: pip install 'data-protection-proxy[{extra}]'")
    if spec.source == "vault":
        from .vault import VaultAuth, VaultTransit
        a = spec.auth
        auth = VaultAuth(method=a.method, token_env=a.token_env or (None if a.token_file else "VAULT_TOKEN"),
                         token_file=a.token_file, role_id_env=a.role_id_env, role_id_file=a.role_id_file,
                         secret_id_env=a.secret_id_env, secret_id_file=a.secret_id_file, mount=a.mount)
        return VaultTransit(spec.key, spec.address, auth, spec.mount, spec.namespace, spec.ca_file,
                            spec.timeout_s, environ)
    if spec.source == "aws":
        from .aws import AwsKms
        return AwsKms(spec.key, spec.region, spec.endpoint_url, spec.timeout_s)
    raise ValueError(f"not a KMS key source: {spec.source!r}")


def decorate(kms: Kms) -> Kms:
    """The standard stack: cache (outermost: a hit calls nothing) → retries and circuit breaker →
    instrumentation (innermost: every attempt is counted) → provider."""
    return CachingKms(ResilientKms(InstrumentedKms(kms)))


def kms_for(spec, environ: Mapping[str, str]) -> Kms:
    """The process's decorated client for the KMS and KEK of ``spec`` (memoized on the spec's
    connection settings and a digest of ``environ``, which holds the credentials)."""
    conn = spec.model_dump(exclude={"store", "current", "size"})
    env_digest = hashlib.sha256(repr(sorted(environ.items())).encode()).digest()
    k = (repr(sorted(conn.items())), env_digest)
    with _lock:
        if k not in _clients:
            _clients[k] = decorate(provider_for(spec, environ))
        return _clients[k]


def reset() -> None:
    """Forget every client (and so their cached DEKs and breaker states)."""
    with _lock:
        _clients.clear()
