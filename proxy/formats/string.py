"""UTF-8 text: the whole payload is one string (Kafka's ``StringSerializer``)."""
from __future__ import annotations

from typing import Any

import orjson

from ..errors import FormatError, Reason
from .base import Codec


class StringCodec(Codec):
    """``bytes`` → ``str`` (strict UTF-8; invalid bytes → ``decode-failed``); a string tree →
    UTF-8, any other scalar (a redacted literal such as ``0``) → its JSON text."""

    name = "string"
    structured = False

    def decode(self, data: bytes) -> tuple[Any, Any]:
        try:
            return bytes(data).decode("utf-8"), None
        except UnicodeDecodeError:
            raise FormatError(Reason.DECODE_FAILED, "UnicodeDecodeError") from None

    def encode(self, tree: Any, ctx: Any) -> bytes:
        if type(tree) is str:
            return tree.encode("utf-8")
        try:
            return orjson.dumps(tree)
        except (TypeError, orjson.JSONEncodeError) as e:
            raise FormatError(Reason.SERIALIZE_FAILED, type(e).__name__) from None
