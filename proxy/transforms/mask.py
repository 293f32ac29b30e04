"""``mask``: replace characters with a mask character, keeping the first/last N.

Maskable characters are letters and digits of any script (``str.isalnum``); other characters
(``-``, space, ``@``, ``.``, ``+``) stay in place unless ``mask_separators`` is set, so the output
keeps the input's length and separators. ``keep_first``/``keep_last`` are honoured as long as at
least one maskable character is masked (``13900001111`` with 3/4 → ``139****1111``, ``王小明`` with
1/1 → ``王*明``); when they would keep every character, at most half are kept instead, ``keep_last``
shrinking first (``李四`` with 1/1 → ``李*``), so a short value is never passed through in clear.
"""
from __future__ import annotations

import string
from typing import Any, Callable

from .base import BuildContext, TextTransform, as_text

_ASCII_ALNUM = string.ascii_letters + string.digits
_DELETE_ASCII_ALNUM = str.maketrans("", "", _ASCII_ALNUM)


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
    :class:`~proxy.errors.TransformError`). Values without separators are one slice-and-join;
    with separators, only the characters up to the kept ones are scanned and the middle is
    rewritten by ``str.translate`` (ASCII) instead of character by character."""
    table = str.maketrans({c: char for c in _ASCII_ALNUM})

    def mask(value: Any) -> Any:
        if type(value) is not str:
            if value is None:
                return None
            value = as_text(value)
        n = len(value)
        if all_chars or value.isalnum():
            f, l = (first, last) if first + last < n else kept(first, last, n)
            return value[:f] + char * (n - f - l) + (value[n - l:] if l else "")
        ascii_ = value.isascii()
        count = n - len(value.translate(_DELETE_ASCII_ALNUM)) if ascii_ else sum(map(str.isalnum, value))
        f, l = (first, last) if first + last < count else kept(first, last, count)
        i = 0
        while f:  # i: just after the f-th maskable character
            if value[i].isalnum():
                f -= 1
            i += 1
        j = n
        while l:  # j: at the l-th maskable character from the end
            j -= 1
            if value[j].isalnum():
                l -= 1
        mid = value[i:j]
        mid = mid.translate(table) if ascii_ else "".join([char if c.isalnum() else c for c in mid])
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
