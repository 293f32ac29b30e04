"""Avro topics through a real schema registry (``deploy/registry.sh``: Apicurio Registry's
Confluent-compatible API) and the real broker: ``dpp run --schema-registry URL`` with
``policies/examples/customer-pii-avro.yaml``.

In: 10,000 generated customer records as Avro (Confluent wire format), keyed by the customer's
mobile number, with an ``x-user-email`` header (and an ``x-caller-phone`` header a glob drops);
the writer schema evolves half-way through the run (a field added, with a default); tombstones of
some keys; and bad input: values without the magic byte, an unknown schema id, bytes that do not
decode, keys that are not UTF-8. Out, read back with kafka-python, Avro decoded with fastavro
and writer/sink schemas fetched by plain HTTP: every record in the sink exactly once, in the
dead-letter topic with its reason, or a counted block; no personal value in any sink or
dead-letter value, key or header; every sink record decodes with the schema its id names; FPE
fields decrypt back; one source key gives one protected key (tombstones too) and one partition.
"""
from __future__ import annotations

import copy
import io
import json
import os
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import fastavro
import orjson
import pytest

from proxy.crypto.ff1 import FF1
from proxy.generator import CUSTOMER_AVRO_SCHEMA, avro_datum
from proxy.stream.deadletter import open_record

from .helpers import (KAFKA_PYTHON_WARNINGS, ROOT, DppProcess, check_fpe, committed_offsets, create_topics,
                      delete_group, delete_topics, drain, wait_until, generated_records, metric, personal_values, policy_copy, produce, read_topic)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

EXAMPLE = ROOT / "policies" / "examples" / "customer-pii-avro.yaml"
ROUTE = "crm-to-analytics-avro"
N = 10_000
TWEAK = b"field:customer-pii-avro:"


def register(url: str, subject: str, schema: dict) -> int:
    """Register ``schema`` under ``subject`` with plain HTTP (the Confluent REST API); its id."""
    body = json.dumps({"schema": json.dumps(schema), "schemaType": "AVRO"}).encode()
    req = urllib.request.Request(f"{url}/subjects/{subject}/versions", data=body, method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["id"]


_SCHEMAS: dict[int, object] = {}


def schema_by_id(url: str, sid: int):
    """The parsed schema of id ``sid``, fetched with plain HTTP (``GET /schemas/ids/{id}``)."""
    if sid not in _SCHEMAS:
        with urllib.request.urlopen(f"{url}/schemas/ids/{sid}", timeout=10) as r:
            _SCHEMAS[sid] = fastavro.parse_schema(json.loads(json.loads(r.read())["schema"]))
    return _SCHEMAS[sid]


def avro_bytes(sid: int, schema, datum: dict) -> bytes:
    bio = io.BytesIO()
    fastavro.schemaless_writer(bio, schema, datum)
    return b"\x00" + struct.pack(">I", sid) + bio.getvalue()


def decode(url: str, value: bytes) -> tuple[int, dict]:
    assert value[0] == 0, "sink record without the magic byte"
    sid = struct.unpack(">I", value[1:5])[0]
    bio = io.BytesIO(value[5:])
    out = fastavro.schemaless_reader(bio, schema_by_id(url, sid), None)
    assert bio.tell() == len(value) - 5, "bytes left after the sink record"
    return sid, out


def evolved_schema() -> dict:
    s = copy.deepcopy(CUSTOMER_AVRO_SCHEMA)
    s["fields"].append({"name": "loyalty_tier", "type": ["null", "string"], "default": None})
    return s


@pytest.fixture
def avro_route(kafka_bootstrap, schema_registry_url, topic_prefix, demo_keys, tmp_path):
    policy, topics = policy_copy(tmp_path, topic_prefix, EXAMPLE)
    create_topics(kafka_bootstrap, topics.all)
    try:
        yield policy, topics
    finally:
        delete_topics(kafka_bootstrap, topics.all)
        delete_group(kafka_bootstrap, topics.group)


def message(rec: dict, sid: int, schema, extra: dict | None = None):
    datum = avro_datum(rec)
    if extra:
        datum.update(extra)
    headers = [("x-user-email", rec["email"].encode()), ("x-caller-phone", rec["mobile"].encode()),
               ("source", None)]
    return rec["mobile"].encode(), avro_bytes(sid, schema, datum), headers


def test_avro_end_to_end(avro_route, kafka_bootstrap, schema_registry_url, demo_keys, tmp_path):
    policy, t = avro_route
    url = schema_registry_url
    v1 = register(url, f"{t.source}-value", CUSTOMER_AVRO_SCHEMA)
    records = generated_records(N)
    first, second = records[: N // 2], records[N // 2:]
    p1 = fastavro.parse_schema(CUSTOMER_AVRO_SCHEMA)
    msgs = [message(r, v1, p1) for r in first]
    phone = [r["mobile"].encode() for r in first]
    bad = ([(phone[i], orjson.dumps(first[i]), None) for i in range(5)]                              # no magic byte
           + [(phone[i], b"\x00\x7f\xff\xff\xf0" + b"\x02x", None) for i in range(5, 8)]         # unknown id
           + [(phone[i], b"\x00" + struct.pack(">I", v1) + b"\xff\xff\xff", None) for i in range(8, 11)]
           + [(b"\xff\xfe-%d" % i, msgs[i][1], None) for i in range(3)])                           # key not UTF-8
    tombstones = [(first[i]["mobile"].encode(), None, None) for i in range(0, 40, 2)]
    batch1 = msgs + bad + tombstones
    produce(kafka_bootstrap, t.source, batch1)
    env = dict(os.environ, DPP_SCHEMA_REGISTRY_URL=url)
    with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="dpp-avro") as dpp:
        dpp.wait_ready()
        drain(dpp, kafka_bootstrap, t, len(batch1), timeout_s=240)
        # the source schema evolves in the middle of the run: a field added, with a default
        v2_schema = evolved_schema()
        v2 = register(url, f"{t.source}-value", v2_schema)
        assert v2 != v1
        p2 = fastavro.parse_schema(v2_schema)
        batch2 = [message(r, v2, p2, {"loyalty_tier": "gold" if i % 3 else None}) for i, r in enumerate(second)]
        produce(kafka_bootstrap, t.source, batch2)
        m = drain(dpp, kafka_bootstrap, t, len(batch1) + len(batch2), timeout_s=240)
        with urllib.request.urlopen(f"http://127.0.0.1:{dpp.port}/readyz", timeout=5) as r:
            assert r.status == 200
        assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr()
    total = len(batch1) + len(batch2)
    sink = read_topic(kafka_bootstrap, t.sink)
    dead = read_topic(kafka_bootstrap, t.dead_letter)
    blocked = metric(m, "dpp_records_blocked_total", route=ROUTE)
    assert metric(m, "dpp_records_consumed_total", route=ROUTE) == total
    assert len(sink) + len(dead) + blocked == total
    assert len(sink) == metric(m, "dpp_records_produced_total", route=ROUTE)
    print(f"\navro: consumed={total} sink={len(sink)} dead-letter={len(dead)} blocked={blocked:.0f}")

    # -- dead letters: the bad input, each with its reason; nothing for the schema evolution ----------
    reasons: dict[str, int] = {}
    for d in dead:
        reasons[d.header("dpp.reason")] = reasons.get(d.header("dpp.reason"), 0) + 1
    assert reasons == {"not-confluent-framed": 5, "unknown-schema": 3, "decode-failed": 3, "key-decode-failed": 3}
    dlq_key = bytes.fromhex(demo_keys["DPP_KEY_DEAD_LETTER"])
    originals = {(k, v) for k, v, _ in bad}
    for d in dead:
        h = {k: v.decode() for k, v in d.headers}
        opened = open_record(dlq_key, d.value, h)
        assert (opened.key, opened.value) in originals           # the whole record comes back
        if h["dpp.reason"] == "key-decode-failed":
            assert d.key is None and h["dpp.stage"] == "key"      # no protected key: none at all
        else:
            assert d.key.startswith(b"mob_") and d.key != opened.key  # the protected key
        assert all(k.startswith("dpp.") for k, _ in d.headers)   # the source's headers only inside the seal

    # -- the sink: each record once, decodes with its schema, nothing personal in clear -------------
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
        by_id[rec["record_id"]] = {"out": rec, "key": r.key, "headers": dict(r.headers)}
    assert len(sink_ids) == 2, "the derived sink schema did not follow the source's evolution"
    assert len(tomb_keys) == len(tombstones)
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), "one source key spread over sink partitions"
    ff1 = FF1(bytes.fromhex(demo_keys["DPP_KEY_FPE"]), "0123456789")
    src = {r["record_id"]: r for r in records}
    key_of_mobile: dict[str, bytes] = {}
    for rid, got in by_id.items():
        rec, out = src[rid], got["out"]
        blob = orjson.dumps(out, default=str) + got["key"] + b"".join(
            v for v in got["headers"].values() if v)
        for secret in personal_values(rec):
            assert secret.encode() not in blob, f"{rid}: a personal value left in clear"
        assert "street" not in out["address"]
        assert out["mobile"].encode() == got["key"], "key and value pseudonym of the mobile differ (domain mobile)"
        assert got["headers"]["x-user-email"].startswith(b"em_") and "x-caller-phone" not in got["headers"]
        assert got["headers"]["dpp-policy"].startswith(b"customer-pii-avro@")
        check_fpe(rec["id_number"], out["id_number"], ff1, TWEAK + b"id_number", rid)
        check_fpe(rec["bank_card"], out["bank_card"], ff1, TWEAK + b"bank_card", rid)
        assert out["birth_date"] == rec["birth_date"][:4] + "-00-00"
        key_of_mobile.setdefault(rec["mobile"], got["key"])
        assert key_of_mobile[rec["mobile"]] == got["key"]
    for i in range(0, 40, 2):   # a tombstone's key is protected exactly like its value's key
        if first[i]["mobile"] in key_of_mobile:
            assert key_of_mobile[first[i]["mobile"]] in tomb_keys
    expected_sink = {r["record_id"] for r in records if r["consent"]["analytics"] is not False}
    assert set(by_id) == expected_sink
    for r in records[:200]:
        for secret in personal_values(r):
            assert secret not in logs


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def registry_script(url: str, action: str) -> None:
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    out = subprocess.run(["bash", str(ROOT / "deploy" / "registry.sh"), action],
                         env=dict(os.environ, DPP_REGISTRY_PORT=port), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_registry_outage_loses_nothing_and_lets_nothing_through(avro_route, kafka_bootstrap, schema_registry_url,
                                                                 demo_keys, tmp_path):
    """The registry stopped for 30 s while records of a schema the worker has not seen yet arrive:
    nothing is produced or committed meanwhile, /readyz is false; after the restart every record
    is in the sink, nothing dead-lettered, nothing in clear."""
    if os.environ.get("DPP_TEST_SCHEMA_REGISTRY_URL"):
        pytest.skip("the registry is external (DPP_TEST_SCHEMA_REGISTRY_URL): cannot stop it")
    policy, t = avro_route
    url = schema_registry_url
    records = generated_records(1000)
    v1 = register(url, f"{t.source}-value", CUSTOMER_AVRO_SCHEMA)
    produce(kafka_bootstrap, t.source, [message(r, v1, fastavro.parse_schema(CUSTOMER_AVRO_SCHEMA)) for r in records[:500]])
    env = dict(os.environ, DPP_SCHEMA_REGISTRY_URL=url)
    with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="dpp-outage") as dpp:
        dpp.wait_ready()
        drain(dpp, kafka_bootstrap, t, 500, timeout_s=120)
        v2_schema = evolved_schema()
        v2 = register(url, f"{t.source}-value", v2_schema)
        sink_before = len(read_topic(kafka_bootstrap, t.sink))
        registry_script(url, "stop")
        try:
            produce(kafka_bootstrap, t.source, [message(r, v2, fastavro.parse_schema(v2_schema), {"loyalty_tier": "x"})
                                               for r in records[500:]])
            wait_until(lambda: readyz(dpp.port)[0] == 503, 30, "/readyz false while the registry is down",
                       dpp.stderr_tail)
            assert "schema-registry" in readyz(dpp.port)[1]
            time.sleep(30)
            dpp.assert_running()
            assert len(read_topic(kafka_bootstrap, t.sink)) == sink_before, "records passed while the registry was down"
            assert committed_offsets(kafka_bootstrap, t.group, t.source) and \
                sum(committed_offsets(kafka_bootstrap, t.group, t.source).values()) == 500, "offsets committed meanwhile"
        finally:
            registry_script(url, "start")
        m = drain(dpp, kafka_bootstrap, t, 1000, timeout_s=120)
        wait_until(lambda: readyz(dpp.port)[0] == 200, 30, "/readyz true again", dpp.stderr_tail)
        assert dpp.stop() == 0
        logs = dpp.stderr()
    sink = read_topic(kafka_bootstrap, t.sink)
    dead = read_topic(kafka_bootstrap, t.dead_letter)
    assert not dead, f"{len(dead)} dead-lettered, reasons " \
        f"{sorted({dict(r.headers).get('dpp.reason', b'?').decode() for r in dead})}"
    blocked = metric(m, "dpp_records_blocked_total", route=ROUTE)
    assert len(sink) + blocked == 1000
    src = {r["record_id"]: r for r in records}
    ids = set()
    for r in sink:
        _, out = decode(url, r.value)
        assert out["record_id"] not in ids
        ids.add(out["record_id"])
        blob = orjson.dumps(out, default=str) + r.key + b"".join(v for _, v in r.headers if v)
        for secret in personal_values(src[out["record_id"]]):
            assert secret.encode() not in blob
    assert sum(1 for line in logs.splitlines() if "dependency unavailable" in line) == 1
    assert "dependency available again" in logs


def test_users_cases_through_the_registry(kafka_bootstrap, schema_registry_url, topic_prefix, demo_keys, tmp_path):
    """A record type reused by name in two fields (both protected), a ["null","string"] union holding
    null, and Debezium's before/after envelope with a rule on after.ssn: through the real registry."""
    url = schema_registry_url
    value = {"type": "record", "name": "Value", "fields": [{"name": "id", "type": "int"}, {"name": "ssn", "type": "string"},
                                                            {"name": "email", "type": ["null", "string"], "default": None}]}
    envelope = {"type": "record", "name": "Envelope", "namespace": "dbserver1.inventory.customers", "fields": [
        {"name": "before", "type": ["null", value], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "op", "type": "string"}]}
    src, sink, dlq = f"{topic_prefix}.cdc", f"{topic_prefix}.cdc.out", f"{topic_prefix}.cdc.dlq"
    policy = tmp_path / "cdc.yaml"
    policy.write_text(f"""version: 1
name: cdc
keys:
  p: {{source: env, name: DPP_KEY_PSEUDONYM}}
  d: {{source: env, name: DPP_KEY_DEAD_LETTER}}
routes:
  - name: cdc
    source: {src}
    sink: {sink}
    dead_letter: {dlq}
    dead_letter_key: d
    consumer_group: {topic_prefix}.g
    format: avro
    key: {{format: string}}
    rules:
      - {{field: after.ssn, action: pseudonymize, key: p}}
      - {{field: before.ssn, action: pseudonymize, key: p}}
      - {{field: after.email, action: mask}}
      - {{field: before.email, action: mask}}
""")
    create_topics(kafka_bootstrap, [src, sink, dlq])
    try:
        sid = register(url, f"{src}-value", envelope)
        parsed = fastavro.parse_schema(envelope)
        rows = [{"before": None, "after": {"id": 1, "ssn": "078-05-1120", "email": None}, "op": "c"},
                {"before": {"id": 1, "ssn": "078-05-1120", "email": None},
                 "after": {"id": 1, "ssn": "219-09-9999", "email": "a@example.invalid"}, "op": "u"}]
        produce(kafka_bootstrap, src, [(b"1", avro_bytes(sid, parsed, r), None) for r in rows])
        env = dict(os.environ, DPP_SCHEMA_REGISTRY_URL=url)
        with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="dpp-cdc") as dpp:
            dpp.wait_ready()
            dpp.wait_metric("dpp_records_produced_total", lambda v: v >= 2, 60, "two CDC records in the sink")
            assert dpp.stop() == 0
        out = [decode(url, r.value)[1] for r in read_topic(kafka_bootstrap, sink)]
        assert not read_topic(kafka_bootstrap, dlq)
        assert out[0]["before"] is None and out[0]["after"]["email"] is None      # the union holding null
        for rec in out:
            for part in ("before", "after"):
                if rec[part] is not None:
                    assert rec[part]["ssn"] not in ("078-05-1120", "219-09-9999") and len(rec[part]["ssn"]) == 64
        assert out[1]["after"]["email"] == "*@*******.*******"
        # before.ssn and after.ssn are bound to their own paths (no domain): the same SSN differs
        assert out[1]["before"]["ssn"] != out[0]["after"]["ssn"]
    finally:
        delete_topics(kafka_bootstrap, [src, sink, dlq])
        delete_group(kafka_bootstrap, f"{topic_prefix}.g")


def test_scan_reads_an_avro_topic_and_reports_tags_by_field_path(kafka_bootstrap, schema_registry_url, topic_prefix,
                                                                 tmp_path):
    """``dpp scan --format avro`` on a real topic: every field path with its confluent:tags and the
    detectors' findings; no value printed; undecodable values counted as invalid."""
    topic = f"{topic_prefix}.scan.avro"
    create_topics(kafka_bootstrap, [topic])
    try:
        sid = register(schema_registry_url, f"{topic}-value", CUSTOMER_AVRO_SCHEMA)
        parsed = fastavro.parse_schema(CUSTOMER_AVRO_SCHEMA)
        records = generated_records(200)
        produce(kafka_bootstrap, topic, [message(r, sid, parsed)[:2] + (None,) for r in records]
                + [(b"k", b"not avro", None)])
        env = dict(os.environ)
        out = subprocess.run([sys.executable, "-m", "proxy", "--schema-registry", schema_registry_url, "scan",
                              "--format", "avro", "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
                              "--sample", "201", "--json"], capture_output=True, text=True, timeout=120, env=env,
                             cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        report = json.loads(out.stdout)
        assert report["records"] == 201 and report["invalid"] == 1
        fields = {f["path"]: f for f in report["fields"]}
        for path in ("name", "id_number", "mobile", "email", "bank_card"):
            assert fields[path]["tags"] == ["PII"], path
        assert fields["address.city"]["tags"] == [] and fields["orders[*].card_number"]["tags"] == []
        assert "CN_RESIDENT_ID" in str(fields["id_number"]["kinds"]) or fields["id_number"]["kinds"]
        table = subprocess.run([sys.executable, "-m", "proxy", "--schema-registry", schema_registry_url, "scan",
                                "--format", "avro", "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
                                "--sample", "201", "--suggest-policy", str(tmp_path / "starter.yaml")],
                               capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
        assert table.returncode == 0 and "TAGS" in table.stdout.splitlines()[0], table.stderr[-2000:]
        assert (tmp_path / "starter.yaml").is_file()  # the topic name, not the registry, names the route
        for r in records[:50]:
            for secret in personal_values(r):
                assert secret not in out.stdout + table.stdout
    finally:
        delete_topics(kafka_bootstrap, [topic])
