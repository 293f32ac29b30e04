"""``mask``: replace characters with a mask character, keeping the first/last N.

Maskable characters are letters and digits of any script (``str.isalnum``); other characters
(``-``, space, ``@``, ``.``, ``+``) stay in place unless ``mask_separators`` is set, so the output
keeps the input's length and separators. ``keep_first``/``keep_last`` are honoured as long as at
least one maskable character is masked (``13900001111`` with 3/4 → ``139****1111``, ``王小明`` with
1/1 → ``王*明``); when they would keep every character, at most half are kept instead, ``keep_last``
shrinking first (``李四`` with 1/1 → ``李*``), so a short value is never passed through in clear.
"""
from __future__ import annotations

from .base import BuildContext, TextTransform


class Mask(TextTransform):
    """Partial masking (a de-identification technique of GB/T 37964-2019 §A.3 "masking")."""

    action = "mask"

    def __init__(self, rule, ctx: BuildContext):
        super().__init__(rule, ctx)
        self.first = rule.keep_first
        self.last = rule.keep_last
        self.char = rule.mask_char
        self.all_chars = rule.mask_separators

    def apply_text(self, text: str) -> str:
        if self.all_chars or text.isalnum():
            n = len(text)
            first, last = self._keep(n)
            return text[:first] + self.char * (n - first - last) + (text[n - last:] if last else "")
        pos = [i for i, c in enumerate(text) if c.isalnum()]
        first, last = self._keep(len(pos))
        chars = list(text)
        c = self.char
        for i in pos[first: len(pos) - last]:
            chars[i] = c
        return "".join(chars)

    def _keep(self, n: int) -> tuple[int, int]:
        if self.first + self.last < n:
            return self.first, self.last
        budget = n // 2
        first = min(self.first, budget)
        last = min(self.last, budget - first)
        return first, last
