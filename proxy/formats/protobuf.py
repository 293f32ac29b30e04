"""Protocol Buffers in the Confluent wire format, through a schema registry (the ``protobuf``
runtime for messages and the proto3 JSON mapping; ``protoc`` from ``grpcio-tools`` to read
``.proto`` schema text).

Wire format (Confluent, "Schema Registry: Wire format")::

    byte 0      magic byte 0
    bytes 1-4   schema id, 32-bit big-endian
    then        message indexes: a zigzag varint count, then that many zigzag varints (the index
                of the message among the file's top-level messages, then among each one's nested
                messages); the single byte 0 stands for [0], the first message of the file
    then        the message in the Protobuf binary encoding

Writer schemas are ``.proto`` text (what Java clients and Apicurio register) or a base64
``FileDescriptorProto`` (what the Python client registers); imports come from the schema's
registry references, written under their import names (``google/protobuf/*`` well-known types
are built in). ``protoc`` compiles them in a subprocess with a time limit
(:data:`PROTOC_TIMEOUT_S`) on text of at most :data:`MAX_SCHEMA_BYTES`; a schema it refuses, or
one in Protobuf *editions* or with ``group`` fields, cannot be derived: its records dead-letter
(``serialize-failed``), as do schemas where a field's name is another field's JSON name (the JSON
mapping could swap their values). Unknown ids: ``unknown-schema``; bytes without the frame:
``not-confluent-framed``; indexes naming no message, bytes that do not parse, a ``string`` that is
not UTF-8 (proto2 too), or a record whose tree would hold more than :data:`MAX_TREE_VALUES`
values (an empty sub-message of 2 bytes expands to all its fields): ``decode-failed``.

The tree is the message in the proto3 JSON mapping (``json_format.MessageToDict`` with the
``.proto`` field names): messages and maps are ``dict``, repeated fields ``list``; ``int64`` and
``uint64`` values are decimal strings, ``bytes`` base64 text, enums their value names, and
well-known types their JSON forms (``Timestamp`` an RFC 3339 string, ``Duration`` ``"1.5s"``,
wrappers their value, ``Struct`` an object). Fields without presence (proto3 scalars outside
``optional``/``oneof``, repeated fields, maps) are in the tree at their default value when the
wire omits them (``false``, ``0``, ``""``, ``[]``), so a block condition such as
``consent.analytics equals false`` sees a withdrawn consent that proto3 does not write; a field
with presence that is unset (a message, an ``optional`` or ``oneof`` member) is absent, like a
missing JSON member. Unknown fields are dropped, never copied out.

Encoding: with the *derived sink schema* (``.proto`` text, registered under the sink subject with
the writer's references), ``json_format.ParseDict``; the record carries the sink schema id and the
writer's message indexes. Derivation rules (:func:`derive_file`), per rule's path:

* ``mask``, ``pseudonymize``, ``fpe``, ``tokenize``, ``detect`` → the field's type becomes
  ``string`` (a field that was a string keeps its type); a rule on a repeated field itself
  (no ``[*]``) makes it a single ``string``;
* ``redact`` → the literal's type (``string``, ``int64``, ``double``, ``bool``); a ``null``
  literal leaves the type (the field is absent);
* ``drop`` and ``unlisted_fields: drop`` → the field disappears and its number and name are
  ``reserved``; a ``oneof`` left without fields disappears;
* a rule through a repeated field (``a[*].b``) changes its element type; through a map
  (``m.KEY.b``) the map's value type (a key the rule does not name must then still fit the new
  type, else its record dead-letters with ``serialize-failed``);
* a message type used by several fields is copied where a rule changes one use: the copy is a
  sibling named ``<Name>_dpp<N>``; a type used once is changed in place; the top-level message
  keeps its name (a recursive field of it refers to an unchanged copy);
* a rule that must change a message defined in an imported file (a well-known type's inner
  fields, say) cannot be derived (``serialize-failed``); rewriting the whole field is fine.

The sink schema keeps the writer's ``syntax``, ``package``, imports, enums, file options with
scalar values, field numbers, labels, ``json_name``, defaults and ``packed``/``deprecated``;
services, extensions and custom options are left out (a sink schema describes data, not RPCs).
When the source evolves (a new writer id) the new writer schema derives a new sink schema,
registered as the next version of the sink subject, without a restart.
"""
from __future__ import annotations

import base64
import binascii
import copy
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError

from ..errors import FormatError, Reason
from .base import (DROP, KEEP, REDACT, REWRITE, Codec, RegisteredSchema, SchemaPlan, SchemaSource, fetch_writer,
                   frame, merge_allow_trees, register_sink, unframe)

log = logging.getLogger("proxy.formats")

PROTOC_TIMEOUT_S = 30.0
"""Time ``protoc`` may take to compile one writer or sink schema (with its imports)."""
MAX_SCHEMA_BYTES = 1 << 20
"""Size of the ``.proto`` text of one schema and of each reference."""
MAX_INDEXES = 64
"""Nesting of the message indexes of a record (more: ``decode-failed``)."""
MAX_REFERENCE_DEPTH = 16

F = descriptor_pb2.FieldDescriptorProto
_LITERAL_TYPE = {str: F.TYPE_STRING, int: F.TYPE_INT64, float: F.TYPE_DOUBLE, bool: F.TYPE_BOOL}
_SCALAR = {F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64", F.TYPE_UINT64: "uint64",
           F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64", F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool",
           F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
           F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64"}
_MAX_FIELD = 536870911  # 2**29 - 1, the largest field number ("max" in reserved/extensions ranges)


class SchemaError(ValueError):
    """A Protobuf schema this codec cannot read or derive (message for logs: no schema text)."""


# --------------------------------------------------------------------------- message indexes
def read_indexes(buf: memoryview) -> tuple[tuple[int, ...], int]:
    """``(message indexes, bytes read)`` at the start of ``buf`` (module doc). Raises
    :class:`FormatError` (``decode-failed``) for a truncated varint, a negative index or count,
    or more than :data:`MAX_INDEXES` indexes."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= len(buf) or shift > 63:
                raise FormatError(Reason.DECODE_FAILED, "truncated message indexes")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)  # zigzag
            shift += 7

    count = varint()
    if count == 0:
        return (0,), pos
    if count < 0 or count > MAX_INDEXES:
        raise FormatError(Reason.DECODE_FAILED, "bad message index count")
    out = tuple(varint() for _ in range(count))
    if any(i < 0 for i in out):
        raise FormatError(Reason.DECODE_FAILED, "negative message index")
    return out, pos


def write_indexes(indexes: tuple[int, ...]) -> bytes:
    """Message indexes as the Confluent serializers write them (``[0]`` as the single byte 0)."""
    if indexes == (0,):
        return b"\x00"
    out = bytearray()
    for v in (len(indexes), *indexes):
        z = (v << 1) ^ (v >> 63)
        while z > 0x7F:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        out.append(z)
    return bytes(out)


# --------------------------------------------------------------------------- schema text → descriptors
_WKT_DIR = None


def _wkt_include() -> str:
    """The directory of the well-known types' ``.proto`` files shipped with ``grpcio-tools``."""
    global _WKT_DIR
    if _WKT_DIR is None:
        import grpc_tools
        _WKT_DIR = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    return _WKT_DIR


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,200}\.proto$")


def compile_files(files: dict[str, str], main: str) -> descriptor_pb2.FileDescriptorSet:
    """``protoc`` over ``files`` (import name → ``.proto`` text), ``main`` first: the descriptors
    of ``main`` and everything it imports, in dependency order. Raises :class:`SchemaError` for a
    name that is not a plain relative ``.proto`` path, text that does not compile, or a compile
    taking longer than :data:`PROTOC_TIMEOUT_S`."""
    with tempfile.TemporaryDirectory(prefix="dpp-proto-") as tmp:
        for name, text in files.items():
            if not _SAFE_NAME.match(name) or any(p in ("", ".", "..") for p in name.split("/")):
                raise SchemaError("a schema reference has a name that is not a relative .proto path")
            path = os.path.join(tmp, name)
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            except OSError:  # a.proto beside a.proto/b.proto, a name too long for the file system
                raise SchemaError("schema reference names that cannot be files side by side") from None
        out = os.path.join(tmp, ".descriptor_set")
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp}", f"-I{_wkt_include()}", "--include_imports",
               f"--descriptor_set_out={out}", main]
        try:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=PROTOC_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SchemaError("protoc took too long") from None
        if r.returncode != 0:
            first = r.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SchemaError("protoc refused the schema" + (f": {first[0][:200]}" if first else ""))
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
        return fds


def schema_text(schema_str: str, name: str = "schema.proto") -> str:
    """``.proto`` text of a registered schema string: text as is, a base64 serialized
    ``FileDescriptorProto`` printed (:func:`print_file`). Raises :class:`SchemaError`."""
    if len(schema_str) > MAX_SCHEMA_BYTES * 2:
        raise SchemaError("schema text too large")
    s = schema_str.strip()
    if s and not any(c in s for c in " \n\t;{"):
        try:
            raw = base64.b64decode(s, validate=True)
            fdp = descriptor_pb2.FileDescriptorProto()
            fdp.ParseFromString(raw)
        except (binascii.Error, DecodeError, ValueError):
            raise SchemaError("schema is neither .proto text nor a base64 FileDescriptorProto") from None
        fdp.name = name
        return print_file(fdp)
    if len(s.encode("utf-8")) > MAX_SCHEMA_BYTES:
        raise SchemaError("schema text too large")
    return schema_str


# --------------------------------------------------------------------------- descriptors → schema text
def _quote(s: str | bytes) -> str:
    b = s.encode("utf-8") if isinstance(s, str) else s
    out = []
    for c in b:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03o}")
    return '"' + "".join(out) + '"'


def _default_json_name(name: str) -> str:
    out, up = [], False
    for ch in name:
        if ch == "_":
            up = True
        elif up:
            out.append(ch.upper())
            up = False
        else:
            out.append(ch)
    return "".join(out)


def _repeated(fd: Any) -> bool:
    rep = getattr(fd, "is_repeated", None)  # protobuf >= 6; ``label`` before
    return bool(rep) if rep is not None else fd.label == fd.LABEL_REPEATED


def _option_lines(opts: Any, indent: str) -> list[str]:
    """``option name = value;`` for the options with scalar values (custom options left out)."""
    lines = []
    for fd, value in opts.ListFields():
        if fd.is_extension or fd.message_type is not None or _repeated(fd):
            continue
        if fd.name in ("uninterpreted_option", "features"):
            continue
        if fd.enum_type is not None:
            v = fd.enum_type.values_by_number[value].name
        elif isinstance(value, bool):
            v = "true" if value else "false"
        elif isinstance(value, str):
            v = _quote(value)
        else:
            v = str(value)
        lines.append(f"{indent}option {fd.name} = {v};")
    return lines


def _ranges(ranges: Any) -> list[str]:
    out = []
    for r in ranges:
        end = r.end - 1
        if r.start == end:
            out.append(str(r.start))
        else:
            out.append(f"{r.start} to {'max' if end >= _MAX_FIELD else end}")
    return out


class _Printer:
    def __init__(self, fdp: descriptor_pb2.FileDescriptorProto):
        self.fdp = fdp
        self.proto3 = fdp.syntax == "proto3"
        self.lines: list[str] = []
        self._scope = [f".{fdp.package}" if fdp.package else ""]  # full name of the message being printed

    def file(self) -> str:
        fdp = self.fdp
        if fdp.syntax == "editions":
            raise SchemaError("Protobuf editions are not supported")
        self.lines.append(f'syntax = "{fdp.syntax or "proto2"}";')
        if fdp.package:
            self.lines.append(f"package {fdp.package};")
        public, weak = set(fdp.public_dependency), set(fdp.weak_dependency)
        for i, dep in enumerate(fdp.dependency):
            kind = "public " if i in public else "weak " if i in weak else ""
            self.lines.append(f"import {kind}{_quote(dep)};")
        self.lines += _option_lines(fdp.options, "")
        for e in fdp.enum_type:
            self.enum(e, "")
        for m in fdp.message_type:
            self.message(m, "")
        return "\n".join(self.lines) + "\n"

    def enum(self, e: Any, ind: str) -> None:
        self.lines.append(f"{ind}enum {e.name} {{")
        self.lines += _option_lines(e.options, ind + "  ")
        for v in e.value:
            self.lines.append(f"{ind}  {v.name} = {v.number};")
        for r in e.reserved_range:  # enum ranges are inclusive
            self.lines.append(f"{ind}  reserved {r.start}" + (f" to {r.end}" if r.end != r.start else "") + ";")
        if e.reserved_name:
            self.lines.append(f"{ind}  reserved {', '.join(_quote(n) for n in e.reserved_name)};")
        self.lines.append(f"{ind}}}")

    def _map_entry(self, m: Any, f: Any) -> Any | None:
        return map_entry(m, self._scope[-1], f)

    def _type(self, f: Any) -> str:
        if f.type == F.TYPE_GROUP:
            raise SchemaError("group fields are not supported")
        return _SCALAR.get(f.type) or f.type_name

    def field(self, m: Any, f: Any, ind: str, in_oneof: bool) -> None:
        entry = self._map_entry(m, f)
        if entry is not None:
            k, v = entry.field[0], entry.field[1]
            head = f"map<{self._type(k)}, {self._type(v)}>"
        else:
            label = ""
            if not in_oneof:
                if f.label == F.LABEL_REPEATED:
                    label = "repeated "
                elif self.proto3 and f.proto3_optional:
                    label = "optional "
                elif not self.proto3:
                    label = "required " if f.label == F.LABEL_REQUIRED else "optional "
            head = label + self._type(f)
        opts = []
        if f.HasField("default_value"):
            if f.type == F.TYPE_STRING:
                opts.append(f"default = {_quote(f.default_value)}")
            elif f.type == F.TYPE_BYTES:  # already C-escaped in the descriptor
                opts.append(f'default = "{f.default_value}"')
            else:
                opts.append(f"default = {f.default_value}")
        if f.json_name and f.json_name != _default_json_name(f.name):
            opts.append(f"json_name = {_quote(f.json_name)}")
        if f.options.HasField("packed"):
            opts.append(f"packed = {'true' if f.options.packed else 'false'}")
        if f.options.deprecated:
            opts.append("deprecated = true")
        tail = f" [{', '.join(opts)}]" if opts else ""
        self.lines.append(f"{ind}{head} {f.name} = {f.number}{tail};")

    def message(self, m: Any, ind: str) -> None:
        self._scope.append(f"{self._scope[-1]}.{m.name}")
        self.lines.append(f"{ind}message {m.name} {{")
        inner = ind + "  "
        self.lines += [ln for ln in _option_lines(m.options, inner) if "map_entry" not in ln]
        for e in m.enum_type:
            self.enum(e, inner)
        # nested types in their order (message indexes count them): a map field is printed where
        # protoc made its entry type, the other fields in their order around it
        nested = list(m.nested_type)
        entry_of = {}
        for i, f in enumerate(m.field):
            e = self._map_entry(m, f)
            if e is not None:
                entry_of[i] = next(j for j, n in enumerate(nested) if n is e or n.name == e.name)
        printed = 0

        def nested_upto(j: int) -> None:
            nonlocal printed
            while printed < j:
                if not nested[printed].options.map_entry:
                    self.message(nested[printed], inner)
                printed += 1

        real_oneof = {i for i, f in enumerate(m.field) if f.HasField("oneof_index") and not f.proto3_optional}
        done: set[int] = set()
        for i, f in enumerate(m.field):
            if i in entry_of:
                nested_upto(entry_of[i])
                printed += 1
            if i in real_oneof:
                o = f.oneof_index
                if o in done:
                    continue
                done.add(o)
                self.lines.append(f"{inner}oneof {m.oneof_decl[o].name} {{")
                for j, g in enumerate(m.field):
                    if j in real_oneof and g.oneof_index == o:
                        self.field(m, g, inner + "  ", True)
                self.lines.append(f"{inner}}}")
            else:
                self.field(m, f, inner, False)
        nested_upto(len(nested))
        if m.extension_range:
            self.lines.append(f"{inner}extensions {', '.join(_ranges(m.extension_range))};")
        if m.reserved_range:
            self.lines.append(f"{inner}reserved {', '.join(_ranges(m.reserved_range))};")
        if m.reserved_name:
            self.lines.append(f"{inner}reserved {', '.join(_quote(n) for n in m.reserved_name)};")
        self.lines.append(f"{ind}}}")
        self._scope.pop()


def map_entry(m: Any, mfull: str, f: Any) -> Any | None:
    """The map entry type of field ``f`` of message ``m`` (full name ``mfull``), else ``None``:
    a repeated message field whose type is ``m``'s own nested ``<Field>Entry`` with ``map_entry``."""
    if f.type != F.TYPE_MESSAGE or f.label != F.LABEL_REPEATED or not f.type_name.startswith(mfull + "."):
        return None
    short = f.type_name[len(mfull) + 1:]
    return next((n for n in m.nested_type if n.name == short and n.options.map_entry), None)


def _demote_entry(m: Any, mfull: str, f: Any) -> None:
    """When map field ``f`` goes (dropped, or rewritten whole), its entry type stays at its place
    among ``m``'s nested types as a plain message, so the message indexes of the nested types
    after it still name the same messages."""
    entry = map_entry(m, mfull, f)
    if entry is not None:
        entry.options.ClearField("map_entry")
        if not entry.options.ListFields():
            entry.ClearField("options")


def print_file(fdp: descriptor_pb2.FileDescriptorProto) -> str:
    """``.proto`` text of a file descriptor (what the module doc says is kept). Raises
    :class:`SchemaError` for editions and ``group`` fields."""
    return _Printer(fdp).file()


# --------------------------------------------------------------------------- derivation
def _is_wild(seg: Any) -> bool:
    return not isinstance(seg, (str, int))


class _Deriver:
    """Applies a :class:`SchemaPlan` to one root message of a copy of the main file."""

    def __init__(self, fdp: descriptor_pb2.FileDescriptorProto, root: str):
        self.fdp = fdp
        self.root_name = root
        self.owned: set[str] = set()  # message types this derivation made (copies), free to change
        self._reindex()
        if self._refcount(root) > 0:  # a recursive use of the root keeps the unchanged type
            copy_name = self._copy(root)
            for m in self.msgs.values():
                for f in m.field:
                    if f.type_name == root:
                        f.type_name = copy_name
        self.owned.add(root)

    def _reindex(self) -> None:
        self.msgs: dict[str, Any] = {}
        self.parent: dict[str, Any] = {}
        pkg = f".{self.fdp.package}" if self.fdp.package else ""

        def walk(container: Any, prefix: str, owner: Any) -> None:
            for m in container:
                full = f"{prefix}.{m.name}"
                self.msgs[full] = m
                self.parent[full] = owner
                walk(m.nested_type, full, m)

        walk(self.fdp.message_type, pkg, self.fdp)

    def _refcount(self, full: str) -> int:
        return sum(1 for m in self.msgs.values() for f in m.field if f.type_name == full)

    def _copy(self, full: str) -> str:
        """A copy of message ``full`` as a sibling ``<Name>_dpp<N>``; its full name. Nested types
        are copied with it and the copy's fields refer to the copies."""
        src = self.msgs[full]
        prefix, name = full.rsplit(".", 1)
        n = 1
        while f"{prefix}.{name}_dpp{n}" in self.msgs:
            n += 1
        new_full = f"{prefix}.{name}_dpp{n}"
        dup = copy.deepcopy(src)
        dup.name = f"{name}_dpp{n}"

        def repoint(m: Any) -> None:
            for f in m.field:
                if f.type_name.startswith(full + "."):
                    f.type_name = new_full + f.type_name[len(full):]
            for nested in m.nested_type:
                repoint(nested)

        repoint(dup)
        owner = self.parent[full]
        (owner.message_type if owner is self.fdp else owner.nested_type).append(dup)
        self._reindex()

        def own(m: Any, mfull: str) -> None:
            self.owned.add(mfull)
            for nested in m.nested_type:
                own(nested, f"{mfull}.{nested.name}")

        own(self.msgs[new_full], new_full)
        return new_full

    def _writable(self, field: Any) -> tuple[Any, str]:
        """``(message, full name)`` of the type ``field`` refers to, made safe to change (copied
        when shared)."""
        full = field.type_name
        if full not in self.msgs:
            raise SchemaError("a rule changes a message type defined in an imported file")
        if full not in self.owned and self._refcount(full) > 1:
            field.type_name = self._copy(full)
            full = field.type_name
        self.owned.add(full)
        return self.msgs[full], full


    def _remove(self, m: Any, mfull: str, names: set[str]) -> None:
        """Remove fields ``names`` of ``m`` (full name ``mfull``): their numbers and names become
        ``reserved``; oneofs left empty disappear; the entry type of a removed map stays where it
        was as a plain message (nested types keep their positions: message indexes count them)."""
        keep = [f for f in m.field if f.name not in names]
        gone = [f for f in m.field if f.name in names]
        if not gone:
            return
        used = {f.oneof_index for f in keep if f.HasField("oneof_index")}
        remap, decls = {}, []
        for i, o in enumerate(m.oneof_decl):
            if i in used:
                remap[i] = len(decls)
                decls.append(copy.deepcopy(o))
        for f in keep:
            if f.HasField("oneof_index"):
                f.oneof_index = remap[f.oneof_index]
        del m.oneof_decl[:]
        m.oneof_decl.extend(decls)
        for f in gone:
            _demote_entry(m, mfull, f)
        gone = [copy.deepcopy(f) for f in gone]
        kept = [copy.deepcopy(f) for f in keep]
        del m.field[:]
        m.field.extend(kept)
        for f in sorted(gone, key=lambda g: g.number):
            r = m.reserved_range.add()
            r.start, r.end = f.number, f.number + 1
            m.reserved_name.append(f.name)
        self._reindex()

    def _retype(self, m: Any, mfull: str, f: Any, effect: str, literal: Any, whole: bool) -> None:
        """Set the type of ``f`` after a rule (``whole``: the rule names the field itself, not
        its elements)."""
        if effect == KEEP or (effect == REDACT and literal is None):
            return
        new = F.TYPE_STRING if effect == REWRITE else _LITERAL_TYPE[type(literal)]
        if whole and f.label == F.LABEL_REPEATED:
            _demote_entry(m, mfull, f)
            f.label = F.LABEL_OPTIONAL
        elif f.type == new and not f.type_name:
            return
        f.type = new
        f.ClearField("type_name")
        f.ClearField("default_value")
        f.options.ClearField("packed")

    def apply(self, m: Any, mfull: str, segs: tuple, effect: str, literal: Any) -> None:
        seg, rest = segs[0], segs[1:]
        if not isinstance(seg, str):
            return
        f = next((x for x in m.field if x.name == seg), None)
        if f is None:
            return
        if not rest:
            if effect == DROP:
                self._remove(m, mfull, {seg})
            else:
                self._retype(m, mfull, f, effect, literal, True)
            return
        entry = map_entry(m, mfull, f)
        if entry is not None:  # m.KEY... : the map's value
            value = entry.field[1]
            rest = rest[1:]
            if not rest:
                if effect != DROP:
                    self._retype(entry, f.type_name, value, effect, literal, False)
                return
            if value.type == F.TYPE_MESSAGE:
                self.apply(*self._writable(value), rest, effect, literal)
            return
        if f.label == F.LABEL_REPEATED:
            if not (_is_wild(rest[0]) or isinstance(rest[0], int)):
                return
            rest = rest[1:]
            if not rest:
                if effect != DROP:  # dropping one element keeps the field
                    self._retype(m, mfull, f, effect, literal, False)
                return
        if f.type == F.TYPE_MESSAGE:
            self.apply(*self._writable(f), rest, effect, literal)

    def prune(self, m: Any, mfull: str, tree: Any) -> None:
        if tree is True:
            return
        self._remove(m, mfull, {f.name for f in m.field if f.name not in tree})
        for f in list(m.field):
            sub = tree[f.name]
            if sub is True or f.type != F.TYPE_MESSAGE:
                continue
            entry = map_entry(m, mfull, f)
            if entry is not None:
                subs = list(sub.values())
                merged = subs[0] if subs else {}
                for s in subs[1:]:
                    merged = merge_allow_trees(merged, s)
                if merged is not True and entry.field[1].type == F.TYPE_MESSAGE:
                    self.prune(*self._writable(entry.field[1]), merged)
                continue
            if f.label == F.LABEL_REPEATED:
                wild = [v for k, v in sub.items() if _is_wild(k) or isinstance(k, int)]
                if not wild or wild[0] is True:
                    continue
                sub = wild[0]
            self.prune(*self._writable(f), sub)

    def run(self, plan: SchemaPlan) -> None:
        for segs, effect, literal in plan.rules:
            if segs:
                self.apply(self.msgs[self.root_name], self.root_name, segs, effect, literal)
        if plan.allow is not None:
            self.prune(self.msgs[self.root_name], self.root_name, plan.allow)


def message_path(fdp: descriptor_pb2.FileDescriptorProto, indexes: tuple[int, ...]) -> str:
    """Full name (with leading dot) of the message ``indexes`` names in ``fdp``. Raises
    :class:`FormatError` (``decode-failed``) when no message has those indexes."""
    container, name = fdp.message_type, f".{fdp.package}" if fdp.package else ""
    for i in indexes:
        if i >= len(container):
            raise FormatError(Reason.DECODE_FAILED, "message indexes name no message")
        m = container[i]
        name = f"{name}.{m.name}"
        container = m.nested_type
    return name


def derive_file(fds: descriptor_pb2.FileDescriptorSet, main: str, root: str, plan: SchemaPlan
                ) -> descriptor_pb2.FileDescriptorProto:
    """The sink file descriptor of message ``root`` (full name, leading dot) of file ``main`` in
    ``fds`` under ``plan`` (module doc). Raises :class:`SchemaError`."""
    files = {f.name: f for f in fds.file}
    fdp = copy.deepcopy(files[main])
    del fdp.service[:]
    del fdp.extension[:]
    d = _Deriver(fdp, root)
    d.run(plan)

    def strip(m: Any) -> None:
        del m.extension[:]
        for n in m.nested_type:
            strip(n)

    for m in fdp.message_type:
        strip(m)
    return fdp


def build_pool(fds: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding every file of ``fds`` (dependency order, as ``protoc`` writes it)."""
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return pool


MAX_TREE_VALUES = 1_000_000
"""Values a record's tree may hold: fields without presence appear at their default, so an empty
sub-message of 2 wire bytes becomes one value per field; beyond this the record dead-letters
(``decode-failed``) instead of taking seconds and gigabytes to decode."""


def check_message(msg: Any) -> None:
    """Refuse a parsed message whose tree would hold more than :data:`MAX_TREE_VALUES` values,
    or that holds a ``string`` that is not UTF-8 (proto2 parses it as bytes). Raises
    :class:`FormatError` (``decode-failed``). Cost: one visit per sub-message and string."""
    budget = MAX_TREE_VALUES
    stack = [msg]
    while stack:
        m = stack.pop()
        budget -= len(m.DESCRIPTOR.fields)
        if budget < 0:
            raise FormatError(Reason.DECODE_FAILED, "record too large to decode safely")
        for fd, value in m.ListFields():
            if fd.type == F.TYPE_MESSAGE:
                if fd.message_type.GetOptions().map_entry:
                    vfd = fd.message_type.fields_by_name["value"]
                    if fd.message_type.fields_by_name["key"].type == F.TYPE_STRING and any(
                            type(k) is not str for k in value):
                        raise FormatError(Reason.DECODE_FAILED, "a string that is not UTF-8")
                    values = value.values()
                    if vfd.type == F.TYPE_MESSAGE:
                        stack.extend(values)
                    elif vfd.type == F.TYPE_STRING and any(type(v) is not str for v in values):
                        raise FormatError(Reason.DECODE_FAILED, "a string that is not UTF-8")
                    budget -= len(value)
                elif _repeated(fd):
                    stack.extend(value)
                    budget -= len(value)
                else:
                    stack.append(value)
            elif fd.type == F.TYPE_STRING:
                if (type(value) is not str) if not _repeated(fd) else any(type(v) is not str for v in value):
                    raise FormatError(Reason.DECODE_FAILED, "a string that is not UTF-8")
            elif _repeated(fd):
                budget -= len(value)


def check_json_names(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    """Refuse a file with a message where a field's name is another field's JSON name, or two
    fields share a JSON name (proto2 allows both): the JSON mapping that encodes the tree could
    put a value into the wrong field. Raises :class:`SchemaError`."""
    def walk(m: Any) -> None:
        names = {f.name for f in m.field}
        jsons = [f.json_name or _default_json_name(f.name) for f in m.field]
        if len(set(jsons)) != len(jsons) or any(j in names and j != f.name for j, f in zip(jsons, m.field)):
            raise SchemaError("a field's name is another field's JSON name")
        for n in m.nested_type:
            walk(n)
    for m in fdp.message_type:
        walk(m)


# --------------------------------------------------------------------------- the codec
@dataclass(frozen=True)
class _Writer:
    """One (writer schema id, message indexes): the writer's message class, the sink schema's
    message class and registry id, and the framing prefix of sink records."""

    cls: Any
    pool: Any
    sink_cls: Any
    sink_pool: Any
    prefix: bytes


@dataclass(frozen=True)
class _File:
    fds: Any
    main: str
    text: str
    references: tuple

    @property
    def main_fdp(self) -> Any:
        return next(x for x in self.fds.file if x.name == self.main)


class ProtobufCodec(Codec):
    """Confluent-framed Protobuf against ``source``; sink schemas derived by ``plan`` and
    registered under ``subject_of(message full name)``.

    Thread-safe for its caches; registry calls raise :class:`~proxy.errors.DependencyUnavailable`
    when the registry is down (the engine then retries the batch)."""

    name = "protobuf"

    def __init__(self, source: SchemaSource, plan: SchemaPlan, subject_of: Callable[[str], str]):
        self._source, self._plan, self._subject_of = source, plan, subject_of
        self._files: dict[int, _File | Reason] = {}
        self._writers: dict[tuple[int, tuple[int, ...]], _Writer | Reason] = {}
        # a failure is cached as its reason and raised as a new FormatError each time: re-raising
        # one exception object would grow its traceback by every record's frames (and keep them)
        self._lock = threading.Lock()

    def _references(self, reg: RegisteredSchema, into: dict[str, str], depth: int = 0) -> None:
        if depth > MAX_REFERENCE_DEPTH:
            raise SchemaError(f"schema references nest more than {MAX_REFERENCE_DEPTH} deep")
        for name, subject, version in reg.references:
            if name.startswith("google/protobuf/") or name in into:
                continue
            ref = self._source.schema_by_version(subject, version)
            into[name] = schema_text(ref.schema_str, name)
            self._references(ref, into, depth + 1)

    def _file(self, schema_id: int) -> _File:
        f = self._files.get(schema_id)
        if f is None:
            reg = fetch_writer(self._source, schema_id, "PROTOBUF")
            try:
                files: dict[str, str] = {}
                self._references(reg, files)
                main = "dpp_writer_schema.proto"
                while main in files:
                    main = "_" + main
                text = schema_text(reg.schema_str, main)
                files[main] = text
                f = _File(compile_files(files, main), main, text, reg.references)
            except (SchemaError, KeyError) as e:
                log.error("no sink schema for writer schema", extra={"schema_id": schema_id,
                                                                     "error_class": type(e).__name__})
                f = Reason.SERIALIZE_FAILED
            self._files[schema_id] = f
        if type(f) is Reason:
            raise FormatError(f, "cannot read the writer schema")
        return f

    def writer(self, schema_id: int, indexes: tuple[int, ...]) -> _Writer:
        """The cached :class:`_Writer` of ``schema_id`` and message ``indexes`` (fetched, derived
        and registered once). Raises :class:`FormatError` (``unknown-schema``, ``decode-failed``
        for indexes naming no message, ``serialize-failed`` when no sink schema can be derived,
        ``sink-schema-rejected``) or ``DependencyUnavailable``."""
        key = (schema_id, indexes)
        w = self._writers.get(key)
        if w is None:
            f = self._file(schema_id)
            root = message_path(f.main_fdp, indexes)  # decode-failed for indexes naming no message (not cached)
            with self._lock:
                w = self._writers.get(key)
                if w is None:
                    try:
                        w = self._derive(schema_id, f, indexes, root)
                    except FormatError as e:
                        if e.reason == Reason.SERIALIZE_FAILED:
                            self._writers[key] = e.reason  # an id never changes: nor does its derivation
                        raise
                    self._writers[key] = w
        if type(w) is Reason:
            raise FormatError(w, "cannot derive the sink schema")
        return w

    def _derive(self, schema_id: int, f: _File, indexes: tuple[int, ...], root: str) -> _Writer:
        try:
            check_json_names(f.main_fdp)
            pool = build_pool(f.fds)
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(root[1:]))
            sink_fdp = derive_file(f.fds, f.main, root, self._plan)
            sink_text = print_file(sink_fdp)
            deps = {x.name: print_file(x) for x in f.fds.file
                    if x.name != f.main and not x.name.startswith("google/protobuf/")}
            sink_fds = compile_files({**deps, f.main: sink_text}, f.main)
            if message_path(next(x for x in sink_fds.file if x.name == f.main), indexes) != root:
                raise SchemaError("the sink schema's message indexes do not name the writer's message")
            sink_pool = build_pool(sink_fds)
            sink_cls = message_factory.GetMessageClass(sink_pool.FindMessageTypeByName(root[1:]))
        except Exception as e:  # noqa: BLE001 - any schema it cannot derive: fail closed
            log.error("no sink schema for writer schema", extra={"schema_id": schema_id,
                                                                 "error_class": type(e).__name__})
            raise FormatError(Reason.SERIALIZE_FAILED, "cannot derive the sink schema") from None
        subject = self._subject_of(root[1:])
        sink_id = register_sink(self._source, subject, RegisteredSchema("PROTOBUF", sink_text, f.references))
        log.info("sink schema derived", extra={"schema_id": schema_id, "subject": subject, "sink_schema_id": sink_id})
        return _Writer(cls, pool, sink_cls, sink_pool, frame(sink_id, write_indexes(indexes)))

    def decode(self, data: bytes) -> tuple[Any, Any]:
        schema_id, payload = unframe(data)
        indexes, n = read_indexes(payload)
        w = self.writer(schema_id, indexes)
        msg = w.cls()
        try:
            msg.ParseFromString(payload[n:])
            check_message(msg)
            tree = json_format.MessageToDict(msg, preserving_proto_field_name=True, descriptor_pool=w.pool,
                                             always_print_fields_with_no_presence=True)
        except BaseException as e:  # RecursionError, MemoryError included; never KeyboardInterrupt
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise  # noqa: BLE001 - any failure on hostile bytes fails closed
            raise FormatError(Reason.DECODE_FAILED) from None
        return tree, w

    def encode(self, tree: Any, ctx: Any) -> bytes:
        try:
            msg = json_format.ParseDict(tree, ctx.sink_cls(), descriptor_pool=ctx.sink_pool)
            payload = msg.SerializeToString(deterministic=True)
        except Exception as e:  # noqa: BLE001 - a protected tree that does not fit fails closed
            raise FormatError(Reason.SERIALIZE_FAILED, type(e).__name__) from None
        return ctx.prefix + payload
