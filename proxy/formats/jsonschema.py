"""JSON Schema in the Confluent wire format: magic byte 0, the schema id, then JSON text (UTF-8).

Decoding: framing (``not-confluent-framed``), the writer schema fetched by id (``unknown-schema``;
it must be of type ``JSON``), the payload parsed with orjson (``decode-failed``). The writer schema
is not used to reject records: a record the producer wrote is protected as it is.

Encoding: the protected object is validated against the *derived sink schema* (``jsonschema``,
the draft the schema's ``$schema`` names, 2020-12 by default) and framed with that schema's id;
a record that does not validate is dead-lettered (``schema-validation-failed``), never written.
Derivation, per rule path (``properties`` of objects, ``items`` of arrays, ``additionalProperties``
of maps; ``$ref``s to local ``$defs``/``definitions`` are inlined first, ``allOf``/``anyOf``/``oneOf``
branches followed):

* ``mask``, ``pseudonymize``, ``fpe``, ``tokenize``, ``detect`` → ``{"type": "string"}``
  (``["string", "null"]`` when the field allowed null); ``format``, ``pattern``, ``enum``,
  ``minimum``... of the old type go (the value is no longer of that shape);
* ``redact`` → the literal's type plus ``null``;
* ``drop`` → the property disappears from ``properties`` and ``required``;
* ``unlisted_fields: drop`` → only the properties rules name remain, ``additionalProperties: false``
  is kept as the writer had it.
"""
from __future__ import annotations

import copy
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import jsonschema
import orjson

from ..errors import FormatError, Reason
from .base import (DROP, EVERY_ITEM, EVERY_VALUE, KEEP, REWRITE, Codec, RegisteredSchema, SchemaPlan, SchemaSource,
                   claim_tagged, fetch_writer, frame, register_sink, unframe, with_tagged)

log = logging.getLogger("proxy.formats")

_LITERAL_TYPE = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SHAPE_KEYS = ("format", "pattern", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "multipleOf", "minLength", "maxLength", "contentEncoding", "contentMediaType", "properties",
               "required", "items", "additionalProperties", "patternProperties", "minItems", "maxItems")


def _inline_refs(node: Any, root: dict, depth: int = 0) -> Any:
    if depth > 32:
        raise ValueError("$ref nesting deeper than 32 (recursive schema)")
    if isinstance(node, list):
        return [_inline_refs(x, root, depth) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _inline_refs({**copy.deepcopy(target), **rest}, root, depth + 1)
    return {k: (_inline_refs(v, root, depth) if k not in ("$defs", "definitions") else v) for k, v in node.items()}


def _types(node: dict) -> list:
    t = node.get("type")
    return t if isinstance(t, list) else [t] if t else []


def _target(node: dict, effect: str, literal: Any) -> dict:
    nullable = "null" in _types(node)
    base = {k: v for k, v in node.items() if k not in _SHAPE_KEYS and k != "type"}
    if effect == REWRITE:
        if _types(node) in (["string"], ["string", "null"], ["null", "string"]) and not any(
                k in node for k in ("format", "pattern", "enum", "const", "maxLength", "minLength")):
            return node
        return {**base, "type": ["string", "null"] if nullable else "string"}
    if literal is None:
        if not _types(node):
            return node
        return {**node, "type": sorted(set(_types(node)) | {"null"})}
    return {**base, "type": [_LITERAL_TYPE[type(literal)], "null"]}


def _apply(node: Any, segs: tuple, effect: str, literal: Any) -> Any:
    if not isinstance(node, dict) or effect == KEEP:
        return node
    if not segs:
        return _target(node, effect, literal)
    out = dict(node)
    for comb in ("allOf", "anyOf", "oneOf"):
        if comb in node:
            out[comb] = [_apply(b, segs, effect, literal) for b in node[comb]]
    seg, rest = segs[0], segs[1:]
    if isinstance(seg, str):
        props = node.get("properties")
        if isinstance(props, dict) and seg in props:
            if not rest and effect == DROP:
                out["properties"] = {k: v for k, v in props.items() if k != seg}
                if seg in node.get("required", []):
                    out["required"] = [r for r in node["required"] if r != seg]
            else:
                out["properties"] = {**props, seg: _apply(props[seg], rest, effect, literal)}
        elif isinstance(node.get("additionalProperties"), dict) and not (not rest and effect == DROP):
            old = node["additionalProperties"]
            new = _apply(old, rest, effect, literal)
            out["additionalProperties"] = old if new == old else {"anyOf": [old, new]}
    elif isinstance(node.get("items"), dict) and not (not rest and effect == DROP):
        out["items"] = _apply(node["items"], rest, effect, literal)
    return out


def _prune(node: Any, tree: Any) -> Any:
    if tree is True or not isinstance(node, dict):
        return node
    out = dict(node)
    props = node.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: _prune(v, tree[k]) for k, v in props.items() if k in tree}
        if "required" in node:
            out["required"] = [r for r in node["required"] if r in tree]
    if isinstance(node.get("items"), dict):
        wild = [v for k, v in tree.items() if not isinstance(k, str)]
        if wild:
            out["items"] = _prune(node["items"], wild[0])
    return out


_ANY_KEY = "\x00any key"  # a property name no schema has: the deriver goes to additionalProperties


def tagged_paths(node: Any, tags: set[str]) -> dict[str, list[tuple]]:
    """Paths of the properties of an inlined schema (:func:`_inline_refs`) whose schema carries one
    of ``tags`` in ``confluent:tags``, per tag: ``properties`` by name, ``items`` as
    :data:`EVERY_ITEM`, ``additionalProperties`` as :data:`EVERY_VALUE`, through ``allOf``/``anyOf``/
    ``oneOf`` branches."""
    out: dict[str, list[tuple]] = {}

    def walk(node: Any, prefix: tuple) -> None:
        if not isinstance(node, dict):
            return
        ftags = node.get("confluent:tags")
        if prefix and isinstance(ftags, list):
            for tag in dict.fromkeys(x for x in ftags if x in tags):
                if prefix not in out.setdefault(tag, []):
                    out[tag].append(prefix)
        for comb in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(comb), list):
                for b in node[comb]:
                    walk(b, prefix)
        if isinstance(node.get("properties"), dict):
            for k, v in node["properties"].items():
                walk(v, prefix + (k,))
        if isinstance(node.get("items"), dict):
            walk(node["items"], prefix + (EVERY_ITEM,))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], prefix + (EVERY_VALUE,))

    walk(node, ())
    return out


def derive_schema(writer: dict, plan: SchemaPlan) -> dict:
    """The sink JSON Schema of ``writer`` under ``plan`` (module doc)."""
    node = _inline_refs(writer, writer)
    for segs, effect, literal in plan.rules:
        node = _apply(node, segs, effect, literal)
    if plan.allow is not None:
        node = _prune(node, plan.allow)
    return node


@dataclass(frozen=True)
class _Writer:
    validator: Any
    sink_id: int
    tag_paths: tuple = ()
    """Per tag rule of the plan, the paths of this writer schema it protects (:func:`claim_tagged`)."""


class JsonSchemaCodec(Codec):
    """Confluent-framed JSON against JSON Schemas of ``source`` (module doc)."""

    name = "jsonschema"

    def __init__(self, source: SchemaSource, plan: SchemaPlan, subject_of: Callable[[str], str]):
        self._source, self._plan, self._subject_of = source, plan, subject_of
        self._writers: dict[int, _Writer] = {}
        self._lock = threading.Lock()

    def writer(self, schema_id: int) -> _Writer:
        """The cached validator and sink id of writer ``schema_id`` (see :class:`AvroCodec.writer`)."""
        w = self._writers.get(schema_id)
        if w is not None:
            return w
        with self._lock:
            reg = fetch_writer(self._source, schema_id, "JSON")
            try:
                writer = json.loads(reg.schema_str)
                plan, tag_paths = self._plan, ()
                if plan.tags:
                    tag_paths = claim_tagged(plan, tagged_paths(_inline_refs(writer, writer),
                                                                {t for t, _, _ in plan.tags}))
                    plan = with_tagged(plan, tag_paths, _ANY_KEY)
                sink = derive_schema(writer, plan)
                cls = jsonschema.validators.validator_for(sink, default=jsonschema.Draft202012Validator)
                cls.check_schema(sink)
                validator = cls(sink)
            except (ValueError, KeyError, TypeError, jsonschema.SchemaError) as e:
                log.error("no sink schema for writer schema", extra={"schema_id": schema_id,
                                                                     "error_class": type(e).__name__})
                raise FormatError(Reason.SERIALIZE_FAILED, "cannot derive the sink schema") from None
            title = writer.get("title") if isinstance(writer, dict) else None
            subject = self._subject_of(str(title or "record"))
            sink_id = register_sink(self._source, subject, RegisteredSchema("JSON", json.dumps(sink)))
            w = self._writers[schema_id] = _Writer(validator, sink_id, tag_paths)
            return w

    def decode(self, data: bytes) -> tuple[Any, Any]:
        schema_id, payload = unframe(data)
        w = self.writer(schema_id)
        try:
            return orjson.loads(payload), w
        except orjson.JSONDecodeError:
            raise FormatError(Reason.DECODE_FAILED, "JSONDecodeError") from None

    def encode(self, tree: Any, ctx: Any) -> bytes:
        if not ctx.validator.is_valid(tree):
            raise FormatError(Reason.SCHEMA_VALIDATION_FAILED)
        try:
            return frame(ctx.sink_id, orjson.dumps(tree))
        except (TypeError, orjson.JSONEncodeError) as e:
            raise FormatError(Reason.SERIALIZE_FAILED, type(e).__name__) from None
