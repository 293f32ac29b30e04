"""``mask``: replace characters with a mask character, keeping the first/last N.

Every character is masked except *separators*: punctuation (Unicode general categories ``P*``),
spaces and line/paragraph separators (``Z*``), control characters (``Cc``) and math, currency and
modifier symbols (``Sm``, ``Sc``, ``Sk``): ``-``, space, ``@``, ``.``, ``+``, ``(``, ``$``, ``，``.
Separators stay in place unless ``mask_separators`` is set, so the output keeps the input's length
and layout. Letters and digits of any script are masked, and so is everything else that could carry
them: letter-like symbols (``ⓑ``, ``🅑``, regional indicators, Braille), emoji, combining marks,
format and private-use characters (fail closed: a character not known to be a separator is masked).
``keep_first``/``keep_last`` are honoured as long as at least one maskable character is masked
(``13900001111`` with 3/4 → ``139****1111``, ``王小明`` with 1/1 → ``王*明``); when they would
keep every character, at most half are kept instead, ``keep_last`` shrinking first (``李四`` with
1/1 → ``李*``), so a short value is never passed through in clear.
"""
from __future__ import annotations

import string
import unicodedata
from functools import lru_cache
from typing import Any, Callable

from .base import BuildContext, TextTransform, as_text

SEPARATOR_CATEGORIES = frozenset({"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Zs", "Zl", "Zp", "Cc", "Sm", "Sc", "Sk"})
"""Unicode general categories whose characters ``mask`` leaves in place."""

_ASCII_ALNUM = string.ascii_letters + string.digits
_DELETE_ASCII_ALNUM = str.maketrans("", "", _ASCII_ALNUM)


@lru_cache(maxsize=1)
def separators() -> frozenset:
    """Every code point (as a one-character ``str``) in :data:`SEPARATOR_CATEGORIES`, per this
    Python's ``unicodedata`` (about 2,000; built once, ~0.1 s)."""
    cat = unicodedata.category
    return frozenset(chr(c) for c in range(0x110000) if cat(chr(c)) in SEPARATOR_CATEGORIES)


def separator_bitmap() -> bytes:
    """:func:`separators` as a bitmap, bit ``c`` set for code point ``c`` (for ``proxy._native``)."""
    bits = bytearray(0x110000 // 8)
    for ch in separators():
        c = ord(ch)
        bits[c >> 3] |= 1 << (c & 7)
    return bytes(bits)


def kept(first: int, last: int, n: int) -> tuple[int, int]:
    """How many of ``n`` maskable characters stay in clear at the start and at the end: the
    rule's ``first``/``last`` while at least one is masked, else at most ``n // 2`` in all."""
    if first + last < n:
        return first, last
    budget = n // 2
    f = min(first, budget)
    return f, min(last, budget - f)


def masker(first: int, last: int, char: str, all_chars: bool) -> Callable[[Any], Any]:
    """One closure ``value -> masked value`` with the semantics of the module doc (``None``
    stays ``None``, numbers are masked as their JSON text, other types raise
    :class:`~proxy.errors.TransformError`). Values of letters and digits only are one
    slice-and-join; with separators, only the characters up to the kept ones are scanned and an
    ASCII middle is rewritten by ``str.translate`` instead of character by character."""
    table = str.maketrans({c: char for c in _ASCII_ALNUM})
    seps = separators()

    def mask(value: Any) -> Any:
        if type(value) is not str:
            if value is None:
                return None
            value = as_text(value)
        n = len(value)
        if all_chars or value.isalnum():
            f, l = (first, last) if first + last < n else kept(first, last, n)
            return value[:f] + char * (n - f - l) + (value[n - l:] if l else "")
        ascii_ = value.isascii()  # ASCII: every character but a letter or digit is a separator
        count = n - len(value.translate(_DELETE_ASCII_ALNUM)) if ascii_ else sum(c not in seps for c in value)
        f, l = (first, last) if first + last < count else kept(first, last, count)
        i = 0
        while f:  # i: just after the f-th maskable character
            if value[i] not in seps:
                f -= 1
            i += 1
        j = n
        while l:  # j: at the l-th maskable character from the end
            j -= 1
            if value[j] not in seps:
                l -= 1
        mid = value[i:j]
        mid = mid.translate(table) if ascii_ else "".join([c if c in seps else char for c in mid])
        return value[:i] + mid + value[j:]
    return mask


class Mask(TextTransform):
    """Partial masking (a de-identification technique of GB/T 37964-2019 §A.3 "masking")."""

    action = "mask"

    def __init__(self, rule, ctx: BuildContext):
        super().__init__(rule, ctx)
        self.first = rule.keep_first
        self.last = rule.keep_last
        self.char = rule.mask_char
        self.all_chars = rule.mask_separators
        self._mask = masker(self.first, self.last, self.char, self.all_chars)

    def apply_text(self, text: str) -> str:
        return self._mask(text)

    def compile_apply(self) -> Callable[[Any], Any]:
        return self._mask
