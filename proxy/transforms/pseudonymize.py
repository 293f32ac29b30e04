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
from functools import lru_cache
from typing import Any, Callable

import phonenumbers

from ..errors import Reason, TransformError
from .base import BuildContext, TextTransform, as_text


def canonical(text: str, normalize: str, default_region: str = "CN") -> str:
    """Canonical form of ``text`` for pseudonymization (see module doc).

    Raises :class:`TransformError` (``normalize-failed``) when a phone number cannot be parsed.
    """
    if normalize == "none":
        return text
    if normalize == "string":  # ASCII text is already in NFC
        return text if text.isascii() else unicodedata.normalize("NFC", text)
    if normalize == "email":
        return (text if text.isascii() else unicodedata.normalize("NFC", text)).strip().lower()
    if normalize == "phone":
        return _e164(text, default_region)
    raise ValueError(f"unknown normalize mode {normalize!r}")


@lru_cache(maxsize=65536)
def _e164(text: str, region: str) -> str:
    """E.164 form of a phone number (libphonenumber, ~35 µs a parse): cached for the last 65,536
    distinct numbers, since keyed topics carry the same number (a record key, a header) over and
    over. Deterministic, so the cache changes no output; failures are not cached."""
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise TransformError(Reason.NORMALIZE_FAILED, "not a phone number") from None
    if not phonenumbers.is_possible_number(num):
        raise TransformError(Reason.NORMALIZE_FAILED, "not a possible phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


_B32_PAIRS = tuple(a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567")
"""Two base32 characters (RFC 4648 alphabet, lower case) per 10-bit value: ``_B32_PAIRS[v]``."""


def _base32(digest: bytes, length: int | None = None) -> str:
    """RFC 4648 base32 of ``digest``, lower case, unpadded, cut to ``length`` characters: the
    same text as ``base64.b32encode(digest).decode().rstrip("=").lower()[:length]`` (a unit test
    compares them), through :func:`base32_encoder` (the standard library's pure-Python encoder
    costs several µs per digest on the record path)."""
    return base32_encoder(len(digest), length)(digest)


@lru_cache(maxsize=None)  # one per (digest size, length): a handful per process
def base32_encoder(size: int, length: int | None) -> Callable[[bytes], str]:
    """A function ``digest -> base32 text`` (as :func:`_base32`) for digests of ``size`` bytes,
    computing only the characters needed, 10 bits at a time with the shifts unrolled for that
    size and length. The generated source holds only integers computed here."""
    total = -(-size * 8 // 5)
    n = total if not length or length > total else length
    bits = -(-n // 2) * 10
    nbytes = min(-(-bits // 8), size)
    have = nbytes * 8
    fix = f" << {bits - have}" if have < bits else (f" >> {have - bits}" if have > bits else "")
    terms = " + ".join(f"P[(v >> {s}) & 1023]" if s else "P[v & 1023]" for s in range(bits - 10, -1, -10))
    cut = "" if n == bits // 5 else f"[:{n}]"
    src = (f"def b32(d):\n    v = from_bytes(d[:{nbytes}], 'big'){fix}\n"
           f"    return ({terms or repr('')}){cut}\n")
    ns = {"P": _B32_PAIRS, "from_bytes": int.from_bytes}
    exec(compile(src, f"<base32 encoder {size}/{length}>", "exec"), ns)  # noqa: S102 - integers only
    return ns["b32"]


def encode_digest(digest: bytes, encoding: str, length: int | None = None) -> str:
    """Digest as text: ``hex`` (lower), ``base32`` (RFC 4648, lower, unpadded), ``base64url`` (unpadded);
    cut to the first ``length`` characters when ``length`` is given."""
    if encoding == "base32":
        return _base32(digest, length)
    out = _encode_full(digest, encoding)
    return out[:length] if length else out


def _encode_full(digest: bytes, encoding: str) -> str:
    if encoding == "hex":
        return digest.hex()
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
        mac = hmac.new(key, prefix, hashlib.sha256)  # copied per value: key schedule + prefix done once
        self._native_key = (key, prefix)  # for proxy._native's HMAC (same construction); never printed
        # the OpenSSL HMAC object under hmac.HMAC when there is one: same copy/update/digest, without
        # the pure-Python wrapper's per-call overhead
        self._mac = getattr(mac, "_hmac", None) or mac
        self.normalize = rule.normalize
        self.region = rule.default_region
        self.encoding = rule.encoding
        self.length = rule.length
        self.prefix = rule.prefix

        self._pseudonym = self._build()

    def _build(self) -> Callable[[Any], Any]:
        """The one closure both paths use: canonical form, HMAC, and the encoding (base32 through
        an encoder specialized for the length, :func:`base32_encoder`)."""
        mac, prefix, normalize, region, length = self._mac, self.prefix, self.normalize, self.region, self.length
        if self.encoding == "base32":
            encode = base32_encoder(mac.digest_size, length)
        else:
            encoding = self.encoding

            def encode(digest: bytes) -> str:
                return encode_digest(digest, encoding, length)

        def pseudonym(value: Any) -> Any:
            if type(value) is not str:
                if value is None:
                    return None
                value = as_text(value)
            if normalize != "none":
                value = canonical(value, normalize, region)
            m = mac.copy()
            m.update(value.encode("utf-8", "surrogatepass"))
            return prefix + encode(m.digest())
        return pseudonym

    def apply_text(self, text: str) -> str:
        return self._pseudonym(text)

    def compile_apply(self) -> Callable[[Any], Any]:
        return self._pseudonym
