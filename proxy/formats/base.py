"""The small base every codec implements, the Confluent wire format, and what a codec may ask of
a schema registry.

A codec turns the bytes of one record part (value or key) into a *tree* the policy engine works
on (JSON-like: ``dict``, ``list``, ``str``, numbers, ``bool``, ``None``; schema formats add
``bytes`` and logical-type values such as ``datetime.date``) and a tree back into bytes::

    tree, ctx = codec.decode(data)      # FormatError(reason) for bytes it cannot read
    data = codec.encode(tree, ctx)      # FormatError(serialize-failed) for a tree it cannot write

``ctx`` is what the codec needs to write the tree back (for schema formats: the writer schema and
the derived sink schema); it never holds record data beyond the tree itself. Codecs never import
Kafka (import-linter contract): a schema registry reaches them as a :class:`SchemaSource`.

Confluent wire format (Confluent, "Schema Registry: Wire format")::

    byte 0      magic byte 0
    bytes 1-4   schema id, 32-bit big-endian
    bytes 5-    the payload (Avro binary; Protobuf: message indexes, then the message; JSON text)
"""
from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..errors import FormatError, Reason

MAGIC = 0
_ID = struct.Struct(">I")


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as the registry holds it: ``schema_type`` (``AVRO``, ``PROTOBUF``, ``JSON``),
    ``schema_str`` (the schema text) and ``references`` (``(name, subject, version)`` tuples)."""

    schema_type: str
    schema_str: str
    references: tuple[tuple[str, str, int], ...] = field(default=())


class SchemaSource(Protocol):
    """What codecs ask of a schema registry (:mod:`proxy.schemaregistry` implements it over the
    Confluent REST API). Both methods raise :class:`~proxy.errors.DependencyUnavailable` when the
    registry cannot be reached; ``schema_by_id`` raises ``KeyError`` for an id it does not hold."""

    def schema_by_id(self, schema_id: int) -> RegisteredSchema: ...

    def schema_by_version(self, subject: str, version: int) -> RegisteredSchema: ...

    def register(self, subject: str, schema: RegisteredSchema) -> int: ...


def unframe(data: bytes) -> tuple[int, memoryview]:
    """``(schema id, payload)`` of Confluent-framed bytes. Raises :class:`FormatError`
    (``not-confluent-framed``) for fewer than 5 bytes or a magic byte other than 0."""
    if len(data) < 5 or data[0] != MAGIC:
        raise FormatError(Reason.NOT_CONFLUENT_FRAMED)
    return _ID.unpack_from(data, 1)[0], memoryview(data)[5:]


def frame(schema_id: int, payload: bytes) -> bytes:
    """Confluent-framed bytes: magic byte 0, ``schema_id`` (big-endian 32-bit), ``payload``."""
    return b"\x00" + _ID.pack(schema_id) + payload


class Codec(ABC):
    """Base class of the formats: ``decode(bytes) -> (tree, ctx)``, ``encode(tree, ctx) -> bytes``."""

    name: ClassVar[str]
    structured: ClassVar[bool] = True
    """Whether trees are objects whose fields rules name by path (``False``: one scalar)."""

    @abstractmethod
    def decode(self, data: bytes) -> tuple[Any, Any]:
        """The tree of ``data`` and the context :meth:`encode` needs. Raises :class:`FormatError`."""

    @abstractmethod
    def encode(self, tree: Any, ctx: Any) -> bytes:
        """Bytes of a (protected) tree. Raises :class:`FormatError` (``serialize-failed``)."""


def fetch_writer(source: SchemaSource, schema_id: int, schema_type: str) -> RegisteredSchema:
    """The writer schema ``schema_id`` of type ``schema_type`` (``AVRO``, ``PROTOBUF``, ``JSON``).
    Raises :class:`FormatError` (``unknown-schema``) for an id the registry does not hold or a
    schema of another type; ``DependencyUnavailable`` propagates."""
    try:
        reg = source.schema_by_id(schema_id)
    except KeyError:
        raise FormatError(Reason.UNKNOWN_SCHEMA) from None
    if reg.schema_type.upper() != schema_type:
        raise FormatError(Reason.UNKNOWN_SCHEMA, f"schema {schema_id} is {reg.schema_type}, not {schema_type}")
    return reg


def register_sink(source: SchemaSource, subject: str, schema: RegisteredSchema) -> int:
    """Register a derived sink schema; its id. Raises :class:`FormatError`
    (``sink-schema-rejected``) when the registry refuses it (logged with the subject)."""
    import logging
    try:
        return source.register(subject, schema)
    except ValueError:
        logging.getLogger("proxy.formats").error("schema registry rejected the derived sink schema",
                                                 extra={"subject": subject})
        raise FormatError(Reason.SINK_SCHEMA_REJECTED) from None


REWRITE, REDACT, DROP, KEEP = "rewrite", "redact", "drop", "keep"


@dataclass(frozen=True)
class SchemaPlan:
    """What a route's rules do to the types of a schema, for deriving the sink schema.

    ``rules``: ``(path segments, effect, literal)`` per rule, with ``effect`` one of ``rewrite``
    (mask, pseudonymize, fpe, tokenize, detect: the value becomes a string), ``redact`` (replaced
    by ``literal``), ``drop`` (removed), ``keep``. ``allow`` is the allow-list tree of
    ``unlisted_fields: drop`` (see :func:`proxy.policy.compiler._allow_tree`), else ``None``.
    """

    rules: tuple[tuple[tuple, str, Any], ...] = ()
    allow: Any = None
    tags: tuple[tuple[str, str, Any], ...] = ()
    """``(tag, effect, literal)`` per ``select: {tag: ...}`` rule, in policy order: the fields of a
    writer schema carrying the tag (``confluent:tags``) get the rule (see :func:`claim_tagged`)."""


class _Segment:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


EVERY_ITEM = _Segment("[*]")
"""Path segment of a tagged field's path: every element of an array."""
EVERY_VALUE = _Segment("{*}")
"""Path segment of a tagged field's path: every value of a map (Avro ``map``, JSON Schema
``additionalProperties``), whatever its key."""


def claim_tagged(plan: SchemaPlan, tagged: dict[str, list[tuple]]) -> tuple[tuple[tuple, ...], ...]:
    """Per tag rule of ``plan`` (in order), the paths of a writer schema it protects: the paths
    ``tagged[tag]`` (segments ``str``, :data:`EVERY_ITEM`, :data:`EVERY_VALUE`) that no field rule
    names and no earlier tag rule claimed. Field rules win over tag rules; the first tag rule wins
    over later ones, so every path gets at most one rule."""
    def norm(segs: tuple) -> tuple:
        return tuple(s if isinstance(s, (str, int)) else EVERY_ITEM for s in segs)

    claimed = {norm(segs) for segs, _, _ in plan.rules}
    out = []
    for tag, _effect, _literal in plan.tags:
        mine = []
        for segs in tagged.get(tag, ()):
            if segs not in claimed:
                claimed.add(segs)
                mine.append(segs)
        out.append(tuple(mine))
    return tuple(out)


def with_tagged(plan: SchemaPlan, paths: tuple[tuple[tuple, ...], ...], map_key: str) -> SchemaPlan:
    """``plan`` with the claimed tagged ``paths`` (:func:`claim_tagged`) as rules, for deriving a
    sink schema; :data:`EVERY_VALUE` becomes ``map_key`` (a key the deriver takes for "any key")."""
    extra = tuple((tuple(map_key if s is EVERY_VALUE else s for s in segs), effect, literal)
                  for (_, effect, literal), mine in zip(plan.tags, paths) for segs in mine)
    return SchemaPlan(plan.rules + extra, plan.allow, plan.tags)



def merge_allow_trees(a: Any, b: Any) -> Any:
    """Union of two allow-list trees (``True`` = the whole subtree is listed); see :class:`SchemaPlan`."""
    if a is True or b is True:
        return True
    out = dict(a)
    for k, v in b.items():
        out[k] = merge_allow_trees(out[k], v) if k in out else v
    return out
