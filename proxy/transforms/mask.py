"""``mask``: replace characters with a mask character, keeping the first/last N.

Maskable characters are letters and digits of any script (``str.isalnum``); other characters
(``-``, space, ``@``, ``.``, ``+``) stay in place unless ``mask_separators`` is set, so the output
keeps the input's length and separators. Never more than half of the maskable characters are
kept: on short values ``keep_last`` shrinks first, then ``keep_first`` (``李四`` with 1/1 → ``李*``).
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
        budget = n // 2
        first = min(self.first, budget)
        last = min(self.last, budget - first)
        return first, last
