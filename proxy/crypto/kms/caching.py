"""Caching decorator: unwrapped DEKs kept in memory for a bounded time and count.

A hit needs no KMS call, so a worker keeps unwrapping DEKs it has seen (a policy reload, a
reveal) while the KMS is briefly away. Entries are keyed by SHA-256 of the wrapped DEK and hold
the DEK as a :class:`~proxy.crypto.keys.SecretKey` (``repr`` shows a count, never bytes). An entry
older than ``max_age_s`` is dropped and unwrapped again; past ``max_entries`` the least recently
used entry goes. Thread-safe.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Callable

from ..keys import SecretKey
from .base import Kms, KmsDecorator


class CachingKms(KmsDecorator):
    """``unwrap`` through a bounded LRU cache (``max_entries`` ≥ 1, ``max_age_s`` > 0 seconds,
    ``clock`` a monotonic clock in seconds). Other operations pass through."""

    def __init__(self, inner: Kms, max_entries: int = 1024, max_age_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic):
        if max_entries < 1 or max_age_s <= 0:
            raise ValueError("max_entries must be >= 1 and max_age_s > 0")
        super().__init__(inner)
        self.max_entries, self.max_age_s, self._clock = max_entries, max_age_s, clock
        self._entries: OrderedDict[bytes, tuple[float, SecretKey]] = OrderedDict()
        self._lock = threading.Lock()

    def unwrap(self, wrapped: bytes) -> bytes:
        k = hashlib.sha256(wrapped).digest()
        now = self._clock()
        with self._lock:
            hit = self._entries.get(k)
            if hit is not None and now - hit[0] < self.max_age_s:
                self._entries.move_to_end(k)
                return hit[1].material
            self._entries.pop(k, None)
        dek = self._run("unwrap", lambda: self.inner.unwrap(wrapped))
        with self._lock:
            self._entries[k] = (now, SecretKey(self.kek, dek))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return dek

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every cached DEK."""
        with self._lock:
            self._entries.clear()

    def __repr__(self) -> str:
        return f"CachingKms({self.inner!r}, entries={len(self._entries)}, max_entries={self.max_entries})"
