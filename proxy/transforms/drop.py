"""``drop``: remove the field. Handled structurally by the compiler (deleting from the parent);
this class exists so every action has one module and one entry in the registry."""
from __future__ import annotations

from typing import Any

from .base import Transform

DROPPED = object()
"""Sentinel: the compiler deletes a node whose transform returns it."""


class Drop(Transform):
    """Remove the selected node (object member, or array element)."""

    action = "drop"

    def apply(self, value: Any) -> Any:
        return DROPPED
