"""FF1 format-preserving encryption (NIST SP 800-38G Rev.1, section 5.1).

This module implements the FF1 mode of NIST SP 800-38G Revision 1 ("Recommendation
for Block Cipher Modes of Operation: Methods for Format-Preserving Encryption",
February 2019) on top of AES from the ``cryptography`` package:

* Algorithm 6 (PRF, section 5.1) is a CBC-MAC over AES; it is computed with one
  long-lived AES-ECB context per thread, chaining in Python.
* Algorithm 7 (FF1.Encrypt) and Algorithm 8 (FF1.Decrypt) follow the standard step
  by step; the step numbers are referenced in the code below.

Speed-ups that do not change the output (they are purely algebraic):

* The 16-byte block P of Algorithm 7 step 5 only depends on (radix, u, n, t), so
  PRF(P || Q) = CBC-MAC chained from CIPH_K(P).  CIPH_K(P) -- and the CBC-MAC
  state after every block of Q that only holds tweak bytes -- is cached per
  (tweak, length).  For every input with ``b <= 15`` (always the case within the
  length limit enforced here) each Feistel round then costs exactly one AES block.
* The numerals A and B are kept as Python integers through all ten rounds
  (``NUM_radix(STR^m_radix(c)) == c``); strings are only converted at the
  boundaries, with ``int()``/``str()``/``format()`` for radix <= 36.
* The even/odd rounds are paired so that A and B are updated in place
  (no swaps): round 2k updates A mod radix**u, round 2k+1 updates B mod radix**v.
* :meth:`FF1.encrypt_many` runs every round for a whole batch with a single
  AES-ECB call.

Domain rules (SP 800-38G Rev.1 section 5.1 and the project's stricter guard):

* ``2 <= radix <= 2**16`` (section 5.1: "radix in [2 .. 2^16]").
* ``radix**n >= 1_000_000`` (section 5.1; Rev.1 raised the original
  ``radix^minlen >= 100`` to one million).  :func:`min_length` returns the resulting minimum.
* ``n <= 2 * floor(log_radix(2**96))``.  NOTE: SP 800-38G Rev.1 allows FF1 inputs up
  to ``2**32 - 1`` numerals; this 96-bit bound is the FF3-1 bound (section 5.2) and
  is enforced here as a project policy guard (:func:`max_length`).  Within this
  bound ``b <= 12`` and ``d <= 16``, so every round uses one AES block.
* Tweak length ``t <= max_tweak_len`` bytes (``maxTlen`` of section 5.1).

An :class:`FF1` instance keeps the key only inside the ``cryptography`` cipher
object (it is never part of ``repr()``/``str()`` and instances refuse to pickle) and
never includes input values in error messages (they are personal data).
"""

from __future__ import annotations

import sys
import threading
from array import array
from typing import Iterable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "FF1",
    "FF1DomainError",
    "MAX_RADIX",
    "MIN_DOMAIN_SIZE",
    "max_length",
    "min_length",
]

#: Minimum domain size radix**n (SP 800-38G Rev.1, section 5.1).
MIN_DOMAIN_SIZE = 1_000_000
#: Largest radix allowed for FF1 (SP 800-38G Rev.1, section 5.1).
MAX_RADIX = 1 << 16
#: Number of Feistel rounds of FF1 (Algorithm 7, step 6).
NUM_ROUNDS = 10

_CANONICAL_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# radix -> format() presentation type producing canonical lowercase digits
_FORMAT_CODES = {2: "b", 8: "o", 10: "d", 16: "x"}
# At most this many (tweak, length) parameter sets are cached per FF1 instance.
_PARAM_CACHE_MAX = 4096
# Largest radix**k used for the digit-group lookup table of the generic STR.
_CHUNK_TABLE_MAX = 4096
_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1
_LITTLE_ENDIAN = sys.byteorder == "little"
# The batch engine reinterprets AES blocks as pairs of 64-bit words.
_ARRAY_Q_OK = array("Q").itemsize == 8


class FF1DomainError(ValueError):
    """The input length is outside the FF1 domain.

    Raised when ``radix**len(text) < 1_000_000`` (SP 800-38G Rev.1 section 5.1) or
    when ``len(text) > max_length(radix)``.  The message states lengths and the
    radix only -- never the value.
    """


def _check_radix(radix: int) -> None:
    if isinstance(radix, bool) or not isinstance(radix, int):
        raise TypeError("radix must be an int")
    if not 2 <= radix <= MAX_RADIX:
        raise ValueError(f"radix must be in [2, {MAX_RADIX}], got {radix}")


def min_length(radix: int) -> int:
    """Smallest length ``n`` with ``radix**n >= 1_000_000`` (exact integer arithmetic).

    This is ``minlen`` of SP 800-38G Rev.1 section 5.1 (domain-size requirement).
    Examples: radix 10 -> 6, radix 2 -> 20, radix 36 -> 4, radix >= 1000 -> 2.

    Raises:
        ValueError: radix outside ``[2, 65536]``.
        TypeError: radix is not an int.
    """
    _check_radix(radix)
    n, size = 0, 1
    while size < MIN_DOMAIN_SIZE:
        size *= radix
        n += 1
    return n


def max_length(radix: int) -> int:
    """Largest accepted length: ``2 * floor(log_radix(2**96))`` (exact integer arithmetic).

    Project guard borrowed from the FF3-1 ``maxlen`` of SP 800-38G Rev.1 section 5.2
    (FF1 itself would allow up to ``2**32 - 1``).  Examples: radix 10 -> 56,
    radix 36 -> 36, radix 2 -> 192, radix 65536 -> 12.

    Raises:
        ValueError: radix outside ``[2, 65536]``.
        TypeError: radix is not an int.
    """
    _check_radix(radix)
    k, power, limit = 0, radix, 1 << 96
    while power <= limit:
        k += 1
        power *= radix
    return 2 * k


class _Params:
    """Per-(tweak, n) constants of Algorithm 7 (steps 1, 3, 4, 5 and the Q prefix)."""

    __slots__ = (
        "n", "u", "v", "b", "d", "mod_u", "mod_v", "fast", "xs", "shift",
        "state", "tails", "tail_shifts", "n_s_blocks", "batch_lo", "spec", "dec",
    )


class FF1:
    """FF1 format-preserving cipher over a fixed alphabet (NIST SP 800-38G Rev.1, 5.1).

    Args:
        key: AES key, 16, 24 or 32 bytes (AES-128/192/256).  Held only inside the
            ``cryptography`` cipher object; never shown by ``repr()``.
        alphabet: the numeral symbols, in order: ``alphabet[i]`` is numeral ``i``.
            ``2 <= len(alphabet) <= 65536`` and characters must be unique.  Any
            Unicode characters are allowed (e.g. a CJK alphabet).
        max_tweak_len: largest tweak accepted, in bytes (``maxTlen`` of section 5.1).

    Attributes:
        radix: ``len(alphabet)``.
        alphabet: the alphabet string.
        max_tweak_len: as given.

    Raises:
        TypeError: key is not bytes-like / alphabet is not a str.
        ValueError: bad key length, radix out of range or duplicate characters
            (messages never contain key material).

    Texts are strings of alphabet characters, most significant numeral first (the
    ``X[1..n]`` of Algorithm 7).  Tweaks are byte strings.  Instances are cheap to
    use repeatedly; build one per (key, alphabet) and reuse it.  An instance may be
    shared between threads: each thread lazily gets its own AES-ECB context.
    """

    __slots__ = (
        "radix", "alphabet", "max_tweak_len", "minlen", "maxlen",
        "_cipher", "_tls", "_cache", "_index", "_charset", "_num_mode", "_to_canon",
        "_str_fmt", "_from_canon", "_chunk_len", "_chunk_mod", "_chunk_tbl",
        "__weakref__",
    )

    def __init__(self, key: bytes, alphabet: str, *, max_tweak_len: int = 256) -> None:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise TypeError("key must be bytes")
        key = bytes(key)
        if len(key) not in (16, 24, 32):
            raise ValueError(f"AES key must be 16, 24 or 32 bytes, got {len(key)} bytes")
        if not isinstance(alphabet, str):
            raise TypeError("alphabet must be a str")
        radix = len(alphabet)
        _check_radix(radix)
        if len(set(alphabet)) != radix:
            raise ValueError("alphabet characters must be unique")
        if isinstance(max_tweak_len, bool) or not isinstance(max_tweak_len, int) or max_tweak_len < 0:
            raise ValueError("max_tweak_len must be a non-negative int")

        self.radix = radix
        self.alphabet = alphabet
        self.max_tweak_len = max_tweak_len
        self.minlen = min_length(radix)
        self.maxlen = max_length(radix)
        # One AES-ECB context per thread for the life of the object: ECB over whole
        # blocks is stateless, so update() can be called any number of times.  The
        # context cannot be shared between threads (cryptography releases the GIL
        # inside update() and then rejects concurrent use with "Already borrowed").
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())
        self._tls = threading.local()
        self._cache: dict = {}
        self._index = {c: i for i, c in enumerate(alphabet)}
        self._charset = frozenset(alphabet)

        canonical = _CANONICAL_DIGITS[:radix]
        # NUM_radix (string -> int)
        if alphabet == "0123456789":
            self._num_mode = 0  # int(text) after an isascii/isdigit check
            self._to_canon = None
        elif radix <= 36:
            self._num_mode = 1  # int(text[.translate()], radix) after a charset check
            self._to_canon = None if alphabet == canonical else str.maketrans(alphabet, canonical)
        else:
            self._num_mode = 2  # Horner loop over the index dict
            self._to_canon = None
        # STR_radix (int -> string)
        code = _FORMAT_CODES.get(radix)
        self._str_fmt = code
        self._from_canon = None
        if code is not None and alphabet != canonical:
            self._from_canon = str.maketrans(canonical, alphabet)
        k = 1
        while radix ** (k + 1) <= _CHUNK_TABLE_MAX:
            k += 1
        self._chunk_len = k
        self._chunk_mod = radix**k
        self._chunk_tbl = None  # built lazily by _str_generic

    def _new_upd(self):
        """Create this thread's AES-ECB context and return its ``update`` method."""
        upd = self._tls.upd = self._cipher.encryptor().update
        return upd

    def __repr__(self) -> str:
        return f"FF1(radix={self.radix})"

    def __reduce__(self):  # never pickle key material
        raise TypeError("FF1 instances cannot be pickled")

    # ------------------------------------------------------------------ params
    def _params(self, tweak, n: int) -> _Params:
        """Validate (tweak, n) and return the cached constants (Algorithm 7, steps 1-5)."""
        if not isinstance(tweak, bytes):
            if not isinstance(tweak, (bytearray, memoryview)):
                raise TypeError("tweak must be bytes")
            tweak = bytes(tweak)
        p = self._cache.get((tweak, n))
        if p is not None:
            return p
        radix = self.radix
        if n < self.minlen:
            raise FF1DomainError(
                f"input length {n} is too short for radix {radix}: radix**length must be "
                f">= {MIN_DOMAIN_SIZE} (minimum length {self.minlen}; NIST SP 800-38G Rev.1 5.1)"
            )
        if n > self.maxlen:
            raise FF1DomainError(
                f"input length {n} is too long for radix {radix} (maximum length {self.maxlen})"
            )
        t = len(tweak)
        if t > self.max_tweak_len:
            raise ValueError(f"tweak length {t} bytes exceeds max_tweak_len {self.max_tweak_len}")

        try:
            upd = self._tls.upd
        except AttributeError:
            upd = self._new_upd()
        frm = int.from_bytes
        p = _Params()
        u = n // 2                                   # step 1
        v = n - u
        mod_v = radix**v
        b = ((mod_v - 1).bit_length() + 7) // 8      # step 3: bytes to hold radix**v - 1
        d = 4 * ((b + 3) // 4) + 4                   # step 4
        p.n, p.u, p.v, p.b, p.d = n, u, v, b, d
        p.mod_u, p.mod_v = radix**u, mod_v
        # step 5: P = [1]^1 [2]^1 [1]^1 [radix]^3 [10]^1 [u mod 256]^1 [n]^4 [t]^4
        P = (bytes((1, 2, 1)) + radix.to_bytes(3, "big") + bytes((10, u % 256))
             + n.to_bytes(4, "big") + t.to_bytes(4, "big"))
        state = frm(upd(P), "big")                   # CBC-MAC chain value after P
        # step 6.i: Q = T || [0]^((-t-b-1) mod 16) || [i]^1 || [NUM(B)]^b
        const = tweak + bytes((-t - b - 1) % 16)
        full = len(const) // 16
        for j in range(full):                        # blocks made of tweak/padding only
            blk = frm(const[16 * j:16 * j + 16], "big")
            state = frm(upd((state ^ blk).to_bytes(16, "big")), "big")
        rest = const[16 * full:]
        tail_len = len(rest) + 1 + b                 # multiple of 16 by construction
        tails = tuple(frm(rest + bytes((i,)) + bytes(b), "big") for i in range(NUM_ROUNDS))
        p.fast = tail_len == 16 and d <= 16
        p.shift = 8 * (16 - d) if d <= 16 else 0
        p.xs = tuple(state ^ tl for tl in tails) if tail_len == 16 else None
        p.state = state
        p.tails = tails
        p.tail_shifts = tuple(range(8 * (tail_len - 16), -1, -128))
        p.n_s_blocks = (d + 15) // 16
        p.batch_lo = p.fast and b <= 8               # NUM(B) fits the low 64 bits
        # format() spec giving STR^n_radix directly (canonical alphabets of radix 2/8/10/16)
        code = self._str_fmt
        p.spec = f"0{n}{code}" if code is not None and self._from_canon is None else None
        p.dec = p.spec is not None and code == "d"   # str().zfill() is faster than format()
        if len(self._cache) >= _PARAM_CACHE_MAX:
            self._cache.clear()  # bounded memory with many distinct tweaks; atomic
        self._cache[(tweak, n)] = p
        return p

    # --------------------------------------------------------- NUM / STR
    def _bad_char(self, text: str, where: str = "") -> ValueError:
        index = self._index
        for pos, ch in enumerate(text):
            if ch not in index:
                return ValueError(f"{where}character at position {pos} is not in the alphabet "
                                  f"(radix {self.radix})")
        return ValueError(f"{where}invalid numeral string (radix {self.radix})")  # pragma: no cover

    def _num(self, text: str) -> int:
        """NUM_radix(X) (SP 800-38G Rev.1 section 4.5, Algorithm 2), validating characters."""
        mode = self._num_mode
        if mode == 0:
            if text.isascii() and text.isdigit():
                return int(text)
            raise self._bad_char(text)
        if mode == 1:
            if not self._charset.issuperset(text):
                raise self._bad_char(text)
            if self._to_canon is not None:
                text = text.translate(self._to_canon)
            return int(text, self.radix)
        index, radix, x = self._index, self.radix, 0
        try:
            for ch in text:
                x = x * radix + index[ch]
        except KeyError:
            raise self._bad_char(text) from None
        return x

    def _str(self, x: int, n: int) -> str:
        """STR^n_radix(x) (SP 800-38G Rev.1 section 4.5, Algorithm 3)."""
        code = self._str_fmt
        if code is None:
            return self._str_generic(x, n)
        s = format(x, code).zfill(n)
        if self._from_canon is not None:
            s = s.translate(self._from_canon)
        return s

    def _str_generic(self, x: int, n: int) -> str:
        tbl = self._chunk_tbl
        if tbl is None:
            tbl = [""]
            for _ in range(self._chunk_len):
                tbl = [hi + c for hi in tbl for c in self.alphabet]
            self._chunk_tbl = tbl
        mod = self._chunk_mod
        parts = []
        for _ in range(-(-n // self._chunk_len)):
            x, r = divmod(x, mod)
            parts.append(tbl[r])
        parts.reverse()
        s = "".join(parts)
        return s[len(s) - n:]

    # ------------------------------------------------------------ PRF (general)
    def _round_y(self, p: _Params, i: int, num_b: int) -> int:
        """Steps 6.i-6.iv of Algorithm 7: y = NUM(S) for round i and numeral NUM(B).

        General form (any tail length / d); the hot paths inline the 1-block case.
        """
        try:
            upd = self._tls.upd
        except AttributeError:
            upd = self._new_upd()
        frm = int.from_bytes
        tail = p.tails[i] | num_b
        r = p.state
        for sh in p.tail_shifts:                           # 6.ii: CBC-MAC over Q
            r = frm(upd((r ^ ((tail >> sh) & _M128)).to_bytes(16, "big")), "big")
        d = p.d
        if d <= 16:                                        # 6.iii: S = first d bytes of R
            return r >> (8 * (16 - d))
        extra = upd(b"".join((r ^ j).to_bytes(16, "big") for j in range(1, p.n_s_blocks)))
        return frm((r.to_bytes(16, "big") + extra)[:d], "big")

    # -------------------------------------------------------------- public API
    def encrypt(self, text: str, tweak: bytes = b"") -> str:
        """FF1.Encrypt(K, T, X) -- NIST SP 800-38G Rev.1 section 5.1, Algorithm 7.

        Args:
            text: numeral string over ``self.alphabet``, most significant first;
                ``min_length(radix) <= len(text) <= max_length(radix)``.
            tweak: tweak T, ``0 <= len(tweak) <= max_tweak_len`` bytes.

        Returns:
            The ciphertext, a string of the same length over the same alphabet.

        Raises:
            FF1DomainError: length outside the domain (message: lengths and radix only).
            ValueError: a character is not in the alphabet (message: its position
                only), or the tweak is too long.
            TypeError: tweak is not bytes-like.
        """
        n = len(text)
        p = self._cache.get((tweak, n)) if type(tweak) is bytes else None
        if p is None:
            p = self._params(tweak, n)
        mod_u, mod_v = p.mod_u, p.mod_v
        if self._num_mode == 0 and text.isdigit() and text.isascii():
            x = int(text)
        else:
            x = self._num(text)
        a, b = divmod(x, mod_v)                          # step 2: A = X[1..u], B = X[u+1..n]
        if p.fast:
            try:
                upd = self._tls.upd
            except AttributeError:
                upd = self._new_upd()
            frm, sh = int.from_bytes, p.shift
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 = p.xs
            # step 6, rounds paired: even i -> m = u (update A), odd i -> m = v (update B)
            a = (a + (frm(upd((x0 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b + (frm(upd((x1 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a + (frm(upd((x2 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b + (frm(upd((x3 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a + (frm(upd((x4 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b + (frm(upd((x5 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a + (frm(upd((x6 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b + (frm(upd((x7 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a + (frm(upd((x8 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b + (frm(upd((x9 ^ a).to_bytes(16))) >> sh)) % mod_v
        else:
            ry = self._round_y
            for i in range(0, NUM_ROUNDS, 2):
                a = (a + ry(p, i, b)) % mod_u
                b = (b + ry(p, i + 1, a)) % mod_v
        x = a * mod_v + b                                # step 7: A || B
        if p.dec:
            return str(x).zfill(n)
        if p.spec is not None:
            return format(x, p.spec)
        return self._str(x, n)

    def decrypt(self, text: str, tweak: bytes = b"") -> str:
        """FF1.Decrypt(K, T, Y) -- NIST SP 800-38G Rev.1 section 5.1, Algorithm 8.

        Inverse of :meth:`encrypt`; same arguments, return shape and errors.
        """
        n = len(text)
        p = self._cache.get((tweak, n)) if type(tweak) is bytes else None
        if p is None:
            p = self._params(tweak, n)
        mod_u, mod_v = p.mod_u, p.mod_v
        if self._num_mode == 0 and text.isdigit() and text.isascii():
            x = int(text)
        else:
            x = self._num(text)
        a, b = divmod(x, mod_v)
        if p.fast:
            try:
                upd = self._tls.upd
            except AttributeError:
                upd = self._new_upd()
            frm, sh = int.from_bytes, p.shift
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9 = p.xs
            # Algorithm 8 step 6, i = 9 .. 0, rounds paired (odd i: m = v, even i: m = u)
            b = (b - (frm(upd((x9 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a - (frm(upd((x8 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b - (frm(upd((x7 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a - (frm(upd((x6 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b - (frm(upd((x5 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a - (frm(upd((x4 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b - (frm(upd((x3 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a - (frm(upd((x2 ^ b).to_bytes(16))) >> sh)) % mod_u
            b = (b - (frm(upd((x1 ^ a).to_bytes(16))) >> sh)) % mod_v
            a = (a - (frm(upd((x0 ^ b).to_bytes(16))) >> sh)) % mod_u
        else:
            ry = self._round_y
            for i in range(NUM_ROUNDS - 1, 0, -2):
                b = (b - ry(p, i, a)) % mod_v
                a = (a - ry(p, i - 1, b)) % mod_u
        x = a * mod_v + b
        if p.dec:
            return str(x).zfill(n)
        if p.spec is not None:
            return format(x, p.spec)
        return self._str(x, n)

    def encrypt_many(self, texts: Iterable[str], tweak: bytes = b"") -> list[str]:
        """Encrypt a batch under one tweak; ``== [self.encrypt(t, tweak) for t in texts]``.

        Texts of different lengths may be mixed (they are grouped by length).  Each
        Feistel round of a same-length group is one AES-ECB call over all of its
        blocks, which removes most per-value overhead.

        Raises:
            Same as :meth:`encrypt`; character errors are prefixed with the index
            of the offending text in the batch (``texts[i]: ...``), never the value.
        """
        return self._many(texts, tweak, False)

    def decrypt_many(self, texts: Iterable[str], tweak: bytes = b"") -> list[str]:
        """Decrypt a batch under one tweak; ``== [self.decrypt(t, tweak) for t in texts]``.

        Raises:
            Same as :meth:`encrypt_many`.
        """
        return self._many(texts, tweak, True)

    # ------------------------------------------------------------ batch engine
    def _many(self, texts: Iterable[str], tweak: bytes, decrypt: bool) -> list[str]:
        texts = list(texts)
        if not texts:
            return []
        n0 = len(texts[0])
        if all(len(t) == n0 for t in texts):
            return self._many_same(texts, tweak, n0, decrypt, None)
        groups: dict[int, list[int]] = {}
        for idx, t in enumerate(texts):
            groups.setdefault(len(t), []).append(idx)
        out: list = [None] * len(texts)
        for n, idxs in groups.items():
            res = self._many_same([texts[i] for i in idxs], tweak, n, decrypt, idxs)
            for i, r in zip(idxs, res):
                out[i] = r
        return out

    def _nums(self, texts: list[str], idxs) -> list[int]:
        mode = self._num_mode
        if mode == 0:
            joined = "".join(texts)
            if joined.isascii() and joined.isdigit():
                return [int(t) for t in texts]
        if mode == 1 and self._charset.issuperset("".join(texts)):
            tc, radix = self._to_canon, self.radix
            if tc is None:
                return [int(t, radix) for t in texts]
            return [int(t.translate(tc), radix) for t in texts]
        out = []
        for k, t in enumerate(texts):
            try:
                out.append(self._num(t))
            except ValueError as exc:
                pos = idxs[k] if idxs is not None else k
                raise ValueError(f"texts[{pos}]: {exc}") from None
        return out

    def _many_same(self, texts: list[str], tweak: bytes, n: int, decrypt: bool, idxs) -> list[str]:
        p = self._params(tweak, n)
        mod_u, mod_v = p.mod_u, p.mod_v
        pairs = [divmod(x, mod_v) for x in self._nums(texts, idxs)]
        av = [ab[0] for ab in pairs]                     # step 2 for every text
        bv = [ab[1] for ab in pairs]
        if not (p.fast and _ARRAY_Q_OK):
            ry = self._round_y
            if decrypt:
                for i in range(NUM_ROUNDS - 1, 0, -2):
                    bv = [(b - ry(p, i, a)) % mod_v for a, b in zip(av, bv)]
                    av = [(a - ry(p, i - 1, b)) % mod_u for a, b in zip(av, bv)]
            else:
                for i in range(0, NUM_ROUNDS, 2):
                    av = [(a + ry(p, i, b)) % mod_u for a, b in zip(av, bv)]
                    bv = [(b + ry(p, i + 1, a)) % mod_v for a, b in zip(av, bv)]
        else:
            ys = self._batch_ys
            if decrypt:
                for i in range(NUM_ROUNDS - 1, 0, -2):
                    bv = [(b - y) % mod_v for b, y in zip(bv, ys(p, i, av))]
                    av = [(a - y) % mod_u for a, y in zip(av, ys(p, i - 1, bv))]
            else:
                for i in range(0, NUM_ROUNDS, 2):
                    av = [(a + y) % mod_u for a, y in zip(av, ys(p, i, bv))]
                    bv = [(b + y) % mod_v for b, y in zip(bv, ys(p, i + 1, av))]
        if p.dec:
            return [str(a * mod_v + b).zfill(n) for a, b in zip(av, bv)]
        spec = p.spec
        if spec is not None:
            return [format(a * mod_v + b, spec) for a, b in zip(av, bv)]
        st = self._str
        return [st(a * mod_v + b, n) for a, b in zip(av, bv)]

    def _batch_ys(self, p: _Params, i: int, nums: list[int]):
        """y = NUM(S) of round i for every numeral in ``nums`` (1-block fast path)."""
        try:
            upd = self._tls.upd
        except AttributeError:
            upd = self._new_upd()
        x = p.xs[i]
        if p.batch_lo:
            # Block = x XOR NUM(B) with NUM(B) < 2**64: only the low word varies.
            cnt = len(nums)
            buf = array("Q", (x >> 64, 0)) * cnt
            lo = x & _M64
            buf[1::2] = array("Q", [lo ^ v for v in nums])
            if _LITTLE_ENDIAN:
                buf.byteswap()
            out = array("Q")
            out.frombytes(upd(memoryview(buf).cast("B")))
        else:
            out = array("Q")
            out.frombytes(upd(b"".join([(x ^ v).to_bytes(16, "big") for v in nums])))
        if _LITTLE_ENDIAN:
            out.byteswap()
        d = p.d
        if d == 8:
            return out[0::2]
        if d == 12:
            return [(h << 32) | (l >> 32) for h, l in zip(out[0::2], out[1::2])]
        return [(h << 64) | l for h, l in zip(out[0::2], out[1::2])]  # d == 16
