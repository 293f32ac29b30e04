"""``pseudonymize``: keyed HMAC-SHA256 (RFC 2104, FIPS 198-1) over a canonical form of the value.

One-way: the same value, key and binding always give the same pseudonym (joinable), and nothing
but a brute-force guess with the key can link a pseudonym back to the value.

Message authenticated: ``b"dpp-pseudonym-v1" 0x00 <binding> 0x00 <canonical value, UTF-8>`` where
``binding`` is ``domain:<name>`` for rules with a shared domain, else ``field:<policy>:<field path>``.

Canonical forms (``normalize``):

* ``none``   – the text as is;
* ``string`` – Unicode NFC;
* ``email``  – NFC, surrounding whitespace removed, lower-cased;
* ``phone``  – E.164 (``+8613900001111``) through the ``phonenumbers`` library, numbers without a
  country code read in ``default_region``; unparseable text fails closed (``normalize-failed``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata

import phonenumbers

from ..errors import Reason, TransformError
from .base import BuildContext, TextTransform


def canonical(text: str, normalize: str, default_region: str = "CN") -> str:
    """Canonical form of ``text`` for pseudonymization (see module doc).

    Raises :class:`TransformError` (``normalize-failed``) when a phone number cannot be parsed.
    """
    if normalize == "none":
        return text
    if normalize == "string":
        return unicodedata.normalize("NFC", text)
    if normalize == "email":
        return unicodedata.normalize("NFC", text).strip().lower()
    if normalize == "phone":
        try:
            num = phonenumbers.parse(text, default_region)
        except phonenumbers.NumberParseException:
            raise TransformError(Reason.NORMALIZE_FAILED, "not a phone number") from None
        if not phonenumbers.is_possible_number(num):
            raise TransformError(Reason.NORMALIZE_FAILED, "not a possible phone number")
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    raise ValueError(f"unknown normalize mode {normalize!r}")


def encode_digest(digest: bytes, encoding: str) -> str:
    """Digest as text: ``hex`` (lower), ``base32`` (RFC 4648, lower, unpadded), ``base64url`` (unpadded)."""
    if encoding == "hex":
        return digest.hex()
    if encoding == "base32":
        return base64.b32encode(digest).decode().rstrip("=").lower()
    if encoding == "base64url":
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
    raise ValueError(f"unknown encoding {encoding!r}")


class Pseudonymize(TextTransform):
    """HMAC-SHA256 pseudonym; output ``prefix + encode(digest)[:length]``."""

    action = "pseudonymize"

    def __init__(self, rule, ctx: BuildContext):
        super().__init__(rule, ctx)
        key = ctx.keys[rule.key].material
        prefix = b"dpp-pseudonym-v1\x00" + ctx.binding(rule).encode() + b"\x00"
        self._mac = hmac.new(key, prefix, hashlib.sha256)  # copied per value: key schedule + prefix done once
        self.normalize = rule.normalize
        self.region = rule.default_region
        self.encoding = rule.encoding
        self.length = rule.length
        self.prefix = rule.prefix

    def apply_text(self, text: str) -> str:
        m = self._mac.copy()
        m.update(canonical(text, self.normalize, self.region).encode("utf-8", "surrogatepass"))
        out = encode_digest(m.digest(), self.encoding)
        if self.length:
            out = out[: self.length]
        return self.prefix + out
