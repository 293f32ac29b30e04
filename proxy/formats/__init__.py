"""Codecs: one module per format behind :class:`~proxy.formats.base.Codec` (decode bytes to a
tree, encode a tree to bytes), so the policy engine stays format-agnostic and never imports Kafka.

``json``, ``string``, ``bytes`` need nothing; ``avro``, ``protobuf``, ``jsonschema`` read the
Confluent wire format and need a :class:`~proxy.formats.base.SchemaSource` (a schema registry).
"""
from __future__ import annotations

from typing import Callable

from .base import Codec, SchemaPlan, SchemaSource

SCHEMA_FORMATS = ("avro", "protobuf", "jsonschema")


def build_codec(fmt: str, source: SchemaSource | None, plan: SchemaPlan, subject_of: Callable[[str], str],
                what: str = "route") -> Codec:
    """The codec of format ``fmt``. Schema formats derive sink schemas with ``plan`` and register
    them under ``subject_of(record full name)``. Raises ``ValueError`` when a schema format has no
    ``source`` (the message names ``what`` and the option to give)."""
    if fmt in SCHEMA_FORMATS and source is None:
        raise ValueError(f"{what} reads {fmt}: a schema registry is needed "
                         "(dpp run --schema-registry URL, or DPP_SCHEMA_REGISTRY_URL)")
    if fmt == "json":
        from .json import JsonCodec
        return JsonCodec()
    if fmt == "string":
        from .string import StringCodec
        return StringCodec()
    if fmt == "bytes":
        from .bytes import BytesCodec
        return BytesCodec()
    if fmt == "avro":
        from .avro import AvroCodec
        return AvroCodec(source, plan, subject_of)
    if fmt == "jsonschema":
        from .jsonschema import JsonSchemaCodec
        return JsonSchemaCodec(source, plan, subject_of)
    if fmt == "protobuf":
        try:
            from .protobuf import ProtobufCodec
        except ImportError:
            raise ValueError(f"{what} reads protobuf: this version has no Protobuf codec yet "
                             "(proxy/formats/protobuf.py)") from None
        return ProtobufCodec(source, plan, subject_of)
    raise ValueError(f"unknown format {fmt!r}")


__all__ = ["SCHEMA_FORMATS", "Codec", "SchemaPlan", "SchemaSource", "build_codec"]
