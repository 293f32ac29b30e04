"""Plain JSON (RFC 8259), UTF-8, parsed and written with orjson. No framing, no schema.

Values of ``format: json`` routes take the policy engine's own JSON path (and its generated batch
function, :mod:`proxy.policy.fastpath`); this codec serves ``key: {format: json}`` and offline use.

**Integers beyond 64 bits keep their exact digits.** orjson reads an integer literal outside
``[-2**63, 2**64 - 1]`` as a float (``123456789012345678901234567890`` → ``1.2345678901234568e+29``)
and refuses to write such a Python ``int``. :func:`loads_record` therefore screens the text
(:func:`big_int_literal`: a run of at least 19 digits where a number may start, O(length), in C
when ``proxy._native`` is built) and re-parses only the records it flags with the standard
library (``int`` for integer literals, exact); :func:`dumps_wide` writes such ints back digit for
digit (``orjson.Fragment``). Both record paths (reference and batch) use these functions, so they
agree. Limits: an integer literal of more than 4300 digits (Python's ``int`` string limit) or a
flagged record nested deeper than the standard parser's recursion limit is ``invalid-json``.
"""
from __future__ import annotations

import json as _json
import re
from typing import Any

import orjson

from ..errors import FormatError, Reason
from .base import Codec

BIG_INT_DIGITS = 19
"""Digits of the shortest integer literal that may not fit 64 bits (``2**63`` has 19)."""

_AFTER = re.compile(rb"[\[:,][ \t\r\n]*-?[0-9]{19}")
_AT_START = re.compile(rb"[ \t\r\n]*-?[0-9]{19}")
_INT64_MIN, _UINT64_MAX = -(2 ** 63), 2 ** 64 - 1
_MAX_DEPTH = 255
"""orjson's serializer nesting limit: deeper trees fail with ``JSONEncodeError`` anyway."""


def big_int_literal_py(data: bytes | bytearray | memoryview | str) -> bool:
    """Whether ``data`` (JSON text) holds a run of >= 19 ASCII digits at the start of the text or
    right after ``[``, ``:`` or ``,`` (JSON whitespace and a ``-`` sign allowed in between): where
    an integer literal beyond 64 bits would be. Text inside strings may match too (harmless). The
    pure-Python form of ``proxy._native.big_int_literal`` (same answers; tested)."""
    if type(data) is str:
        data = data.encode("utf-8", "surrogatepass")
    return _AFTER.search(data) is not None or _AT_START.match(data) is not None


def _native_screen():
    try:
        from .. import _native
    except ImportError:
        return None
    return getattr(_native, "big_int_literal", None)  # None in a stale build


big_int_literal = _native_screen() or big_int_literal_py
""":func:`big_int_literal_py`, in C when ``proxy._native`` is built (``data``: bytes-like or str)."""


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def loads_exact(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text that orjson already accepted, with integer literals as exact Python ints
    (any size) and every other value as orjson gives it. Raises ``orjson.JSONDecodeError`` for an
    integer of more than 4300 digits or nesting beyond the standard parser's recursion limit."""
    try:
        text = data if type(data) is str else bytes(data).decode("utf-8")
        return _json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise orjson.JSONDecodeError("integer literal out of range or nesting too deep", "", 0) from None


def loads_record(data: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads`` with integers beyond 64 bits exact (:func:`loads_exact` for the records
    :data:`big_int_literal` flags). Raises ``orjson.JSONDecodeError`` for invalid JSON."""
    obj = orjson.loads(data)
    if big_int_literal(data):
        return loads_exact(data)
    return obj


def _wide(node: Any, depth: int, found: list) -> Any:
    t = type(node)
    if t is int:
        if node < _INT64_MIN or node > _UINT64_MAX:
            found.append(1)
            return orjson.Fragment(str(node).encode())
        return node
    if depth > _MAX_DEPTH:
        raise RecursionError
    if t is dict:
        return {k: _wide(v, depth + 1, found) for k, v in node.items()}
    if t is list:
        return [_wide(v, depth + 1, found) for v in node]
    return node


def dumps_wide(tree: Any, error: Exception) -> bytes:
    """Called after ``orjson.dumps(tree)`` raised ``error``: the compact JSON of ``tree`` with every
    ``int`` outside 64 bits written with its exact digits. Raises ``error`` again when ``tree`` has
    no such integer, or is nested deeper than orjson writes (255 levels)."""
    found: list = []
    try:
        wide = _wide(tree, 0, found)
    except RecursionError:
        raise error from None
    if not found:
        raise error
    return orjson.dumps(wide)


def dumps_record(tree: Any) -> bytes:
    """``orjson.dumps`` with integers beyond 64 bits exact (:func:`dumps_wide`). Raises
    ``TypeError``/``orjson.JSONEncodeError`` for a tree JSON cannot hold."""
    try:
        return orjson.dumps(tree)
    except TypeError as e:  # orjson.JSONEncodeError is a TypeError
        return dumps_wide(tree, e)


class JsonCodec(Codec):
    """``bytes`` → any JSON value (:func:`loads_record`); the tree → compact JSON
    (:func:`dumps_record`). Integers beyond 64 bits keep their digits."""

    name = "json"

    def decode(self, data: bytes) -> tuple[Any, Any]:
        try:
            return loads_record(data), None
        except orjson.JSONDecodeError:
            raise FormatError(Reason.DECODE_FAILED, "JSONDecodeError") from None

    def encode(self, tree: Any, ctx: Any) -> bytes:
        try:
            return dumps_record(tree)
        except (TypeError, orjson.JSONEncodeError) as e:
            raise FormatError(Reason.SERIALIZE_FAILED, type(e).__name__) from None
