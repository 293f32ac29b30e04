"""Unit tests for proxy.crypto.ff1 (NIST SP 800-38G Rev.1 FF1)."""

from __future__ import annotations

import json
import pickle
import random
import threading
from pathlib import Path

import pytest

from proxy.crypto.ff1 import FF1, FF1DomainError, max_length, min_length

VECTOR_FILE = "ff1_nist_sp800_38g.json"
DIGITS = "0123456789"
KEY128 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")


def _vector_path() -> Path:
    """In-repo copy first (works from any clone), then ../shared/test-vectors beside the repo."""
    here = Path(__file__).resolve()
    candidates = [
        here.parents[1] / "data" / VECTOR_FILE,
        here.parents[3] / "shared" / "test-vectors" / VECTOR_FILE,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{VECTOR_FILE} not found in {[str(c) for c in candidates]}")


VECTORS = json.loads(_vector_path().read_text(encoding="utf-8"))["vectors"]


def _cipher(vec) -> tuple[FF1, bytes]:
    return FF1(bytes.fromhex(vec["key_hex"]), vec["alphabet"]), bytes.fromhex(vec["tweak_hex"])


def test_vector_file_is_complete():
    assert len(VECTORS) == 9
    assert sorted(len(bytes.fromhex(v["key_hex"])) for v in VECTORS) == [16] * 3 + [24] * 3 + [32] * 3
    for v in VECTORS:
        assert len(v["alphabet"]) == v["radix"]


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_nist_encrypt(vec):
    ff1, tweak = _cipher(vec)
    assert ff1.encrypt(vec["plaintext"], tweak) == vec["ciphertext"]


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_nist_decrypt(vec):
    ff1, tweak = _cipher(vec)
    assert ff1.decrypt(vec["ciphertext"], tweak) == vec["plaintext"]


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_nist_batch(vec):
    ff1, tweak = _cipher(vec)
    assert ff1.encrypt_many([vec["plaintext"]] * 3, tweak) == [vec["ciphertext"]] * 3
    assert ff1.decrypt_many([vec["ciphertext"]], tweak) == [vec["plaintext"]]


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_nist_with_non_canonical_alphabet_symbols(vec):
    """Renaming the symbols (uppercase) must not change the underlying numerals."""
    upper = vec["alphabet"].upper()
    ff1 = FF1(bytes.fromhex(vec["key_hex"]), upper)
    tweak = bytes.fromhex(vec["tweak_hex"])
    assert ff1.encrypt(vec["plaintext"].upper(), tweak) == vec["ciphertext"].upper()
    assert ff1.decrypt_many([vec["ciphertext"].upper()], tweak) == [vec["plaintext"].upper()]


@pytest.mark.parametrize(
    "radix,expected",
    [(2, 20), (3, 13), (8, 7), (10, 6), (16, 5), (26, 5), (36, 4), (62, 4), (100, 3),
     (101, 3), (999, 3), (1000, 2), (3000, 2), (65536, 2)],
)
def test_min_length(radix, expected):
    assert min_length(radix) == expected
    assert radix**expected >= 1_000_000 > radix ** (expected - 1)


@pytest.mark.parametrize(
    "radix,expected",
    [(2, 192), (4, 96), (10, 56), (16, 48), (36, 36), (256, 24), (3000, 16), (65536, 12)],
)
def test_max_length(radix, expected):
    assert max_length(radix) == expected
    k = expected // 2
    assert radix**k <= 2**96 < radix ** (k + 1)


@pytest.mark.parametrize("radix", [0, 1, 65537])
def test_radix_out_of_range(radix):
    with pytest.raises(ValueError):
        min_length(radix)
    with pytest.raises(ValueError):
        max_length(radix)


def test_domain_guard_rejects_5_digits_accepts_6():
    ff1 = FF1(KEY128, DIGITS)
    with pytest.raises(FF1DomainError):
        ff1.encrypt("12345")
    with pytest.raises(FF1DomainError):
        ff1.decrypt("12345")
    with pytest.raises(FF1DomainError):
        ff1.encrypt_many(["123456", "12345"])
    out = ff1.encrypt("123456")
    assert len(out) == 6 and out.isdigit()
    assert ff1.decrypt(out) == "123456"


def test_domain_guard_max_length():
    ff1 = FF1(KEY128, DIGITS)
    ok = "7" * 56
    assert ff1.decrypt(ff1.encrypt(ok)) == ok
    with pytest.raises(FF1DomainError):
        ff1.encrypt("7" * 57)
    with pytest.raises(FF1DomainError):
        ff1.encrypt("")


def test_domain_error_is_value_error():
    assert issubclass(FF1DomainError, ValueError)


def test_error_messages_do_not_contain_the_value():
    ff1 = FF1(KEY128, DIGITS)
    short = "98765"
    with pytest.raises(FF1DomainError) as exc:
        ff1.encrypt(short)
    assert short not in str(exc.value)
    assert "5" in str(exc.value)  # the length is reported

    long_value = "4111111111111111" * 4
    with pytest.raises(FF1DomainError) as exc:
        ff1.encrypt(long_value)
    assert long_value[:16] not in str(exc.value)

    bad = "41111111111#1111"
    with pytest.raises(ValueError) as exc:
        ff1.encrypt(bad)
    msg = str(exc.value)
    assert "#" not in msg and bad not in msg and "1111" not in msg
    assert "position 11" in msg

    with pytest.raises(ValueError) as exc:
        ff1.encrypt_many(["4111111111111111", bad])
    msg = str(exc.value)
    assert "#" not in msg and bad not in msg
    assert "texts[1]" in msg and "position 11" in msg


def test_non_ascii_digits_rejected():
    ff1 = FF1(KEY128, DIGITS)
    for bad in ("١٢٣٤٥٦٧", "12345\u00b2", "123_456", " 123456", "+123456", "12345\u0666"):
        with pytest.raises(ValueError) as exc:
            ff1.encrypt(bad)
        assert bad not in str(exc.value)


def test_bad_char_generic_alphabets():
    for alphabet in ("abcdefghijklmnopqrstuvwxyz", "".join(chr(0x4E00 + i) for i in range(500))):
        ff1 = FF1(KEY128, alphabet)
        text = alphabet[:5] + "!" + alphabet[:5]
        with pytest.raises(ValueError) as exc:
            ff1.encrypt(text)
        assert "position 5" in str(exc.value) and "!" not in str(exc.value)


def test_key_not_in_repr_and_not_picklable():
    key = bytes(range(32))
    ff1 = FF1(key, DIGITS)
    for text in (repr(ff1), str(ff1)):
        assert text == "FF1(radix=10)"
        assert key.hex() not in text and repr(key) not in text
    with pytest.raises(TypeError):
        pickle.dumps(ff1)


@pytest.mark.parametrize("size", [0, 8, 15, 17, 31, 33, 64])
def test_bad_key_length(size):
    key = b"K" * size
    with pytest.raises(ValueError) as exc:
        FF1(key, DIGITS)
    assert "KK" not in str(exc.value) and "4b4b" not in str(exc.value)


@pytest.mark.parametrize("alphabet", ["0", "", "0120"])
def test_bad_alphabet(alphabet):
    with pytest.raises(ValueError):
        FF1(KEY128, alphabet)


def test_radix_and_attributes():
    ff1 = FF1(KEY128, "0123456789abcdef")
    assert ff1.radix == 16
    assert ff1.alphabet == "0123456789abcdef"
    assert (ff1.minlen, ff1.maxlen) == (5, 48)


def test_tweak_length_limit_and_types():
    ff1 = FF1(KEY128, DIGITS, max_tweak_len=8)
    ff1.encrypt("1234567890", b"\x00" * 8)
    with pytest.raises(ValueError):
        ff1.encrypt("1234567890", b"\x00" * 9)
    with pytest.raises(TypeError):
        ff1.encrypt("1234567890", "tweak")  # type: ignore[arg-type]
    ref = ff1.encrypt("1234567890", b"abc")
    assert ff1.encrypt("1234567890", bytearray(b"abc")) == ref
    assert ff1.encrypt("1234567890", memoryview(b"abc")) == ref


def test_determinism_across_instances():
    a = FF1(KEY128, DIGITS)
    b = FF1(KEY128, DIGITS)
    vals = ["4111111111111111", "0000000000000000", "5500000000000004"]
    assert [a.encrypt(v, b"t") for v in vals] == [b.encrypt(v, b"t") for v in vals]
    assert a.encrypt_many(vals, b"t") == a.encrypt_many(vals, b"t")


def test_different_tweaks_give_different_outputs():
    ff1 = FF1(KEY128, DIGITS)
    rng = random.Random(7)
    vals = ["".join(rng.choice(DIGITS) for _ in range(16)) for _ in range(50)]
    for t1, t2 in [(b"", b"a"), (b"topic-a", b"topic-b"), (b"x" * 20, b"x" * 19 + b"y")]:
        out1 = ff1.encrypt_many(vals, t1)
        out2 = ff1.encrypt_many(vals, t2)
        assert all(x != y for x, y in zip(out1, out2))


def test_different_keys_give_different_outputs():
    vals = ["4111111111111111", "1234567890"]
    a = FF1(KEY128, DIGITS).encrypt_many(vals)
    b = FF1(bytes(16), DIGITS).encrypt_many(vals)
    assert all(x != y for x, y in zip(a, b))


def test_leading_zeros_survive():
    ff1 = FF1(KEY128, DIGITS)
    for text in ("000000", "0000000000000001", "0012345678"):
        ct = ff1.encrypt(text)
        assert len(ct) == len(text)
        assert ff1.decrypt(ct) == text


def test_encrypt_many_mixed_lengths_and_empty():
    ff1 = FF1(KEY128, DIGITS)
    rng = random.Random(1)
    vals = ["".join(rng.choice(DIGITS) for _ in range(rng.randint(6, 56))) for _ in range(300)]
    tweak = b"mixed"
    expected = [ff1.encrypt(v, tweak) for v in vals]
    assert ff1.encrypt_many(vals, tweak) == expected
    assert ff1.encrypt_many(iter(vals), tweak) == expected
    assert ff1.decrypt_many(expected, tweak) == vals
    assert [ff1.decrypt(c, tweak) for c in expected] == vals
    assert ff1.encrypt_many([]) == []
    assert ff1.decrypt_many([]) == []


@pytest.mark.parametrize(
    "alphabet",
    [
        "01",
        "01234567",
        "0123456789abcdef",
        "0123456789ABCDEF",
        "abcdefghijklmnopqrstuvwxyz",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "".join(chr(0x4E00 + i) for i in range(3000)),
    ],
    ids=["radix2", "radix8", "hex", "HEX", "lower", "base62", "cjk3000"],
)
def test_batch_equals_single_per_alphabet(alphabet):
    ff1 = FF1(KEY128, alphabet)
    rng = random.Random(len(alphabet))
    lo, hi = min_length(len(alphabet)), max_length(len(alphabet))
    vals = ["".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi))) for _ in range(100)]
    single = [ff1.encrypt(v, b"tw") for v in vals]
    assert ff1.encrypt_many(vals, b"tw") == single
    assert ff1.decrypt_many(single, b"tw") == vals
    for v, c in zip(vals, single):
        assert len(c) == len(v) and set(c) <= set(alphabet)


def test_cjk_round_trip():
    alphabet = "".join(chr(c) for c in range(0x4E00, 0xA000))  # CJK Unified Ideographs, radix 20992
    ff1 = FF1(KEY128, alphabet)
    text = "山田太郎山田花子"
    ct = ff1.encrypt(text, b"name")
    assert len(ct) == len(text) and set(ct) <= set(alphabet)
    assert ct != text
    assert ff1.decrypt(ct, b"name") == text


def test_radix_65536_round_trip():
    alphabet = "".join(chr(0x10000 + i) for i in range(65536))
    ff1 = FF1(KEY128, alphabet)
    text = alphabet[::9000][:7] + alphabet[-1]
    ct = ff1.encrypt(text)
    assert len(ct) == len(text) and ff1.decrypt(ct) == text


def test_param_cache_is_bounded_and_consistent():
    ff1 = FF1(KEY128, DIGITS)
    first = ff1.encrypt("1234567890", b"tweak-0")
    for i in range(5000):
        ff1.encrypt("1234567890", f"tweak-{i}".encode())
    assert len(ff1._cache) <= 4096
    assert ff1.encrypt("1234567890", b"tweak-0") == first


def test_shared_instance_is_thread_safe():
    ff1 = FF1(KEY128, DIGITS)
    rng = random.Random(3)
    vals = ["".join(rng.choice(DIGITS) for _ in range(16)) for _ in range(3000)]
    expected = ff1.encrypt_many(vals)
    errors: list[str] = []

    def work():
        try:
            for _ in range(3):
                assert ff1.encrypt_many(vals) == expected
                assert [ff1.encrypt(v) for v in vals[:300]] == expected[:300]
                assert ff1.decrypt_many(expected) == vals
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
