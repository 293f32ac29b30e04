"""``redact``: replace the whole value (any JSON type) with the rule's literal (default ``null``)."""
from __future__ import annotations

from typing import Any

from .base import BuildContext, Transform


class Redact(Transform):
    """Replace with a constant; irreversible (suppression in GB/T 37964-2019 terms)."""

    action = "redact"

    def __init__(self, rule, ctx: BuildContext):
        super().__init__(rule, ctx)
        self.value = rule.value

    def apply(self, value: Any) -> Any:
        return self.value
