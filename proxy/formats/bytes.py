"""Opaque bytes (Kafka's ``ByteArraySerializer``): rules see the payload as lower-case hex text."""
from __future__ import annotations

from typing import Any

from .base import Codec
from .string import StringCodec

_TEXT = StringCodec()


class BytesCodec(Codec):
    """``bytes`` → lower-case hex ``str`` (``ctx`` keeps the bytes); unchanged hex → the original
    bytes, any other tree (a pseudonym, a token, a literal) → its UTF-8 text."""

    name = "bytes"
    structured = False

    def decode(self, data: bytes) -> tuple[Any, Any]:
        raw = bytes(data)
        return raw.hex(), raw

    def encode(self, tree: Any, ctx: Any) -> bytes:
        if ctx is not None and tree == ctx.hex():
            return ctx
        return _TEXT.encode(tree, None)
