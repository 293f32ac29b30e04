"""Rules that select fields by schema tag (``select: {tag: PII}``, Confluent data contracts'
``confluent:tags``) on Avro and JSON Schema routes: every tagged field of every writer schema
version is protected, at any depth (records, arrays, maps, named types reused, unions), with the
output a field rule on that path would give; field rules win over tag rules; the sink schema is
derived for the tagged fields; a bad select fails at load. In-memory registry (the codec's
SchemaSource protocol)."""
from __future__ import annotations

import io
import json

import fastavro
import orjson
import pytest

from proxy.errors import PolicyError
from proxy.formats.base import EVERY_ITEM, EVERY_VALUE, RegisteredSchema, frame
from proxy.formats.avro import _expand, tagged_paths
from proxy.policy.compiler import DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text
from policykit import policy_text

from test_avro_hostile import KEYS, Registry  # noqa: E402 (tests/unit is on sys.path via conftest)

PII = ["PII"]
ADDRESS = {"type": "record", "name": "Address", "fields": [
    {"name": "street", "type": "string", "confluent:tags": PII}, {"name": "city", "type": "string"}]}
SCHEMA = {"type": "record", "name": "Customer", "namespace": "t", "fields": [
    {"name": "id", "type": "string"},
    {"name": "email", "type": ["null", "string"], "default": None, "confluent:tags": PII},
    {"name": "phone", "type": "long", "confluent:tags": ["PII", "CONTACT"]},
    {"name": "home", "type": ADDRESS},
    {"name": "work", "type": ["null", "Address"], "default": None},
    {"name": "cards", "type": {"type": "array", "items": {"type": "record", "name": "Card", "fields": [
        {"name": "number", "type": "string", "confluent:tags": ["PCI"]}, {"name": "brand", "type": "string"}]}}},
    {"name": "notes", "type": {"type": "map", "values": {"type": "record", "name": "Note", "fields": [
        {"name": "text", "type": "string", "confluent:tags": PII}]}}},
    {"name": "name", "type": "string", "confluent:tags": PII},
]}
DATUM = {"id": "c1", "email": "a@example.invalid", "phone": 13800138000, "home": {"street": "1 Main St", "city": "X"},
         "work": {"street": "2 Work Rd", "city": "Y"}, "cards": [{"number": "4111111111111111", "brand": "visa"}],
         "notes": {"n1": {"text": "call me"}}, "name": "Zhang San"}


def policy(rules: str, fmt: str = "avro") -> str:
    """Policy text with ``rules`` (YAML list lines) on one ``fmt`` route (tests/policykit)."""
    return policy_text([line.strip()[2:] for line in rules.splitlines() if line.strip()], name="tags",
                       route=f"    format: {fmt}\n")


def avro_route(rules: str, schema=SCHEMA):
    reg = Registry()
    sid = reg.add(schema)
    return reg, sid, compile_policy(load_policy_text(policy(rules)), environ=KEYS, schema_source=reg).route()


def avro_bytes(sid: int, schema, datum) -> bytes:
    bio = io.BytesIO()
    fastavro.schemaless_writer(bio, fastavro.parse_schema(schema), datum)
    return frame(sid, bio.getvalue())


def read_sink(reg, value: bytes) -> dict:
    sink = fastavro.parse_schema(json.loads(reg.by_id[int.from_bytes(value[1:5], "big")].schema_str))
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), sink, None)


def test_tagged_paths_of_an_avro_schema():
    paths = tagged_paths(_expand(SCHEMA, None, {}, ()), {"PII", "PCI"})
    assert paths["PII"] == [("email",), ("phone",), ("home", "street"), ("work", "street"),
                            ("notes", EVERY_VALUE, "text"), ("name",)]
    assert paths["PCI"] == [("cards", EVERY_ITEM, "number")]


def test_every_tagged_field_is_protected_at_any_depth():
    reg, sid, r = avro_route("      - {select: {tag: PII}, action: pseudonymize, key: k, length: 16}\n"
                             "      - {select: {tag: PCI}, action: fpe, key: k}\n")
    out = r.process(avro_bytes(sid, SCHEMA, DATUM))
    assert out.kind == SINK, out.reason
    got = read_sink(reg, out.value)
    for v in (got["email"], got["phone"], got["home"]["street"], got["work"]["street"],
              got["notes"]["n1"]["text"], got["name"]):
        assert isinstance(v, str) and len(v) == 16
    assert got["home"]["city"] == "X" and got["id"] == "c1" and got["cards"][0]["brand"] == "visa"
    assert got["cards"][0]["number"].isdigit() and got["cards"][0]["number"] != "4111111111111111"
    blob = orjson.dumps(got)
    for clear in (b"a@example", b"13800138000", b"Main St", b"Work Rd", b"call me", b"Zhang"):
        assert clear not in blob
    labels = dict(zip(r.rule_labels, r.stats.transforms))
    assert labels == {"tag:PII": 6, "tag:PCI": 1}


def test_a_tag_rule_gives_what_a_field_rule_on_that_path_gives():
    _, sid, by_tag = avro_route("      - {select: {tag: PII}, action: pseudonymize, key: k}\n")
    reg2, sid2, by_field = avro_route("      - {field: home.street, action: pseudonymize, key: k}\n")
    a = read_sink(_, by_tag.process(avro_bytes(sid, SCHEMA, DATUM)).value)
    b = read_sink(reg2, by_field.process(avro_bytes(sid2, SCHEMA, DATUM)).value)
    assert a["home"]["street"] == b["home"]["street"]


def test_a_field_rule_wins_over_a_tag_rule_and_the_first_tag_rule_wins():
    reg, sid, r = avro_route("      - {field: email, action: keep}\n"
                             "      - {select: {tag: CONTACT}, action: redact, value: 0}\n"
                             "      - {select: {tag: PII}, action: mask}\n")
    got = read_sink(reg, r.process(avro_bytes(sid, SCHEMA, DATUM)).value)
    assert got["email"] == "a@example.invalid"      # the field rule
    assert got["phone"] == 0                         # CONTACT came first
    assert got["name"] == "***** ***"


def test_a_tag_rule_can_drop_and_the_sink_schema_follows():
    reg, sid, r = avro_route("      - {select: {tag: PII}, action: drop}\n")
    out = r.process(avro_bytes(sid, SCHEMA, DATUM))
    got = read_sink(reg, out.value)
    assert "email" not in got and "street" not in got["home"] and got["notes"]["n1"] == {}


def test_a_new_schema_version_with_a_new_tagged_field_is_protected_without_a_reload():
    reg, sid, r = avro_route("      - {select: {tag: PII}, action: mask}\n")
    v2 = json.loads(json.dumps(SCHEMA))
    v2["fields"].append({"name": "passport", "type": "string", "default": "", "confluent:tags": PII})
    sid2 = reg.add(v2)
    got = read_sink(reg, r.process(avro_bytes(sid2, v2, {**DATUM, "passport": "E12345678"})).value)
    assert got["passport"] == "*********"


def test_a_schema_without_tags_passes_with_nothing_counted_as_protected():
    plain = {"type": "record", "name": "P", "fields": [{"name": "x", "type": "string"}]}
    reg, sid, r = avro_route("      - {select: {tag: PII}, action: mask}\n", plain)
    out = r.process(avro_bytes(sid, plain, {"x": "hello"}))
    assert out.kind == SINK and read_sink(reg, out.value) == {"x": "hello"}
    assert r.stats.unmatched[r.rule_labels.index("tag:PII")] == 1


def test_a_tagged_field_of_the_wrong_shape_fails_closed():
    from proxy.policy.compiler import walk_tagged
    from proxy.policy.paths import PathShapeError
    with pytest.raises(PathShapeError):
        walk_tagged({"notes": "not a map"}, ("notes", EVERY_VALUE, "text"), lambda c, k: None)
    assert walk_tagged({"notes": None}, ("notes", EVERY_VALUE, "text"), lambda c, k: None) == 0


JSON_SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "C", "type": "object",
               "properties": {"id": {"type": "integer"},
                              "email": {"type": "string", "format": "email", "confluent:tags": PII},
                              "phones": {"type": "array", "items": {"type": "string", "confluent:tags": PII}},
                              "addr": {"$ref": "#/$defs/addr"}},
               "$defs": {"addr": {"type": "object", "properties": {"street": {"type": "string", "confluent:tags": PII}}}}}


def test_json_schema_tags_select_properties_items_and_refs():
    import jsonschema
    reg = Registry()
    reg.n += 1
    reg.by_id[reg.n] = RegisteredSchema("JSON", json.dumps(JSON_SCHEMA))
    r = compile_policy(load_policy_text(policy("      - {select: {tag: PII}, action: pseudonymize, key: k, length: 12}\n",
                                               "jsonschema")), environ=KEYS, schema_source=reg).route()
    out = r.process(frame(reg.n, orjson.dumps({"id": 1, "email": "a@example.invalid", "phones": ["+8613800138000"],
                                                "addr": {"street": "1 Main St"}})))
    assert out.kind == SINK, out.reason
    doc = orjson.loads(out.value[5:])
    assert len(doc["email"]) == 12 and len(doc["phones"][0]) == 12 and len(doc["addr"]["street"]) == 12
    sink = json.loads(reg.by_id[int.from_bytes(out.value[1:5], "big")].schema_str)
    assert "format" not in sink["properties"]["email"]
    jsonschema.Draft202012Validator(sink).validate(doc)


@pytest.mark.parametrize("rule, fmt, message", [
    ("{select: {tag: PII}, action: mask}", "json", "needs format avro or jsonschema"),
    ("{select: {tag: PII}, action: mask}", "protobuf", "needs format avro or jsonschema"),
    ("{select: {tag: PII}, field: a, action: mask}", "avro", "a field or a select, not both"),
    ("{select: {tag: PII}, action: keep}", "avro", "not keep"),
    ("{select: {tag: 'P I I'}, action: mask}", "avro", "select.tag"),
    ("{select: {tag: PII}, action: mask}\n      - {select: {tag: PII}, action: drop}", "avro", "used twice"),
])
def test_a_bad_select_fails_at_load_with_file_line_and_path(rule, fmt, message):
    with pytest.raises(PolicyError) as e:
        load_policy_text(policy(f"      - {rule}\n", fmt), "tags.yaml")
    text = str(e.value)
    assert message in text and "tags.yaml:" in text and "routes[0].rules[" in text
