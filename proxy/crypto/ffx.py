"""Legacy ``algorithm: ffx`` adapter over the ``pyffx`` package.

**This is NOT a NIST algorithm.**  ``pyffx`` (version 0.3.0) implements an FFX-style
Feistel network with an HMAC-SHA1 round function and per-digit modular addition; it
is neither FF1 nor FF3-1 of NIST SP 800-38G Rev.1, has no tweak, and applies no
minimum-domain-size guard.  It exists only so that data already tokenised with
``pyffx`` by earlier deployments can still be decrypted (and matched) after
migration.  New policies should use ``algorithm: ff1`` (:mod:`proxy.crypto.ff1`).

Output is bit-for-bit identical to
``pyffx.String(key, alphabet=alphabet, length=len(text)).encrypt(text)``.
"""

from __future__ import annotations

import pyffx

__all__ = ["LegacyFFX"]

_MAX_CACHED_LENGTHS = 256


class LegacyFFX:
    """pyffx-compatible format-preserving cipher (legacy; not NIST SP 800-38G).

    Args:
        key: HMAC key bytes (any non-empty length, as pyffx accepts).  Never shown
            by ``repr()`` and instances refuse to pickle.
        alphabet: the symbols, ``alphabet[i]`` is digit ``i``; at least 2 unique
            characters.

    Raises:
        TypeError: key is not bytes-like or alphabet is not a str.
        ValueError: empty key, fewer than 2 or duplicate alphabet characters.

    One ``pyffx.String`` codec is cached per text length, so every length keeps
    its own fixed-width encoding and leading "zero" symbols survive.
    """

    __slots__ = ("radix", "alphabet", "_ffx", "_codecs", "_charset")

    def __init__(self, key: bytes, alphabet: str) -> None:
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError("key must be bytes")
        if not key:
            raise ValueError("key must not be empty")
        if not isinstance(alphabet, str):
            raise TypeError("alphabet must be a str")
        if len(alphabet) < 2:
            raise ValueError("alphabet must have at least 2 characters")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("alphabet characters must be unique")
        self.radix = len(alphabet)
        self.alphabet = alphabet
        # One FFX (HMAC key holder) shared by every per-length codec; equivalent to
        # pyffx.String(key, ...) which wraps the key in FFX(key) itself.
        self._ffx = pyffx.FFX(bytes(key))
        self._codecs: dict[int, pyffx.String] = {}
        self._charset = frozenset(alphabet)

    def __repr__(self) -> str:
        return f"LegacyFFX(radix={self.radix})"

    def __reduce__(self):  # never pickle key material
        raise TypeError("LegacyFFX instances cannot be pickled")

    def _codec(self, text: str) -> pyffx.String:
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        if not self._charset.issuperset(text):
            # pyffx's own message would echo the character; report the position only.
            for pos, ch in enumerate(text):
                if ch not in self._charset:
                    raise ValueError(
                        f"character at position {pos} is not in the alphabet (radix {self.radix})"
                    )
        n = len(text)
        codec = self._codecs.get(n)
        if codec is None:
            if len(self._codecs) >= _MAX_CACHED_LENGTHS:
                self._codecs.clear()
            codec = self._codecs[n] = pyffx.String(self._ffx, alphabet=self.alphabet, length=n)
        return codec

    def encrypt(self, text: str) -> str:
        """Encrypt ``text`` (symbols of ``alphabet``); returns a same-length string.

        Raises:
            ValueError: a character is not in the alphabet (message names its
                position only, never the value).
            TypeError: text is not a str.
        """
        return self._codec(text).encrypt(text)

    def decrypt(self, text: str) -> str:
        """Inverse of :meth:`encrypt`; same shapes and errors."""
        return self._codec(text).decrypt(text)
