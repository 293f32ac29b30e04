"""``keep``: pass the value through unchanged; lists the field for ``unlisted_fields: drop``."""
from __future__ import annotations

from typing import Any

from .base import Transform


class Keep(Transform):
    """Identity; exists so allow-list policies can name the fields they let through."""

    action = "keep"

    def apply(self, value: Any) -> Any:
        return value
