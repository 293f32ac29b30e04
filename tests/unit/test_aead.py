"""Unit tests for proxy.crypto.aead (AES-GCM dead-letter envelope, NIST SP 800-38D)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from proxy.crypto.aead import NONCE_LEN, TAG_LEN, VERSION, DecryptionError, open_, seal

KEY = bytes(range(32))
AAD = b"topic=payments|partition=3|offset=42"


@pytest.mark.parametrize("key_len", [16, 24, 32])
@pytest.mark.parametrize("plaintext", [b"", b"x", b'{"card":"4111111111111111"}', os.urandom(5000)])
def test_round_trip(key_len, plaintext):
    key = os.urandom(key_len)
    blob = seal(key, plaintext, AAD)
    assert open_(key, blob, AAD) == plaintext


def test_envelope_layout():
    plaintext = b"hello dead letter"
    blob = seal(KEY, plaintext, AAD)
    assert VERSION == 1 and blob[0] == 1
    assert len(blob) == 1 + NONCE_LEN + len(plaintext) + TAG_LEN
    nonce, body = blob[1:13], blob[13:]
    # interoperable with a plain AES-GCM decrypt (NIST SP 800-38D GCM-AD)
    assert AESGCM(KEY).decrypt(nonce, body, AAD) == plaintext
    assert plaintext not in blob


def test_nonces_are_fresh():
    blobs = {seal(KEY, b"same", AAD) for _ in range(200)}
    assert len(blobs) == 200
    assert len({b[1:13] for b in blobs}) == 200


def test_tampering_any_byte_is_detected():
    blob = seal(KEY, b"payload bytes", AAD)
    for i in range(len(blob)):
        forged = bytearray(blob)
        forged[i] ^= 0x01
        with pytest.raises(DecryptionError):
            open_(KEY, bytes(forged), AAD)


def test_wrong_key_and_wrong_aad():
    blob = seal(KEY, b"payload", AAD)
    with pytest.raises(DecryptionError):
        open_(bytes(32), blob, AAD)
    with pytest.raises(DecryptionError):
        open_(KEY, blob, AAD + b"x")
    with pytest.raises(DecryptionError):
        open_(KEY, blob, b"")


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version(version):
    blob = seal(KEY, b"payload", AAD)
    with pytest.raises(DecryptionError, match="version"):
        open_(KEY, bytes([version]) + blob[1:], AAD)


@pytest.mark.parametrize("length", [0, 1, 12, 28])
def test_truncated(length):
    blob = seal(KEY, b"", AAD)
    with pytest.raises(DecryptionError):
        open_(KEY, blob[:length], AAD)


def test_errors_do_not_leak_payload():
    secret = b"4111111111111111"
    blob = seal(KEY, secret, AAD)
    with pytest.raises(DecryptionError) as exc:
        open_(bytes(32), blob, AAD)
    assert secret.decode() not in str(exc.value)
    assert issubclass(DecryptionError, ValueError)


@pytest.mark.parametrize("key_len", [0, 15, 17, 64])
def test_bad_key_length(key_len):
    with pytest.raises(ValueError):
        seal(b"k" * key_len, b"x", AAD)
    with pytest.raises(ValueError):
        open_(b"k" * key_len, b"\x01" + bytes(40), AAD)
