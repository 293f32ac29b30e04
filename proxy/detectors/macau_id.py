"""``macau_id``: Macao resident identity card numbers, ``1234567(8)``.

Eight digits, the first ``1``, ``5`` or ``7`` (permanent / non-permanent series), the last in
brackets as printed on the card. The check-digit algorithm is not published, so the bracketed
form is required for precision; the bare 8-digit form is not matched.
"""
from __future__ import annotations

import re

from .base import RegexDetector, Start, TextInfo


class MacauId(RegexDetector):
    """Macao resident identity card number (bracketed form)."""

    name = "macau_id"
    placeholder = "MACAU_ID"
    priority = 65
    trigger = "("
    description = "Macao resident identity card number"
    pattern = re.compile(r"[157](?<![0-9A-Za-z][157])[0-9]{6}\([0-9]\)")

    starts = (Start("157", (7,), follow="("),)

    def possible(self, info: TextInfo) -> bool:
        return 7 in info.lens
