"""Protobuf topics through a real schema registry (``deploy/registry.sh``: Apicurio Registry's
Confluent-compatible API) and the real broker: ``dpp run`` with
``policies/examples/customer-pii-protobuf.yaml``.

In: 10,000 generated customer records as Protobuf (Confluent wire format with message indexes),
keyed by the customer's mobile number, with an ``x-user-email`` header (and an ``x-caller-phone``
header a glob drops). The writer schema is ``.proto`` text (as Java clients register it) for the
first half; then it evolves (a field added) and is registered as a base64 ``FileDescriptorProto``
(as the Python serializer registers it). Tombstones of some keys, and bad input: values without
the magic byte, an unknown schema id, bytes that do not decode, keys that are not UTF-8. Out,
read back with kafka-python, sink schemas fetched by plain HTTP and compiled with protoc, messages
decoded with the protobuf runtime: every record in the sink exactly once, in the dead-letter topic
with its reason, or a counted block; no personal value in any sink or dead-letter value, key or
header; FPE fields decrypt back; one source key gives one protected key (tombstones too) and one
partition.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import urllib.request

import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

from proxy.crypto.ff1 import FF1
from proxy.generator import CUSTOMER_PROTO, customer_message_class, protobuf_doc
from proxy.stream.deadletter import open_record

from .helpers import (KAFKA_PYTHON_WARNINGS, ROOT, DppProcess, check_fpe, create_topics, delete_group,
                      delete_topics, drain, generated_records, metric, personal_values, policy_copy, produce,
                      read_topic)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

EXAMPLE = ROOT / "policies" / "examples" / "customer-pii-protobuf.yaml"
ROUTE = "crm-to-analytics-protobuf"
N = 10_000
TWEAK = b"field:customer-pii-protobuf:"


def register(url: str, subject: str, schema: str) -> int:
    body = json.dumps({"schema": schema, "schemaType": "PROTOBUF"}).encode()
    req = urllib.request.Request(f"{url}/subjects/{subject}/versions", data=body, method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["id"]


_CLASSES: dict[int, object] = {}


def sink_class(url: str, sid: int):
    """``dpp.example.Customer`` of sink schema ``sid``: text fetched by plain HTTP, compiled by protoc."""
    if sid not in _CLASSES:
        with urllib.request.urlopen(f"{url}/schemas/ids/{sid}", timeout=10) as r:
            got = json.loads(r.read())
        assert got.get("schemaType") == "PROTOBUF" and not got.get("references")
        import grpc_tools
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "sink.proto"), "w") as f:
                f.write(got["schema"])
            out = os.path.join(d, "set.pb")
            subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{d}",
                            f"-I{os.path.join(os.path.dirname(grpc_tools.__file__), '_proto')}", "--include_imports",
                            f"--descriptor_set_out={out}", "sink.proto"], check=True)
            fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
        pool = descriptor_pool.DescriptorPool()
        for fdp in fds.file:
            pool.Add(fdp)
        _CLASSES[sid] = message_factory.GetMessageClass(pool.FindMessageTypeByName("dpp.example.Customer"))
    return _CLASSES[sid]


def decode(url: str, value: bytes) -> tuple[int, dict]:
    assert value[0] == 0, "sink record without the magic byte"
    sid = struct.unpack(">I", value[1:5])[0]
    assert value[5] == 0, "message indexes other than [0]"
    msg = sink_class(url, sid)()
    msg.ParseFromString(value[6:])
    return sid, json_format.MessageToDict(msg, preserving_proto_field_name=True)


def framed(sid: int, msg) -> bytes:
    return b"\x00" + struct.pack(">I", sid) + b"\x00" + msg.SerializeToString()


def evolved_class():
    from proxy.formats.protobuf import build_pool, compile_files
    text = CUSTOMER_PROTO.replace("  google.protobuf.Timestamp created_at = 15;\n",
                                  "  google.protobuf.Timestamp created_at = 15;\n  optional string loyalty_tier = 16;\n")
    pool = build_pool(compile_files({"customer.proto": text}, "customer.proto"))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("dpp.example.Customer"))


def message(rec: dict, sid: int, cls, extra: dict | None = None):
    doc = protobuf_doc(rec)
    doc.update(extra or {})
    headers = [("x-user-email", rec["email"].encode()), ("x-caller-phone", rec["mobile"].encode()),
               ("source", None)]
    return rec["mobile"].encode(), framed(sid, json_format.ParseDict(doc, cls())), headers


@pytest.fixture
def protobuf_route(kafka_bootstrap, schema_registry_url, topic_prefix, demo_keys, tmp_path):
    policy, topics = policy_copy(tmp_path, topic_prefix, EXAMPLE)
    create_topics(kafka_bootstrap, topics.all)
    try:
        yield policy, topics
    finally:
        delete_topics(kafka_bootstrap, topics.all)
        delete_group(kafka_bootstrap, topics.group)


def test_protobuf_end_to_end(protobuf_route, kafka_bootstrap, schema_registry_url, demo_keys, tmp_path):
    from confluent_kafka.schema_registry.common.protobuf import _schema_to_str
    policy, t = protobuf_route
    url = schema_registry_url
    v1 = register(url, f"{t.source}-value", CUSTOMER_PROTO)
    records = generated_records(N)
    first, second = records[: N // 2], records[N // 2:]
    cls1 = customer_message_class()
    msgs = [message(r, v1, cls1) for r in first]
    phone = [r["mobile"].encode() for r in first]
    bad = ([(phone[i], orjson.dumps(first[i]), None) for i in range(5)]                              # no magic byte
           + [(phone[i], b"\x00\x7f\xff\xff\xf0\x00\x0a\x01x", None) for i in range(5, 8)]       # unknown id
           + [(phone[i], b"\x00" + struct.pack(">I", v1) + b"\x00\x0a\xff\xff\xff\xff\x0f", None)
              for i in range(8, 11)]                                                              # does not decode
           + [(b"\xff\xfe-%d" % i, msgs[i][1], None) for i in range(3)])                           # key not UTF-8
    tombstones = [(first[i]["mobile"].encode(), None, None) for i in range(0, 40, 2)]
    batch1 = msgs + bad + tombstones
    produce(kafka_bootstrap, t.source, batch1)
    env = dict(os.environ, DPP_SCHEMA_REGISTRY_URL=url)
    with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="dpp-protobuf") as dpp:
        dpp.wait_ready()
        drain(dpp, kafka_bootstrap, t, len(batch1), timeout_s=240)
        cls2 = evolved_class()   # the source evolves: a field added; registered as a base64 descriptor
        v2 = register(url, f"{t.source}-value", _schema_to_str(cls2.DESCRIPTOR.file))
        assert v2 != v1
        batch2 = [message(r, v2, cls2, {"loyalty_tier": "gold"} if i % 3 else None) for i, r in enumerate(second)]
        produce(kafka_bootstrap, t.source, batch2)
        m = drain(dpp, kafka_bootstrap, t, len(batch1) + len(batch2), timeout_s=240)
        assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr()
    total = len(batch1) + len(batch2)
    sink = read_topic(kafka_bootstrap, t.sink)
    dead = read_topic(kafka_bootstrap, t.dead_letter)
    blocked = metric(m, "dpp_records_blocked_total", route=ROUTE)
    assert metric(m, "dpp_records_consumed_total", route=ROUTE) == total
    assert len(sink) + len(dead) + blocked == total
    assert len(sink) == metric(m, "dpp_records_produced_total", route=ROUTE)
    print(f"\nprotobuf: consumed={total} sink={len(sink)} dead-letter={len(dead)} blocked={blocked:.0f}")

    reasons: dict[str, int] = {}
    for d in dead:
        reasons[d.header("dpp.reason")] = reasons.get(d.header("dpp.reason"), 0) + 1
    assert reasons == {"not-confluent-framed": 5, "unknown-schema": 3, "decode-failed": 3, "key-decode-failed": 3}
    dlq_key = bytes.fromhex(demo_keys["DPP_KEY_DEAD_LETTER"])
    originals = {(k, v) for k, v, _ in bad}
    for d in dead:
        h = {k: v.decode() for k, v in d.headers}
        opened = open_record(dlq_key, d.value, h)
        assert (opened.key, opened.value) in originals
        if h["dpp.reason"] == "key-decode-failed":
            assert d.key is None
        else:
            assert d.key.startswith(b"mob_") and d.key != opened.key
        assert all(k.startswith("dpp.") for k, _ in d.headers)

    by_id: dict[str, dict] = {}
    sink_ids: set[int] = set()
    partitions_of_key: dict[bytes, set[int]] = {}
    tomb_keys = {}
    for r in sink:
        partitions_of_key.setdefault(r.key, set()).add(r.partition)
        if r.value is None:
            tomb_keys[r.key] = r
            continue
        sid, rec = decode(url, r.value)
        sink_ids.add(sid)
        assert rec["record_id"] not in by_id, "a record reached the sink twice"
        by_id[rec["record_id"]] = {"out": rec, "key": r.key, "headers": dict(r.headers), "sid": sid}
    assert len(sink_ids) == 2, "the derived sink schema did not follow the source's evolution"
    assert len(tomb_keys) == len(tombstones)
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), "one source key spread over sink partitions"
    ff1 = FF1(bytes.fromhex(demo_keys["DPP_KEY_FPE"]), "0123456789")
    src = {r["record_id"]: r for r in records}
    second_ids = {r["record_id"] for r in second}
    key_of_mobile: dict[str, bytes] = {}
    for rid, got in by_id.items():
        rec, out = src[rid], got["out"]
        blob = orjson.dumps(out) + got["key"] + b"".join(v for v in got["headers"].values() if v)
        for secret in personal_values(rec):
            assert secret.encode() not in blob, f"{rid}: a personal value left in clear"
        assert "street" not in out["address"]
        assert out["mobile"].encode() == got["key"]
        assert got["headers"]["x-user-email"].startswith(b"em_") and "x-caller-phone" not in got["headers"]
        check_fpe(rec["id_number"], out["id_number"], ff1, TWEAK + b"id_number", rid)
        check_fpe(rec["bank_card"], out["bank_card"], ff1, TWEAK + b"bank_card", rid)
        assert out["birth_date"] == rec["birth_date"][:4] + "-00-00"
        assert out["created_at"] == rec["created_at"] and out["segment"] == rec["segment"]
        if rid in second_ids and "loyalty_tier" in out:
            assert out["loyalty_tier"] == "gold"
        key_of_mobile.setdefault(rec["mobile"], got["key"])
        assert key_of_mobile[rec["mobile"]] == got["key"]
    assert any("loyalty_tier" in g["out"] for g in by_id.values()), "the evolved field never reached the sink"
    for i in range(0, 40, 2):
        if first[i]["mobile"] in key_of_mobile:
            assert key_of_mobile[first[i]["mobile"]] in tomb_keys
    expected_sink = {r["record_id"] for r in records if r["consent"]["analytics"] is not False}
    assert set(by_id) == expected_sink
    for r in records[:200]:
        for secret in personal_values(r):
            assert secret not in logs
