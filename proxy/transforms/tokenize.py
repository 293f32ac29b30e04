"""``tokenize``: deterministic, reversible tokens for arbitrary strings, where format need not be kept.

Token = ``prefix`` + lower-case unpadded base32 (RFC 4648) of ``version (1 byte) || AES-SIV(value)``.
AES-SIV (RFC 5297, deterministic authenticated encryption) under a 512-bit key derived from the
policy key with HKDF-SHA256 (RFC 5869, info ``dpp-token-aes-siv-v1``); associated data is the rule's
binding (``domain:<name>`` or ``field:<policy>:<path>``), so a token only reveals in the field or
domain it was made for. Same value, key and binding → same token (joinable); the key version
inside the token lets re-identification pick the right key after a rotation.
A token is ``len(prefix) + ceil((17 + len(utf8 value)) * 8 / 5)`` characters long.
"""
from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import Reason, TransformError
from .base import BuildContext, TextTransform


def _siv_key(material: bytes) -> AESSIV:
    return AESSIV(HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"dpp-token-aes-siv-v1").derive(material))


class Tokenize(TextTransform):
    """AES-SIV token (see module doc). ``reverse`` returns the original string."""

    action = "tokenize"
    reversible = True

    def __init__(self, rule, ctx: BuildContext):
        super().__init__(rule, ctx)
        ring = ctx.keyring(rule.key)
        if ring.current > 255:
            raise ValueError("token key versions must be <= 255")
        self.key_name = rule.key
        self.prefix = rule.prefix
        self._ad = [ctx.binding(rule).encode()]
        self._sivs = {v: _siv_key(k.material) for v, k in ring.versions.items()}
        self._current = ring.current
        self._enc = self._sivs[ring.current]
        self._vbyte = bytes((ring.current,))
        self.native_key = ring.versions[ring.current]
        """The current policy key (a :class:`SecretKey`): proxy._native derives the same AES-SIV
        key from it in C (HKDF-SHA256, ``dpp-token-aes-siv-v1``), so that key never is a Python object."""

    def apply_text(self, text: str) -> str:
        ct = self._enc.encrypt(text.encode("utf-8", "surrogatepass"), self._ad)
        return self.prefix + base64.b32encode(self._vbyte + ct).decode().rstrip("=").lower()

    def reverse_text(self, text: str, version: int | None = None) -> str:
        if not text.startswith(self.prefix):
            raise TransformError(Reason.TOKEN_INVALID, "missing token prefix")
        body = text[len(self.prefix):].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            raise TransformError(Reason.TOKEN_INVALID, "not base32") from None
        if len(raw) < 17:
            raise TransformError(Reason.TOKEN_INVALID, "too short")
        siv = self._sivs.get(raw[0])
        if siv is None:
            raise TransformError(Reason.KEY_UNAVAILABLE, f"key {self.key_name!r} has no version {raw[0]}")
        try:
            return siv.decrypt(raw[1:], self._ad).decode("utf-8", "surrogatepass")
        except InvalidTag:
            raise TransformError(Reason.TOKEN_INVALID, "authentication failed (wrong key, field or domain)") from None
