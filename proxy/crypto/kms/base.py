"""The key-management-service interface: one key-encryption key (KEK) that lives in a KMS and
wraps data-encryption keys (DEKs) that dpp keeps, wrapped, in a key store (:mod:`.store`).

A :class:`Kms` speaks to one KEK. Providers (:mod:`.vault`, :mod:`.aws`) implement the four
operations; decorators (:mod:`.caching`, :mod:`.resilience`, :mod:`.instrumentation`) wrap any
``Kms`` and keep the same interface.

Errors: :class:`proxy.errors.KmsUnavailable` (unreachable, timeout, throttled, server error:
transient) and :class:`proxy.errors.KmsRefused` (denied, unknown key, undecryptable ciphertext:
permanent). Their messages name the provider, the operation and the KEK, never key material; no
object here shows a DEK in ``repr``/``str``.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from ..keys import SecretKey


@dataclass(frozen=True)
class Wrapped:
    """A DEK as the KMS encrypted it: ``ciphertext`` (provider-specific bytes, not secret, safe to
    store) and ``kek_version`` (the KEK version that wrapped it, 1-based). ``repr`` shows the
    version and the ciphertext length only."""

    ciphertext: bytes
    kek_version: int

    def __repr__(self) -> str:
        return f"Wrapped(kek_version={self.kek_version}, bytes={len(self.ciphertext)})"


class Kms(ABC):
    """One KEK in one KMS. ``provider`` is a bounded name (``vault``, ``aws``) used in metric labels;
    ``kek`` is the KEK's name in the KMS (a Vault Transit key name, an AWS key id, ARN or alias)."""

    provider: ClassVar[str] = "kms"

    def __init__(self, kek: str):
        self.kek = kek

    @abstractmethod
    def wrap(self, dek: bytes) -> Wrapped:
        """Encrypt ``dek`` under the newest KEK version."""

    @abstractmethod
    def unwrap(self, wrapped: bytes) -> bytes:
        """Decrypt a ciphertext from :meth:`wrap` (any KEK version the KMS still holds)."""

    @abstractmethod
    def describe_key(self) -> int:
        """The newest KEK version (1-based)."""

    def generate_data_key(self, size: int = 32) -> tuple[SecretKey, Wrapped]:
        """A new random DEK of ``size`` bytes and its wrapped form. The default draws the DEK from
        the OS CSPRNG and wraps it; providers with a native data-key call override this."""
        dek = os.urandom(size)
        return SecretKey(self.kek, dek), self.wrap(dek)

    def rewrap(self, wrapped: bytes) -> Wrapped:
        """Re-encrypt a ciphertext under the newest KEK version (same DEK). Default: unwrap, wrap."""
        return self.wrap(self.unwrap(wrapped))

    def where(self, operation: str) -> str:
        """``"<provider> <operation> (kek <name>)"`` for error messages."""
        return f"{self.provider} {operation} (kek {self.kek!r})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kek={self.kek!r})"


class KmsDecorator(Kms):
    """A :class:`Kms` that delegates to ``inner`` (same provider and KEK). Every operation goes
    through :meth:`_run`, which decorators override to act around all calls; they override an
    operation itself only to change it."""

    def __init__(self, inner: Kms):
        super().__init__(inner.kek)
        self.inner = inner

    @property
    def provider(self) -> str:  # type: ignore[override]
        return self.inner.provider

    def _run(self, operation: str, fn):
        """Call ``fn()`` (the inner operation named ``operation``); decorators add to this."""
        return fn()

    def wrap(self, dek: bytes) -> Wrapped:
        return self._run("wrap", lambda: self.inner.wrap(dek))

    def unwrap(self, wrapped: bytes) -> bytes:
        return self._run("unwrap", lambda: self.inner.unwrap(wrapped))

    def describe_key(self) -> int:
        return self._run("describe", self.inner.describe_key)

    def generate_data_key(self, size: int = 32) -> tuple[SecretKey, Wrapped]:
        return self._run("generate", lambda: self.inner.generate_data_key(size))

    def rewrap(self, wrapped: bytes) -> Wrapped:
        return self._run("rewrap", lambda: self.inner.rewrap(wrapped))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"
