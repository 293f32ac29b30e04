"""Apache Avro in the Confluent wire format, through a schema registry (fastavro for the binary
encoding; Avro 1.11 specification).

Decoding: magic byte 0 and the writer schema id (else ``not-confluent-framed``), the writer schema
fetched from the registry by id and cached (an id the registry does not hold: ``unknown-schema``),
the payload read with it (bytes that do not decode, or bytes left over: ``decode-failed``). The
tree is what fastavro gives: records and maps as ``dict``, arrays as ``list``, a union as the
value of its branch, ``bytes``/``fixed`` as ``bytes``, logical types as Python values (``date`` →
``datetime.date``, ``timestamp-millis``/``-micros`` → ``datetime.datetime`` in UTC, ``decimal`` →
``decimal.Decimal``, ``uuid`` → ``uuid.UUID``).

Encoding: with the *derived sink schema* of the writer schema, registered under the sink subject;
the record carries that schema's id. Derivation rules (:func:`derive_schema`), per rule's path:

* ``mask``, ``pseudonymize``, ``fpe``, ``tokenize``, ``detect`` → the field's type becomes
  ``"string"`` (``["null", "string"]`` when it was nullable; a logical type is dropped: values are
  rewritten through their ISO 8601 / decimal text); a field that was a string keeps its type;
* ``redact`` → ``["null", T]``, with ``T`` the literal's type (``string``, ``long``, ``double``,
  ``boolean``) or, for a ``null`` literal, the field's own type; default ``null``;
* ``drop`` → the field disappears from its record (a dropped array element: the array stays);
* ``unlisted_fields: drop`` → fields no rule names disappear;
* a changed field loses a ``default`` that no longer fits its type (nullable ones default to null);
* a rule through an array (``a[*].b``, ``a[0].b``) changes the item type; through a map
  (``m.k.b``) the map's value type becomes the union of the old and the new type, since other
  keys keep theirs;
* a named type (record, enum, fixed) used in several places is expanded at each, so a rule on one
  use changes only that one: the derived schema defines it at its first use and refers to it by
  name where it is unchanged, and gives a changed copy a new name (``<name>_dpp<N>``); every other
  attribute (``doc``, ``aliases``, ``confluent:tags``, ``namespace``) is kept.

The derived schema is self-contained (referenced schemas are inlined). When the source evolves (a
new writer id), the new writer schema derives a new sink schema, registered as the next version of
the sink subject, without a restart.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import fastavro
import fastavro._read_py as _read_py
import fastavro._write_py as _write_py
from fastavro.schema import SchemaParseException

from ..errors import FormatError, Reason
from .base import (DROP, EVERY_ITEM, EVERY_VALUE, KEEP, REWRITE, Codec, RegisteredSchema, SchemaPlan, SchemaSource,
                   claim_tagged, fetch_writer, frame, merge_allow_trees, register_sink, unframe, with_tagged)

log = logging.getLogger("proxy.formats")

MAX_SCHEMA_DEPTH = 64
"""Nesting of types a writer schema may have (deeper ones: the records dead-letter)."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
_REF = "__dpp_ref__"
_LITERAL_TYPE = {str: "string", int: "long", float: "double", bool: "boolean"}


# --------------------------------------------------------------------------- derivation
def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _space(fullname: str) -> str | None:
    return fullname.rsplit(".", 1)[0] if "." in fullname else None


def _expand(t: Any, ns: str | None, names: dict[str, Any], stack: tuple) -> Any:
    """``t`` with every named-type reference replaced by a copy of its definition (a reference to a
    type being defined, i.e. recursion, stays ``{_REF: fullname}``); names made full."""
    if isinstance(t, str):
        if t in PRIMITIVES:
            return t
        full = _fullname(t, ns)
        if full not in names and t in names:
            full = t  # a name of the null namespace used inside a namespace
        if full in stack:
            return {_REF: full}
        if full not in names:
            raise SchemaParseException(f"unknown type {t!r}")
        return _expand(copy.deepcopy(names[full]), _space(full), names, stack)
    if isinstance(t, list):
        return [_expand(b, ns, names, stack) for b in t]
    if not isinstance(t, dict):
        raise SchemaParseException("a type is a name, a list (union) or an object")
    kind = t.get("type")
    if kind in NAMED:
        full = _fullname(t["name"], t.get("namespace", ns))
        out = {k: v for k, v in t.items() if k != "namespace"}
        out["name"] = full
        names.setdefault(full, copy.deepcopy(out))
        inner = _space(full)
        if kind in ("record", "error"):
            out["fields"] = [{**f, "type": _expand(f["type"], inner, names, stack + (full,))} for f in t["fields"]]
        return out
    if kind == "array":
        return {**t, "items": _expand(t["items"], ns, names, stack)}
    if kind == "map":
        return {**t, "values": _expand(t["values"], ns, names, stack)}
    if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in PRIMITIVES):
        return _expand(kind, ns, names, stack)  # {"type": {...}} / {"type": "Name"} wrappers
    return t


def _branches(t: Any) -> list:
    return t if isinstance(t, list) else [t]


def _nullable(t: Any) -> bool:
    return any(b == "null" or (isinstance(b, dict) and b.get("type") == "null") for b in _branches(t))


def _is_plain_string(t: Any) -> bool:
    return t == "string" or (isinstance(t, dict) and t.get("type") == "string" and "logicalType" not in t)


def _target(t: Any, effect: str, literal: Any) -> Any:
    """The type of a field after a rule with ``effect`` rewrote it (see the module doc)."""
    if effect == KEEP:
        return t
    if effect == REWRITE:
        if _is_plain_string(t):
            return t
        if isinstance(t, list) and all(b == "null" or _is_plain_string(b) for b in t):
            return t
        return ["null", "string"] if _nullable(t) else "string"
    # REDACT
    if literal is None:
        others = [b for b in _branches(t) if b != "null"]
        return ["null", *others]
    return ["null", _LITERAL_TYPE[type(literal)]]


def _is_wild(seg: Any) -> bool:
    return not isinstance(seg, (str, int))


def _apply(t: Any, segs: tuple, effect: str, literal: Any) -> Any:
    """``t`` after a rule at ``segs`` below it; ``DROP`` at a record field removes the field."""
    if not segs:
        return _target(t, effect, literal)
    if isinstance(t, list):
        return [b if b == "null" else _apply(b, segs, effect, literal) for b in t]
    if not isinstance(t, dict):
        return t  # the path goes on below a primitive: nothing to change in the type
    seg, rest = segs[0], segs[1:]
    kind = t.get("type")
    if kind in ("record", "error") and isinstance(seg, str):
        fields = []
        for f in t["fields"]:
            if f["name"] != seg:
                fields.append(f)
                continue
            if not rest and effect == DROP:
                continue
            new = _apply(f["type"], rest, effect, literal)
            g = {**f, "type": new}
            if new != f["type"] and "default" in g:
                del g["default"]
                if isinstance(new, list) and new and new[0] == "null":
                    g["default"] = None
            elif new != f["type"] and isinstance(new, list) and new and new[0] == "null":
                g["default"] = None
            fields.append(g)
        return {**t, "fields": fields}
    if kind == "array" and (_is_wild(seg) or isinstance(seg, int)):
        if not rest and effect == DROP:
            return t
        return {**t, "items": _apply(t["items"], rest, effect, literal)}
    if kind == "map" and isinstance(seg, str):
        if not rest and effect == DROP:
            return t
        old = t["values"]
        new = _apply(old, rest, effect, literal)
        if new == old:
            return t
        merged = list(_branches(old))
        for b in _branches(new):
            if b not in merged:
                merged.append(b)
        return {**t, "values": merged}
    return t


def _prune(t: Any, tree: Any) -> Any:
    """Keep only the fields the allow-list ``tree`` names (``True``: the whole subtree)."""
    if tree is True:
        return t
    if isinstance(t, list):
        return [_prune(b, tree) for b in t]
    if not isinstance(t, dict):
        return t
    kind = t.get("type")
    if kind in ("record", "error"):
        return {**t, "fields": [{**f, "type": _prune(f["type"], tree[f["name"]])}
                                for f in t["fields"] if f["name"] in tree]}
    if kind == "array":
        wild = [v for k, v in tree.items() if _is_wild(k) or isinstance(k, int)]
        return {**t, "items": _prune(t["items"], wild[0])} if wild else t
    if kind == "map":  # the value type must allow what any listed key keeps: the union of their subtrees
        subs = list(tree.values())
        merged = subs[0] if subs else {}
        for sub in subs[1:]:
            merged = merge_allow_trees(merged, sub)
        return {**t, "values": _prune(t["values"], merged)}
    return t



def _collapse(t: Any, defined: dict[str, str]) -> Any:
    """Named types defined once (first use), referred to by name where identical, renamed where
    a rule changed a copy."""
    if isinstance(t, list):
        return [_collapse(b, defined) for b in t]
    if not isinstance(t, dict):
        return t
    if _REF in t:
        return t[_REF]
    kind = t.get("type")
    if kind in NAMED:
        out = dict(t)
        if kind in ("record", "error"):
            out["fields"] = [{**f, "type": _collapse(f["type"], defined)} for f in t["fields"]]
        base = out["name"]
        canon = json.dumps({k: v for k, v in out.items() if k != "name"}, sort_keys=True)
        name, n = base, 1
        while name in defined and defined[name] != canon:
            n += 1
            name = f"{base}_dpp{n}"
        if name in defined:
            return name
        defined[name] = canon
        out["name"] = name
        return out
    if kind == "array":
        return {**t, "items": _collapse(t["items"], defined)}
    if kind == "map":
        return {**t, "values": _collapse(t["values"], defined)}
    return t


TAGS = "confluent:tags"


def tagged_paths(t: Any, tags: set[str] | None) -> dict[str, list[tuple]]:
    """Paths of the fields of an expanded schema (:func:`_expand`) carrying one of ``tags`` (every
    tag for ``None``) in their ``confluent:tags`` (Confluent data contracts), per tag: record fields by name, array
    items as :data:`EVERY_ITEM`, map values as :data:`EVERY_VALUE`, every union branch. A named type
    used in several places is found at each use; a recursive reference is not followed (its tagged
    fields are found at the first level only)."""
    out: dict[str, list[tuple]] = {}

    def walk(t: Any, prefix: tuple) -> None:
        if isinstance(t, list):
            for b in t:
                walk(b, prefix)
            return
        if not isinstance(t, dict) or _REF in t:
            return
        kind = t.get("type")
        if kind in ("record", "error"):
            for f in t["fields"]:
                path = prefix + (f["name"],)
                ftags = f.get(TAGS)
                if isinstance(ftags, list):
                    for tag in dict.fromkeys(x for x in ftags if isinstance(x, str) and (tags is None or x in tags)):
                        if path not in out.setdefault(tag, []):
                            out[tag].append(path)
                walk(f["type"], path)
        elif kind == "array":
            walk(t["items"], prefix + (EVERY_ITEM,))
        elif kind == "map":
            walk(t["values"], prefix + (EVERY_VALUE,))

    walk(t, ())
    return out


def derive_schema(writer: Any, plan: SchemaPlan, named: dict[str, Any] | None = None) -> Any:
    """The sink schema (JSON form) of ``writer`` (JSON form) under ``plan`` (module doc).
    ``named``: definitions of referenced named types (full name → JSON form).
    Raises ``SchemaParseException`` for a schema it cannot read."""
    names = dict(named or {})
    t = _expand(writer, None, names, ())
    for segs, effect, literal in plan.rules:
        t = _apply(t, segs, effect, literal)
    if plan.allow is not None:
        t = _prune(t, plan.allow)
    return _collapse(t, {})


# --------------------------------------------------------------------------- the codec
@dataclass(frozen=True)
class _Writer:
    """One writer schema: parsed for reading, its derived sink schema parsed for writing, the
    sink schema's registry id, and the reader/writer functions: fastavro's C ones, or for a
    recursive schema its pure-Python ones (a record nested thousands deep overflows the C stack
    and kills the process; in Python it ends in a ``RecursionError``: ``decode-failed``)."""

    parsed: Any
    sink_parsed: Any
    sink_id: int
    read: Any = fastavro.schemaless_reader
    write: Any = fastavro.schemaless_writer
    tag_paths: tuple = ()
    """Per tag rule of the plan, the paths of this writer schema it protects (:func:`claim_tagged`)."""


def _check_shape(t: Any, depth: int = 0) -> None:
    """Refuse writer schemas the decoder cannot read safely: nesting deeper than
    :data:`MAX_SCHEMA_DEPTH`, and arrays or maps whose items can encode to zero bytes (``null``,
    an empty record): a 16-byte record could declare 2**40 of them (time and memory)."""
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaParseException(f"types nest deeper than {MAX_SCHEMA_DEPTH}")
    if isinstance(t, list):
        for b in t:
            _check_shape(b, depth + 1)
    elif isinstance(t, dict):
        kind = t.get("type")
        if kind in ("record", "error"):
            for f in t["fields"]:
                _check_shape(f["type"], depth + 1)
        elif kind in ("array", "map"):
            items = t["items"] if kind == "array" else t["values"]
            if _zero_width(items):
                raise SchemaParseException(f"{kind} of items that encode to zero bytes")
            _check_shape(items, depth + 1)


def _zero_width(t: Any) -> bool:
    if t == "null" or (isinstance(t, dict) and t.get("type") == "null"):
        return True
    if isinstance(t, dict) and t.get("type") in ("record", "error"):
        return all(_zero_width(f["type"]) for f in t["fields"])
    if isinstance(t, dict) and t.get("type") == "fixed":
        return t.get("size") == 0
    return False


def _recursive(t: Any) -> bool:
    """Whether an expanded schema (:func:`_expand`) refers to a type being defined."""
    if isinstance(t, list):
        return any(_recursive(b) for b in t)
    if not isinstance(t, dict):
        return False
    if _REF in t:
        return True
    kind = t.get("type")
    if kind in ("record", "error"):
        return any(_recursive(f["type"]) for f in t["fields"])
    if kind == "array":
        return _recursive(t["items"])
    if kind == "map":
        return _recursive(t["values"])
    return False


def record_fullname(schema: Any) -> str:
    """Full name of a schema's top-level named type (RecordNameStrategy), else its type name."""
    if isinstance(schema, dict) and schema.get("type") in NAMED:
        return _fullname(schema["name"], schema.get("namespace"))
    return schema if isinstance(schema, str) else "union" if isinstance(schema, list) else str(schema.get("type"))


class AvroCodec(Codec):
    """Confluent-framed Avro against ``source``; sink schemas derived by ``plan`` and registered
    under ``subject_of(top-level record full name)``.

    Thread-safe for its cache; registry calls raise :class:`~proxy.errors.DependencyUnavailable`
    when the registry is down (the engine then retries the batch)."""

    name = "avro"

    def __init__(self, source: SchemaSource, plan: SchemaPlan, subject_of: Callable[[str], str]):
        self._source, self._plan, self._subject_of = source, plan, subject_of
        self._writers: dict[int, _Writer] = {}
        self._lock = threading.Lock()

    def _named(self, schema: RegisteredSchema, into: dict, depth: int = 0) -> None:
        """Load referenced schemas' named types into ``into`` (full name → JSON form)."""
        if depth > 16:
            raise SchemaParseException("schema references nest more than 16 deep")
        for _name, subject, version in schema.references:
            ref = self._source.schema_by_version(subject, version)
            self._named(ref, into, depth + 1)
            _expand(json.loads(ref.schema_str), None, into, ())

    def writer(self, schema_id: int) -> _Writer:
        """The cached :class:`_Writer` of ``schema_id`` (fetched, derived and registered once).
        Raises :class:`FormatError` (``unknown-schema``; ``serialize-failed`` when no sink schema
        can be derived or the registry rejects it) or ``DependencyUnavailable``."""
        w = self._writers.get(schema_id)
        if w is not None:
            if type(w) is Reason:  # a new exception each time: re-raising one would grow its traceback
                raise FormatError(w, "cannot derive the sink schema")
            return w
        with self._lock:
            try:
                w = self._writers[schema_id] = self._derive(schema_id)
            except FormatError as e:
                if e.reason == Reason.SERIALIZE_FAILED:  # a schema id never changes: nor does its derivation
                    self._writers[schema_id] = e.reason
                raise
            return w

    def _derive(self, schema_id: int) -> _Writer:
        reg = fetch_writer(self._source, schema_id, "AVRO")
        try:
            named: dict = {}
            self._named(reg, named)
            writer_json = json.loads(reg.schema_str)
            expanded = _expand(writer_json, None, dict(named), ())
            _check_shape(expanded)
            named_parsed: dict = {}
            for full, definition in named.items():
                fastavro.parse_schema(definition, named_schemas=named_parsed)
            parsed = fastavro.parse_schema(writer_json, named_schemas=named_parsed)
            plan, tag_paths = self._plan, ()
            if plan.tags:
                tag_paths = claim_tagged(plan, tagged_paths(expanded, {t for t, _, _ in plan.tags}))
                plan = with_tagged(plan, tag_paths, "*")
            sink_json = derive_schema(writer_json, plan, named)
            sink_parsed = fastavro.parse_schema(sink_json, named_schemas={})
        except Exception as e:  # noqa: BLE001 - any schema it cannot derive (RecursionError too): fail closed
            log.error("no sink schema for writer schema", extra={"schema_id": schema_id,
                                                                 "error_class": type(e).__name__})
            raise FormatError(Reason.SERIALIZE_FAILED, "cannot derive the sink schema") from None
        subject = self._subject_of(record_fullname(writer_json))
        sink_id = register_sink(self._source, subject, RegisteredSchema("AVRO", json.dumps(sink_json)))
        rec = _recursive(expanded)
        read, write = ((_read_py.schemaless_reader, _write_py.schemaless_writer) if rec
                       else (fastavro.schemaless_reader, fastavro.schemaless_writer))
        w = _Writer(parsed, sink_parsed, sink_id, read, write, tag_paths)
        log.info("sink schema derived", extra={"schema_id": schema_id, "subject": subject, "sink_schema_id": sink_id})
        return w

    def decode(self, data: bytes) -> tuple[Any, Any]:
        schema_id, payload = unframe(data)
        w = self.writer(schema_id)
        bio = io.BytesIO(payload)
        try:
            tree = w.read(bio, w.parsed, None)
        except BaseException as e:  # RecursionError, MemoryError included; never KeyboardInterrupt
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise  # noqa: BLE001 - any failure of the reader on hostile bytes fails closed
            raise FormatError(Reason.DECODE_FAILED) from None
        if bio.tell() != len(payload):
            raise FormatError(Reason.DECODE_FAILED, "bytes left after the record")
        return tree, w

    def encode(self, tree: Any, ctx: Any) -> bytes:
        bio = io.BytesIO()
        try:
            ctx.write(bio, ctx.sink_parsed, tree)
        except Exception as e:  # noqa: BLE001 - a protected tree that does not fit fails closed
            raise FormatError(Reason.SERIALIZE_FAILED, type(e).__name__) from None
        return frame(ctx.sink_id, bio.getvalue())


class AvroReader:
    """Decode-only Avro in the Confluent wire format (for ``dpp scan``): the record's tree and the
    tagged paths of its writer schema (:func:`tagged_paths`, every tag). Registers nothing.
    Raises :class:`FormatError` as :meth:`AvroCodec.decode` does; ``DependencyUnavailable``
    propagates."""

    def __init__(self, source: SchemaSource):
        self._source = source
        self._schemas: dict[int, tuple[Any, dict, bool]] = {}
        self._codec = AvroCodec(source, SchemaPlan(), lambda name: name)

    def _schema(self, schema_id: int) -> tuple[Any, dict, bool]:
        got = self._schemas.get(schema_id)
        if got is None:
            reg = fetch_writer(self._source, schema_id, "AVRO")
            try:
                named: dict = {}
                self._codec._named(reg, named)
                writer_json = json.loads(reg.schema_str)
                expanded = _expand(writer_json, None, dict(named), ())
                _check_shape(expanded)
                named_parsed: dict = {}
                for definition in named.values():
                    fastavro.parse_schema(definition, named_schemas=named_parsed)
                parsed = fastavro.parse_schema(writer_json, named_schemas=named_parsed)
            except Exception:  # noqa: BLE001 - a schema it cannot read: its records are undecodable
                raise FormatError(Reason.DECODE_FAILED, "cannot read the writer schema") from None
            got = self._schemas[schema_id] = (parsed, tagged_paths(expanded, None), _recursive(expanded))
        return got

    def decode(self, data: bytes) -> tuple[Any, dict[str, list[tuple]]]:
        """``(tree, {tag: [paths]})`` of Confluent-framed Avro ``data``."""
        schema_id, payload = unframe(data)
        parsed, tags, rec = self._schema(schema_id)
        bio = io.BytesIO(payload)
        read = _read_py.schemaless_reader if rec else fastavro.schemaless_reader
        try:
            tree = read(bio, parsed, None)
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise  # noqa: BLE001 - any failure on hostile bytes
            raise FormatError(Reason.DECODE_FAILED) from None
        if bio.tell() != len(payload):
            raise FormatError(Reason.DECODE_FAILED, "bytes left after the record")
        return tree, tags
