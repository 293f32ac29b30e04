"""AES-GCM envelope for dead-letter payloads (NIST SP 800-38D).

Envelope format, version 1::

    blob = b"\\x01" || nonce (12 bytes) || ciphertext || tag (16 bytes)

* AES-GCM as specified in NIST SP 800-38D (GCM-AE / GCM-AD, section 7), with the
  ``cryptography`` package's ``AESGCM`` (AES-128/192/256 keys).
* 96-bit IV, the length recommended by SP 800-38D section 5.2.1.1, built with the
  RBG-based construction of section 8.2.2: 12 fresh bytes from ``os.urandom`` per
  message.  Section 8.3 limits RBG-based IVs to 2**32 invocations per key; rotate
  the dead-letter key well before that.
* 128-bit authentication tag (section 5.2.1.2).
* ``aad`` (additional authenticated data, e.g. topic/partition/offset) is
  authenticated but not stored in the blob: the same bytes must be supplied to
  :func:`open_`.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DecryptionError", "NONCE_LEN", "TAG_LEN", "VERSION", "open_", "seal", "seal_deterministic"]

#: Envelope format version byte.
VERSION = 1
#: IV length in bytes (96 bits, NIST SP 800-38D section 5.2.1.1).
NONCE_LEN = 12
#: GCM tag length in bytes (128 bits).
TAG_LEN = 16
_HEADER = bytes((VERSION,))


class DecryptionError(ValueError):
    """The envelope cannot be opened: tampered, wrong key/AAD, truncated or unknown version."""


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError("key must be bytes")
    if len(key) not in (16, 24, 32):
        raise ValueError(f"AES key must be 16, 24 or 32 bytes, got {len(key)} bytes")


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` (NIST SP 800-38D, GCM-AE).

    Args:
        key: AES key, 16/24/32 bytes.
        plaintext: payload bytes (any length, including empty).
        aad: additional authenticated data (not encrypted, not stored).

    Returns:
        ``b"\\x01" + nonce(12) + ciphertext + tag(16)``, i.e. ``len(plaintext) + 29``
        bytes.

    Raises:
        TypeError: key is not bytes.
        ValueError: key length is not 16, 24 or 32 bytes.
    """
    _check_key(key)
    nonce = os.urandom(NONCE_LEN)  # SP 800-38D 8.2.2 RBG-based IV
    return _HEADER + nonce + AESGCM(bytes(key)).encrypt(nonce, plaintext, aad)


def seal_deterministic(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Like :func:`seal`, but with a synthetic IV, so equal ``(key, plaintext, aad)`` give equal bytes.

    IV = first 12 bytes of HMAC-SHA256(K', aad_len(8, big-endian) || aad || plaintext), with
    K' = HMAC-SHA256(key, "dpp-gcm-synthetic-iv-v1"). Two different (aad, plaintext) pairs get the
    same IV only with probability ~2**-96 per pair, which keeps GCM's uniqueness requirement
    (SP 800-38D section 8) in the same regime as random IVs (section 8.2.2); equal inputs give the
    same envelope, which is the point: redelivery after a crash writes byte-identical dead-letter
    records. It reveals only that two envelopes hold the same payload from the same coordinates.
    The envelope format is the one of :func:`seal`; :func:`open_` opens both.

    Raises ``TypeError``/``ValueError`` as :func:`seal`.
    """
    _check_key(key)
    sub = hmac.new(bytes(key), b"dpp-gcm-synthetic-iv-v1", hashlib.sha256).digest()
    mac = hmac.new(sub, len(aad).to_bytes(8, "big") + aad, hashlib.sha256)
    mac.update(plaintext)
    nonce = mac.digest()[:NONCE_LEN]
    return _HEADER + nonce + AESGCM(bytes(key)).encrypt(nonce, plaintext, aad)


def open_(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Verify and decrypt an envelope made by :func:`seal` (NIST SP 800-38D, GCM-AD).

    Args:
        key: the AES key used by :func:`seal`.
        blob: the envelope bytes.
        aad: the same additional authenticated data given to :func:`seal`.

    Returns:
        The plaintext bytes.

    Raises:
        DecryptionError: unknown version byte, truncated blob, or authentication
            failure (tampered blob, wrong key or wrong AAD).  The message never
            includes payload bytes.
        TypeError: key is not bytes.
        ValueError: key length is not 16, 24 or 32 bytes.
    """
    _check_key(key)
    blob = bytes(blob)
    if len(blob) < 1 + NONCE_LEN + TAG_LEN:
        raise DecryptionError(f"envelope too short ({len(blob)} bytes)")
    if blob[0] != VERSION:
        raise DecryptionError(f"unsupported envelope version {blob[0]}")
    nonce = blob[1:1 + NONCE_LEN]
    try:
        return AESGCM(bytes(key)).decrypt(nonce, blob[1 + NONCE_LEN:], aad)
    except InvalidTag:
        raise DecryptionError("authentication failed (tampered envelope, wrong key or wrong AAD)") from None
