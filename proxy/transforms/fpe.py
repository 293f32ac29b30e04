"""``fpe``: format-preserving encryption of the characters of a value that lie in an alphabet.

Characters outside the alphabet (dashes, spaces, a leading letter) stay where they are; the others
are encrypted together as one numeral string, so ``4111-1111-1111-1111`` keeps its dashes and
``A1234567`` keeps its ``A``. Reversible with the key (``reverse``). A character outside the
alphabet that is another form of an alphabet character (full-width ``１``, Arabic-Indic ``١``,
superscript ``²``, the other letter case: :func:`is_variant`) would stay in clear, so such a value
fails closed (``fpe-variant-characters``) instead.

* ``ff1`` (default): NIST SP 800-38G Rev.1 FF1 on AES, tweak = UTF-8 of the rule's binding
  (``domain:<name>`` or ``field:<policy>:<field path>``). A value whose alphabet characters give a
  domain radix**n < 1,000,000 cannot be encrypted safely and fails closed (``fpe-domain-too-small``).
* ``ffx``: legacy, for values produced by pyffx elsewhere; not a NIST mode, no tweak.
"""
from __future__ import annotations

import functools
import unicodedata

from ..crypto.ff1 import FF1, FF1DomainError, max_length, min_length
from ..crypto.ffx import LegacyFFX
from ..crypto.keys import require_aes
from ..errors import Reason, TransformError
from .base import BuildContext, TextTransform, as_text


def is_variant(c: str, charset: frozenset) -> bool:
    """True when character ``c`` (not in ``charset``) is another form of an alphabet character:
    its NFKC compatibility form (full-width ``１``, superscript ``²``, circled ``①``, ligatures),
    its other letter case, or its decimal digit value (Arabic-Indic ``١``, Devanagari ``१``) lies
    in the alphabet. Such a character carries the same information as an alphabet character, so
    leaving it in place would leave part of the value in clear."""
    for x in unicodedata.normalize("NFKC", c):
        if x in charset or x.lower() in charset or x.upper() in charset:
            return True
    return c.isdecimal() and str(unicodedata.decimal(c)) in charset



class Fpe(TextTransform):
    """FPE over the rule's alphabet, separators kept in place."""

    action = "fpe"
    reversible = True

    def __init__(self, rule, ctx: BuildContext):
        super().__init__(rule, ctx)
        chars = rule.chars
        self.alphabet = chars
        self.charset = frozenset(chars)
        self.radix = len(chars)
        self._variant = functools.lru_cache(maxsize=4096)(functools.partial(is_variant, charset=self.charset))
        self.min_len = min_length(self.radix)
        self.max_len = max_length(self.radix) if rule.algorithm == "ff1" else 10**9
        self.encrypt_batch = None
        """``encrypt_batch(list[str]) -> list[str]``: many numeral strings at once (FF1 only)."""
        ring = ctx.keyring(rule.key)
        self.key_name = rule.key
        self.current = ring.current
        self._dec_by_version = {}
        self.native_ff1 = None
        """``(key, tweak)`` of the current version for proxy._native's FF1 (ff1 only; never printed)."""
        for v, key in ring.versions.items():
            if rule.algorithm == "ff1":
                tweak = ctx.binding(rule).encode()
                # the tweak holds the field path, which has no length limit: FF1 allows any
                # tweak length (maxTlen is the implementation's choice), so never refuse it per record
                cipher = FF1(require_aes(key, f"fpe rule {rule.label}"), chars,
                             max_tweak_len=max(256, len(tweak)))
                enc = (lambda c, t: (lambda s: c.encrypt(s, t)))(cipher, tweak)
                dec = (lambda c, t: (lambda s: c.decrypt(s, t)))(cipher, tweak)
            else:
                cipher = LegacyFFX(key.material, chars)
                enc, dec = cipher.encrypt, cipher.decrypt
            self._dec_by_version[v] = dec
            if v == ring.current:
                self._enc = enc
                if rule.algorithm == "ff1":
                    self.encrypt_batch = (lambda c, t: (lambda xs: c.encrypt_many(xs, t)))(cipher, tweak)
                    self.native_ff1 = (key, tweak)

    def split(self, value) -> tuple[str, list[int] | None, str] | None:
        """Validate a value and extract its numerals: ``(text, positions or None, numerals)``.

        ``None`` for a JSON null (stays null). ``positions`` is ``None`` when every character is in
        the alphabet. Raises :class:`TransformError` (unsupported type, domain too small or too large).
        Used with :attr:`encrypt_batch` and :meth:`join` to encrypt a whole batch's values at once.
        """
        if value is None:
            return None
        text = value if type(value) is str else as_text(value)
        cs = self.charset
        if cs.issuperset(text):  # every character in the alphabet (one C call, not a generator)
            pos, num = None, text
        else:
            pos = [i for i, c in enumerate(text) if c in cs]
            variant = self._variant
            if any(variant(c) for c in text if c not in cs):
                raise TransformError(Reason.FPE_VARIANT_CHARS, "a character outside the alphabet is another "
                                     "form of an alphabet character (width, script or case)")
            num = "".join(text[i] for i in pos)
        n = len(num)
        if n < self.min_len:
            raise TransformError(Reason.FPE_DOMAIN, f"{n} alphabet characters, need {self.min_len}")
        if n > self.max_len:
            raise TransformError(Reason.FPE_DOMAIN, f"{n} alphabet characters, at most {self.max_len}")
        return text, pos, num

    @staticmethod
    def join(text: str, pos: list[int] | None, enc: str) -> str:
        """Put encrypted numerals back at ``pos`` (the inverse of :meth:`split`'s extraction)."""
        if pos is None:
            return enc
        chars = list(text)
        for i, c in zip(pos, enc):
            chars[i] = c
        return "".join(chars)

    def _run(self, text: str, fn) -> str:
        text, pos, num = self.split(text)
        return self.join(text, pos, self._call(fn, num))

    @staticmethod
    def _call(fn, s: str) -> str:
        try:
            return fn(s)
        except FF1DomainError as e:
            raise TransformError(Reason.FPE_DOMAIN, str(e)) from None

    def apply_text(self, text: str) -> str:
        return self._run(text, self._enc)

    def reverse_text(self, text: str, version: int | None = None) -> str:
        v = self.current if version is None else version
        dec = self._dec_by_version.get(v)
        if dec is None:
            raise TransformError(Reason.KEY_UNAVAILABLE, f"key {self.key_name!r} has no version {v}")
        return self._run(text, dec)
