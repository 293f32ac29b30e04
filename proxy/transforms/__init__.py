"""Transforms, one module per action, registered by action name."""
from __future__ import annotations

from .base import BuildContext, Transform
from .detect import Detect
from .drop import Drop
from .fpe import Fpe
from .keep import Keep
from .mask import Mask
from .pseudonymize import Pseudonymize
from .redact import Redact
from .tokenize import Tokenize

REGISTRY: dict[str, type[Transform]] = {t.action: t for t in (Keep, Mask, Redact, Drop, Pseudonymize, Fpe, Tokenize, Detect)}
"""Action name (policy ``action:``) → transform class."""


def build_transform(rule, ctx: BuildContext) -> Transform:
    """Build the transform for one policy rule (keys must already be in ``ctx.keys``)."""
    return REGISTRY[rule.action](rule, ctx)


__all__ = ["REGISTRY", "BuildContext", "Transform", "build_transform"]
