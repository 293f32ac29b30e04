"""The small base class every transform implements, and the build context it gets at load time.

A transform is built once per rule when a policy is compiled (keys resolved, ciphers keyed, tables
precomputed) and then called once per selected value on the record path, where it does no lookups
and no validation beyond what the value itself needs.

Handling of JSON types (documented in README, "Policy format"):

* ``null`` stays ``null`` for every value-rewriting action (there is nothing to protect);
* numbers are rewritten through their JSON text (``42`` → ``"42"``) and come out as strings;
* booleans, objects and arrays cannot be masked, encrypted or pseudonymized value-wise: the
  record fails closed (dead-letter, reason ``unsupported-type``); use ``redact`` or ``drop`` for them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import datetime as _dt
import decimal as _decimal
import uuid as _uuid

import orjson

from ..crypto.keys import KeyRing, SecretKey
from ..errors import Reason, TransformError


@dataclass(frozen=True)
class BuildContext:
    """What a transform may use when it is built: policy name, the route, and resolved keys."""

    policy_name: str
    route_name: str
    keys: Mapping[str, SecretKey]
    keyrings: Mapping[str, KeyRing] | None = None
    part: str = ""
    """Which part of the record the rules protect: ``""`` (the value), ``"key"``, ``"header"``."""
    max_detect_chars: int = 1024 * 1024
    """The route's ``limits.max_detect_chars``: longest string a ``detect`` rule scans."""

    def keyring(self, name: str) -> KeyRing:
        """All versions of key ``name`` (a single-version ring when only ``keys`` was given)."""
        if self.keyrings is not None and name in self.keyrings:
            return self.keyrings[name]
        return KeyRing(name, {1: self.keys[name]})

    def binding(self, rule) -> str:
        """Context string binding outputs to a ``domain`` or, by default, to policy + field path."""
        domain = getattr(rule, "domain", None)
        if domain:
            return f"domain:{domain}"
        if self.part == "key":      # field:<policy>:@key (a whole key) or field:<policy>:@key.<path>
            return f"field:{self.policy_name}:@key" + (f".{rule.field}" if rule.field else "")
        if self.part == "header":   # field:<policy>:@header:<name or glob>
            return f"field:{self.policy_name}:@header:{rule.header}"
        return f"field:{self.policy_name}:{rule.field}"


class Transform(ABC):
    """Base class: build from a rule at load time, then ``apply(value)`` per value.

    ``apply`` returns the replacement value, or raises :class:`TransformError` (never with the value
    in its message). Reversible transforms also implement ``reverse``.
    """

    action: ClassVar[str]
    reversible: ClassVar[bool] = False

    def __init__(self, rule, ctx: BuildContext):
        self.rule = rule

    @abstractmethod
    def apply(self, value: Any) -> Any:
        """Protected replacement for one JSON value."""

    def reverse(self, value: Any, version: int | None = None) -> Any:
        """Undo :meth:`apply` (re-identification) where the transform allows it, with key
        ``version`` (default: the current one)."""
        raise TransformError(Reason.UNSUPPORTED_TYPE, f"{self.action} is one-way")

    def compile_apply(self) -> Callable[[Any], Any]:
        """The record path's callable for one value: same results and errors as :meth:`apply`,
        built once (at policy load) so that a call costs as little as the transform allows.
        The default is :meth:`apply` itself; hot transforms return a specialized closure, and
        ``tests/unit/test_hotpath.py`` checks every one against :meth:`apply`."""
        return self.apply

    def __repr__(self) -> str:
        return f"{type(self).__name__}(field={(self.rule.field or self.rule.header or '@key')!r})"


def as_text(value: Any) -> str:
    """The text a value-rewriting transform works on: strings as they are, numbers as JSON text.

    Raises :class:`TransformError` (``unsupported-type``) for booleans, objects and arrays.
    """
    t = type(value)
    if t is str:
        return value
    if t is int:  # exact at any size (integers beyond 64 bits: proxy.formats.json.loads_record)
        return str(value)
    if t is float:
        return orjson.dumps(value).decode()
    if t in _TEXT_TYPES:  # Avro/Protobuf logical types: date, timestamp, decimal, uuid
        return _TEXT_TYPES[t](value)
    raise TransformError(Reason.UNSUPPORTED_TYPE, f"cannot rewrite a {_json_type(value)} value")


_TEXT_TYPES = {
    _dt.date: _dt.date.isoformat,            # 2024-01-31
    _dt.datetime: _dt.datetime.isoformat,    # 2024-01-31T12:00:00+00:00 (ISO 8601)
    _dt.time: _dt.time.isoformat,
    _decimal.Decimal: str,                   # 12.50 (exact, as the decimal's scale gives it)
    _uuid.UUID: str,                         # canonical 8-4-4-4-12 lower-case hex
}
"""Values of schema formats' logical types (Avro ``date``, ``timestamp-millis``, ``decimal``,
``uuid``; Protobuf ``Timestamp``) rewrite through their standard text, like numbers through
their JSON text."""


def _json_type(value: Any) -> str:
    return {bool: "boolean", dict: "object", list: "array"}.get(type(value), type(value).__name__)


class TextTransform(Transform):
    """Transform over text: ``null`` passes, numbers become strings, other types fail closed."""

    def apply(self, value: Any) -> Any:
        if value is None:
            return None
        return self.apply_text(value if type(value) is str else as_text(value))

    def reverse(self, value: Any, version: int | None = None) -> Any:
        if value is None:
            return None
        if type(value) is not str:
            raise TransformError(Reason.UNSUPPORTED_TYPE, "protected values are strings")
        return self.reverse_text(value, version)

    def compile_apply(self) -> Callable[[Any], Any]:
        """``apply`` as one closure over :meth:`apply_text` (strings straight through)."""
        apply_text = self.apply_text

        def apply(value: Any) -> Any:
            if type(value) is str:
                return apply_text(value)
            if value is None:
                return None
            return apply_text(as_text(value))
        return apply

    @abstractmethod
    def apply_text(self, text: str) -> str:
        """Protect one string."""

    def reverse_text(self, text: str, version: int | None = None) -> str:
        raise TransformError(Reason.UNSUPPORTED_TYPE, f"{self.action} is one-way")
