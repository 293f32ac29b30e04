"""Hostile writer schemas and Avro payloads (faults found by adversarial testing): each record
dead-letters with a bounded reason, fast, without crashing or stalling the worker.

The schema registry here is an in-memory :class:`~proxy.formats.base.SchemaSource` (the codec's
protocol); the real registry is exercised by ``tests/integration/test_avro_registry.py``.
"""
from __future__ import annotations

import io
import json
import time

import fastavro
import pytest

from proxy.formats.base import RegisteredSchema, frame
from proxy.policy.compiler import DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.stream.deadletter import pack_record, unpack_record

KEYS = {"K": "11" * 32, "DLQ": "22" * 32}


class Registry:
    """In-memory SchemaSource: ids from 100, registrations recorded."""

    def __init__(self):
        self.by_id: dict[int, RegisteredSchema] = {}
        self.n = 100

    def add(self, schema) -> int:
        self.n += 1
        self.by_id[self.n] = RegisteredSchema("AVRO", schema if isinstance(schema, str) else json.dumps(schema))
        return self.n

    def schema_by_id(self, i):
        return self.by_id[i]

    def schema_by_version(self, subject, version):
        raise KeyError(subject)

    def register(self, subject, schema):
        self.n += 1
        self.by_id[self.n] = schema
        return self.n


def route(rules: str, reg: Registry, extra: str = ""):
    text = f"""version: 1
name: hostile
keys:
  k: {{source: env, name: K}}
  dlq: {{source: env, name: DLQ}}
routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: dlq
    format: avro
{extra}    rules:
{rules}"""
    return compile_policy(load_policy_text(text), environ=KEYS, schema_source=reg).route()


def zz(n: int) -> bytes:
    """Avro long: zigzag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def timed(r, value: bytes):
    t0 = time.perf_counter()
    out = r.process(value)
    return out, time.perf_counter() - t0


def test_a_schema_nested_200_deep_dead_letters_instead_of_raising():
    t = '{"type":"record","name":"L0","fields":[{"name":"ssn","type":"string"}]}'
    for i in range(1, 200):
        t = '{"type":"record","name":"L%d","fields":[{"name":"c","type":%s}]}' % (i, t)
    reg = Registry()
    sid = reg.add(t)
    r = route("      - {field: ssn, action: mask}\n", reg)
    for _ in range(2):  # the derivation failure is cached per schema id
        out = r.process(frame(sid, b"\x02a"))
        assert (out.kind, out.reason) == (DEAD_LETTER, "serialize-failed")
    out = r.protect_records([frame(sid, b"\x02a")], [None], [None])[0][0]
    assert out.reason == "serialize-failed"


NODE = {"type": "record", "name": "Node", "fields": [{"name": "email", "type": "string"},
                                                     {"name": "next", "type": ["null", "Node"]}]}


def linked(n: int) -> bytes:
    return (zz(1) + b"a" + zz(1)) * n + zz(1) + b"a" + zz(0)


@pytest.mark.parametrize("depth", [900, 10_000])
def test_a_recursive_record_nested_deep_dead_letters_fast_not_a_segfault(depth):
    """fastavro's C reader overflows the C stack (SIGSEGV) near 3,000 levels; recursive schemas
    are read by its pure-Python reader, which ends in a RecursionError: decode-failed."""
    reg = Registry()
    sid = reg.add(NODE)
    r = route("      - {field: email, action: mask}\n", reg)
    out, dt = timed(r, frame(sid, linked(depth)))
    assert (out.kind, out.reason) == (DEAD_LETTER, "decode-failed") and dt < 2


def test_a_recursive_record_of_normal_depth_is_protected():
    reg = Registry()
    sid = reg.add(NODE)
    r = route("      - {field: email, action: pseudonymize, key: k}\n", reg)
    out = r.process(frame(sid, linked(20)))
    assert out.kind == SINK
    sink = fastavro.parse_schema(json.loads(reg.by_id[int.from_bytes(out.value[1:5], "big")].schema_str))
    rec = fastavro.schemaless_reader(io.BytesIO(out.value[5:]), sink, None)
    assert len(rec["email"]) == 64   # only the top level's email is named by the rule
    assert rec["next"]["email"] == "a"


def test_an_array_of_zero_width_items_is_refused_not_allocated():
    """A 16-byte record could declare 2**40 null items: the schema is refused at once."""
    s = {"type": "record", "name": "A", "fields": [{"name": "email", "type": "string"},
                                                   {"name": "arr", "type": {"type": "array", "items": "null"}}]}
    reg = Registry()
    sid = reg.add(s)
    r = route("      - {field: email, action: mask}\n", reg)
    out, dt = timed(r, frame(sid, zz(5) + b"a@b.c" + zz(2 ** 40) + zz(0)))
    assert (out.kind, out.reason) == (DEAD_LETTER, "serialize-failed") and dt < 1


def test_allow_list_through_a_map_of_records():
    w = {"type": "record", "name": "W", "fields": [{"name": "ok", "type": "string"}, {"name": "ssn", "type": "string"}]}
    s = {"type": "record", "name": "R", "fields": [{"name": "m", "type": {"type": "map", "values": w}}]}
    reg = Registry()
    sid = reg.add(s)
    bio = io.BytesIO()
    fastavro.schemaless_writer(bio, fastavro.parse_schema(s), {"m": {"k": {"ok": "x", "ssn": "123-45-6789"}}})
    r = route("      - {field: m.k.ok, action: keep}\n", reg, extra="    unlisted_fields: drop\n")
    out = r.process(frame(sid, bio.getvalue()))
    assert out.kind == SINK and b"123-45-6789" not in out.value


@pytest.mark.parametrize("name", ["x" * 70_000, "\udcff-lone-surrogate", b"\xff\x00raw"])
def test_dead_letter_content_takes_any_header_name(name):
    rec = unpack_record(pack_record(b"k", [(name, b"v")], b"value"))
    assert rec.value == b"value" and rec.headers[0][1] == b"v"


def test_duplicate_header_rule_names_are_refused():
    from proxy.errors import PolicyError
    text = """version: 1
name: p
keys:
  k: {source: env, name: K}
routes:
  - name: r
    source: a
    sink: b
    dead_letter: c
    dead_letter_key: k
    headers:
      - {header: x, action: drop, name: h}
      - {header: y, action: drop, name: h}
"""
    with pytest.raises(PolicyError) as ei:
        load_policy_text(text)
    assert ei.value.problems == [("<policy>", 13, "routes[0].headers[1].name", "rule name 'h' is used twice (headers[0])")]
