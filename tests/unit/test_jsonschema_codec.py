"""JSON Schema values in the Confluent wire format (:mod:`proxy.formats.jsonschema`) through a
compiled route: protected output validates against the derived schema and is framed with its id;
bad input dead-letters with its reason. In-memory registry (the codec's SchemaSource protocol)."""
from __future__ import annotations

import json

import jsonschema
import orjson
import pytest

from proxy.formats.base import RegisteredSchema, frame
from proxy.policy.compiler import DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text

from test_avro_hostile import KEYS, Registry  # noqa: E402 (tests/unit is on sys.path via conftest)

SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Customer", "type": "object",
          "properties": {"id": {"type": "integer"}, "email": {"type": "string", "format": "email"},
                         "note": {"type": "string"}, "tier": {"type": "string", "enum": ["a", "b"]}},
          "required": ["id", "email"]}


def setup():
    reg = Registry()
    reg.n += 1
    reg.by_id[reg.n] = RegisteredSchema("JSON", json.dumps(SCHEMA))
    text = f"""version: 1
name: js
keys:
  k: {{source: env, name: K}}
  dlq: {{source: env, name: DLQ}}
routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: dlq
    format: jsonschema
    rules:
      - {{field: id, action: pseudonymize, key: k, length: 16}}
      - {{field: email, action: mask}}
      - {{field: note, action: drop}}
      - {{field: tier, action: redact, value: 0}}
"""
    return reg, reg.n, compile_policy(load_policy_text(text), environ=KEYS, schema_source=reg).route()


def test_protected_value_validates_against_the_derived_schema():
    reg, sid, r = setup()
    out = r.process(frame(sid, orjson.dumps({"id": 42, "email": "a@example.invalid", "note": "x", "tier": "a"})))
    assert out.kind == SINK
    sink_id = int.from_bytes(out.value[1:5], "big")
    assert sink_id != sid
    sink = json.loads(reg.by_id[sink_id].schema_str)
    doc = orjson.loads(out.value[5:])
    jsonschema.Draft202012Validator(sink).validate(doc)
    assert len(doc["id"]) == 16 and "note" not in doc and doc["tier"] == 0 and "example" not in doc["email"]


@pytest.mark.parametrize("value, reason", [
    (b'{"id": 1}', "not-confluent-framed"),
    (frame(999, b"{}"), "unknown-schema"),
    (None, None),
])
def test_bad_input(value, reason):
    reg, sid, r = setup()
    out = r.process(value)
    if reason is None:
        assert out.kind == SINK and out.value is None   # a tombstone stays a tombstone
    else:
        assert (out.kind, out.reason) == (DEAD_LETTER, reason)


def test_garbage_after_the_frame_and_an_invalid_output():
    reg, sid, r = setup()
    assert r.process(frame(sid, b"{not json")).reason == "decode-failed"
    # "email" required by the sink schema: a record without it cannot be written validly
    out = r.process(frame(sid, orjson.dumps({"id": 1})))
    assert (out.kind, out.reason) == (DEAD_LETTER, "schema-validation-failed")
