"""Plain JSON (RFC 8259), UTF-8, parsed and written with orjson. No framing, no schema.

Values of ``format: json`` routes take the policy engine's own JSON path (and its generated batch
function, :mod:`proxy.policy.fastpath`); this codec serves ``key: {format: json}`` and offline use.
"""
from __future__ import annotations

from typing import Any

import orjson

from ..errors import FormatError, Reason
from .base import Codec


class JsonCodec(Codec):
    """``bytes`` → any JSON value (``orjson.loads``); the tree → compact JSON (``orjson.dumps``)."""

    name = "json"

    def decode(self, data: bytes) -> tuple[Any, Any]:
        try:
            return orjson.loads(data), None
        except orjson.JSONDecodeError:
            raise FormatError(Reason.DECODE_FAILED, "JSONDecodeError") from None

    def encode(self, tree: Any, ctx: Any) -> bytes:
        try:
            return orjson.dumps(tree)
        except (TypeError, orjson.JSONEncodeError) as e:
            raise FormatError(Reason.SERIALIZE_FAILED, type(e).__name__) from None
