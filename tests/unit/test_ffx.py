"""Unit tests for proxy.crypto.ffx (legacy pyffx adapter, not NIST)."""

from __future__ import annotations

import pickle
import random

import pyffx
import pytest

from proxy.crypto.ffx import LegacyFFX

KEY = b"legacy-secret-key"
DIGITS = "0123456789"


@pytest.mark.parametrize("length", [1, 2, 6, 11, 16, 18, 40])
def test_round_trip(length):
    ffx = LegacyFFX(KEY, DIGITS)
    rng = random.Random(length)
    for _ in range(20):
        text = "".join(rng.choice(DIGITS) for _ in range(length))
        ct = ffx.encrypt(text)
        assert len(ct) == length and set(ct) <= set(DIGITS)
        assert ffx.decrypt(ct) == text


def test_leading_zeros_kept():
    ffx = LegacyFFX(KEY, DIGITS)
    for text in ("0000000000", "0000000001", "007", "0123456789"):
        ct = ffx.encrypt(text)
        assert len(ct) == len(text)
        assert ffx.decrypt(ct) == text
    # same integer value, different widths -> independent codecs
    assert len(ffx.encrypt("0042")) == 4 and len(ffx.encrypt("42")) == 2


@pytest.mark.parametrize(
    "alphabet,text",
    [
        (DIGITS, "4111111111111111"),
        (DIGITS, "0000123"),
        ("abcdefghijklmnopqrstuvwxyz", "helloworld"),
        ("0123456789ABCDEF", "00DEADBEEF"),
    ],
)
def test_output_equals_direct_pyffx(alphabet, text):
    ffx = LegacyFFX(KEY, alphabet)
    direct = pyffx.String(KEY, alphabet=alphabet, length=len(text))
    assert ffx.encrypt(text) == direct.encrypt(text)
    assert ffx.decrypt(text) == direct.decrypt(text)


def test_output_equals_pyffx_integer_for_digits():
    ffx = LegacyFFX(KEY, DIGITS)
    codec = pyffx.Integer(KEY, length=16)
    value = 4111111111111111
    assert int(ffx.encrypt(str(value))) == codec.encrypt(value)


def test_deterministic_and_key_dependent():
    a = LegacyFFX(KEY, DIGITS)
    b = LegacyFFX(KEY, DIGITS)
    c = LegacyFFX(b"another-key", DIGITS)
    text = "4111111111111111"
    assert a.encrypt(text) == b.encrypt(text)
    assert a.encrypt(text) != c.encrypt(text)


def test_key_not_in_repr_and_not_picklable():
    ffx = LegacyFFX(KEY, DIGITS)
    for text in (repr(ffx), str(ffx)):
        assert text == "LegacyFFX(radix=10)"
        assert "legacy-secret" not in text and KEY.hex() not in text
    with pytest.raises(TypeError):
        pickle.dumps(ffx)


def test_bad_character_message_names_position_only():
    ffx = LegacyFFX(KEY, DIGITS)
    with pytest.raises(ValueError) as exc:
        ffx.encrypt("41111#1111")
    msg = str(exc.value)
    assert msg == "character at position 5 is not in the alphabet (radix 10)"
    with pytest.raises(ValueError):
        ffx.decrypt("12a4")


@pytest.mark.parametrize("alphabet", ["", "0", "0012"])
def test_bad_alphabet(alphabet):
    with pytest.raises(ValueError):
        LegacyFFX(KEY, alphabet)


def test_bad_key():
    with pytest.raises(ValueError):
        LegacyFFX(b"", DIGITS)
    with pytest.raises(TypeError):
        LegacyFFX("text-key", DIGITS)  # type: ignore[arg-type]
