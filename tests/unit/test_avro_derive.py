"""Derived sink schemas of Avro (:func:`proxy.formats.avro.derive_schema`) and JSON Schema
(:func:`proxy.formats.jsonschema.derive_schema`): each documented rule, and that the policy
engine's output on real records fits the derived schema (fastavro writes it, reads it back)."""
from __future__ import annotations

import copy
import io

import fastavro
import pytest

from proxy.formats.avro import derive_schema, record_fullname
from proxy.formats.base import SchemaPlan, frame, unframe
from proxy.formats import jsonschema as js
from proxy.errors import FormatError
from proxy.generator import CUSTOMER_AVRO_SCHEMA, avro_datum, generate_records
from proxy.policy.compiler import _schema_plan, compile_policy
from proxy.policy.loader import load_policy
from proxy.policy.paths import parse_path

ADDRESS = {"type": "record", "name": "Address", "fields": [{"name": "street", "type": "string"},
                                                            {"name": "zip", "type": "int", "default": 0}]}


def schema(*fields) -> dict:
    return {"type": "record", "name": "R", "namespace": "t", "fields": list(fields)}


def plan(*rules, allow=None) -> SchemaPlan:
    return SchemaPlan(tuple((parse_path(p), effect, lit) for p, effect, lit in rules), allow)


def field_type(s: dict, name: str):
    return next(f for f in s["fields"] if f["name"] == name)


@pytest.mark.parametrize("ftype, effect, literal, expected", [
    ("long", "rewrite", None, "string"),
    ("string", "rewrite", None, "string"),
    (["null", "long"], "rewrite", None, ["null", "string"]),
    (["null", "string"], "rewrite", None, ["null", "string"]),
    ({"type": "int", "logicalType": "date"}, "rewrite", None, "string"),
    ({"type": "enum", "name": "E", "symbols": ["A"]}, "rewrite", None, "string"),
    ("long", "redact", None, ["null", "long"]),
    ("long", "redact", "[redacted]", ["null", "string"]),
    ("string", "redact", 0, ["null", "long"]),
    ("string", "keep", None, "string"),
])
def test_field_type_rules(ftype, effect, literal, expected):
    d = derive_schema(schema({"name": "f", "type": ftype}), plan(("f", effect, literal)))
    assert field_type(d, "f")["type"] == expected
    fastavro.parse_schema(d)


def test_a_changed_field_loses_a_default_that_no_longer_fits_and_nullable_ones_default_to_null():
    d = derive_schema(schema({"name": "a", "type": "int", "default": 3}, {"name": "b", "type": ["null", "int"], "default": None},
                             {"name": "c", "type": "string", "default": "x"}),
                      plan(("a", "rewrite", None), ("b", "rewrite", None), ("c", "redact", None)))
    assert "default" not in field_type(d, "a")
    assert field_type(d, "b")["default"] is None and field_type(d, "c")["default"] is None


def test_drop_and_allow_list_remove_fields():
    s = schema({"name": "a", "type": "string"}, {"name": "b", "type": ADDRESS}, {"name": "c", "type": "long"})
    d = derive_schema(s, plan(("a", "drop", None), ("b.zip", "drop", None)))
    assert [f["name"] for f in d["fields"]] == ["b", "c"]
    assert [f["name"] for f in d["fields"][0]["type"]["fields"]] == ["street"]
    d = derive_schema(s, plan(("b.street", "keep", None), allow={"b": {"street": True}}))
    assert [f["name"] for f in d["fields"]] == ["b"] and len(d["fields"][0]["type"]["fields"]) == 1


def test_named_type_reused_by_name_changes_only_where_a_rule_says():
    s = schema({"name": "home", "type": ADDRESS}, {"name": "work", "type": ["null", "Address"], "default": None})
    both = derive_schema(s, plan(("home.zip", "rewrite", None), ("work.zip", "rewrite", None)))
    assert both["fields"][1]["type"] == ["null", "t.Address"]  # identical: a reference
    one = derive_schema(s, plan(("home.zip", "rewrite", None)))
    assert one["fields"][1]["type"][1]["name"] == "t.Address_dpp2"
    for d in (both, one):
        fastavro.parse_schema(d)


def test_arrays_maps_and_unions_of_records():
    s = schema({"name": "cards", "type": {"type": "array", "items": {"type": "record", "name": "C", "fields": [
                   {"name": "no", "type": "long"}]}}},
               {"name": "m", "type": {"type": "map", "values": "int"}},
               {"name": "u", "type": ["null", {"type": "record", "name": "U", "fields": [{"name": "ssn", "type": "long"}]}]})
    d = derive_schema(s, plan(("cards[*].no", "rewrite", None), ("m.k", "rewrite", None), ("u.ssn", "rewrite", None)))
    assert d["fields"][0]["type"]["items"]["fields"][0]["type"] == "string"
    assert d["fields"][1]["type"]["values"] == ["int", "string"]
    assert d["fields"][2]["type"][1]["fields"][0]["type"] == "string"


def test_recursive_types_stay_references():
    node = {"type": "record", "name": "Node", "fields": [{"name": "v", "type": "long"},
                                                         {"name": "next", "type": ["null", "Node"], "default": None}]}
    d = derive_schema(node, plan(("v", "rewrite", None)))
    assert d["fields"][1]["type"] == ["null", "Node"]
    fastavro.parse_schema(d)


def test_debezium_envelope_after_ssn():
    value = {"type": "record", "name": "Value", "fields": [{"name": "id", "type": "int"}, {"name": "ssn", "type": "string"},
                                                            {"name": "salary", "type": "long"}]}
    env = {"type": "record", "name": "Envelope", "namespace": "dbserver1.inventory.customers", "fields": [
        {"name": "before", "type": ["null", value], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "op", "type": "string"}, {"name": "ts_ms", "type": ["null", "long"], "default": None}]}
    d = derive_schema(env, plan(("after.ssn", "rewrite", None), ("after.salary", "rewrite", None),
                                ("before.ssn", "rewrite", None), ("before.salary", "rewrite", None)))
    assert d["fields"][1]["type"] == ["null", "dbserver1.inventory.customers.Value"]
    assert record_fullname(env) == "dbserver1.inventory.customers.Envelope"
    fastavro.parse_schema(d)


def test_the_example_policy_output_fits_the_derived_schema():
    """Avro-decoded generated records, protected by the example policy's rules, are written by
    fastavro with the derived schema and read back equal."""
    route = compile_policy(load_policy("policies/examples/customer-pii.yaml"),
                           environ={"DPP_KEY_PSEUDONYM": "11" * 32, "DPP_KEY_FPE": "22" * 32,
                                    "DPP_KEY_DEAD_LETTER": "33" * 32}).route()
    sink = fastavro.parse_schema(derive_schema(copy.deepcopy(CUSTOMER_AVRO_SCHEMA), route.schema_plan))
    writer = fastavro.parse_schema(CUSTOMER_AVRO_SCHEMA)
    for rec in generate_records(300, 5):
        bio = io.BytesIO()
        fastavro.schemaless_writer(bio, writer, avro_datum(rec))
        tree = fastavro.schemaless_reader(io.BytesIO(bio.getvalue()), writer, None)
        out = route.protect(tree)
        if not isinstance(out, dict):
            continue  # blocked (consent withdrawn)
        assert out["birth_date"][:4] == rec["birth_date"][:4] and out["birth_date"][4:] == "-00-00"
        w = io.BytesIO()
        fastavro.schemaless_writer(w, sink, out)
        assert fastavro.schemaless_reader(io.BytesIO(w.getvalue()), sink, None) == out


def test_schema_plan_of_rule_models():
    route = compile_policy(load_policy("policies/examples/customer-pii.yaml"),
                           environ={"DPP_KEY_PSEUDONYM": "11" * 32, "DPP_KEY_FPE": "22" * 32,
                                    "DPP_KEY_DEAD_LETTER": "33" * 32}).route()
    p = _schema_plan(route.rules, None)
    assert [e for _, e, _ in p.rules].count("drop") == 1 and len(p.rules) == len(route.rules)


@pytest.mark.parametrize("data", [b"", b"\x01\x00\x00\x00\x01x", b"\x00\x00\x00", b"{}"])
def test_unframe_refuses_bytes_without_the_wire_format(data):
    with pytest.raises(FormatError) as ei:
        unframe(data)
    assert ei.value.reason.value == "not-confluent-framed"


def test_frame_round_trip():
    sid, payload = unframe(frame(70000, b"abc"))
    assert sid == 70000 and bytes(payload) == b"abc"


# ------------------------------------------------------------------------------ JSON Schema
def test_json_schema_derivation():
    s = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Customer", "type": "object",
         "properties": {"id": {"type": "integer"}, "email": {"type": "string", "format": "email"},
                        "note": {"type": ["string", "null"]}, "addr": {"$ref": "#/$defs/A"}},
         "required": ["id", "email", "note"], "additionalProperties": False,
         "$defs": {"A": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {"type": "integer"}}}}}
    d = js.derive_schema(s, plan(("id", "rewrite", None), ("email", "rewrite", None), ("note", "drop", None),
                                 ("addr.zip", "redact", None)))
    assert d["properties"]["id"] == {"type": "string"} and d["properties"]["email"] == {"type": "string"}
    assert "note" not in d["properties"] and d["required"] == ["id", "email"]
    assert d["properties"]["addr"]["properties"]["zip"]["type"] == ["integer", "null"]
    import jsonschema
    jsonschema.Draft202012Validator(d).validate({"id": "x", "email": "em_1", "addr": {"zip": None}})
