"""``dpp demo``: the README's main job, end to end on a real broker.

Starts the local single-node Kafka (``deploy/kafka.sh``) unless a broker is given, creates the
example route's topics, produces generated customer records (plus three malformed ones, to show
the dead-letter path), runs the proxy in-process with its metrics endpoint, and prints one source
record beside its protected sink record and the metric totals read back from ``/metrics``.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
import unicodedata
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = ROOT / "policies" / "examples" / "customer-pii.yaml"
AVRO_POLICY = ROOT / "policies" / "examples" / "customer-pii-avro.yaml"
PROTOBUF_POLICY = ROOT / "policies" / "examples" / "customer-pii-protobuf.yaml"
KEY_VARS = ("DPP_KEY_PSEUDONYM", "DPP_KEY_FPE", "DPP_KEY_DEAD_LETTER")


def ensure_demo_keys() -> Path | None:
    """Set the example policy's key variables from ``.cache/demo-keys.env`` (made once, mode 0600)
    when they are not set already. Returns the file used, or ``None`` if the environment had them."""
    if all(os.environ.get(v) for v in KEY_VARS):
        return None
    path = ROOT / ".cache" / "demo-keys.env"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            for v in KEY_VARS:
                f.write(f"export {v}={secrets.token_hex(32)}\n")
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        os.environ.setdefault(name, value)
    return path


def start_local_kafka() -> str:
    """Run ``deploy/kafka.sh start``; returns the bootstrap address it prints."""
    out = subprocess.run(["bash", str(ROOT / "deploy" / "kafka.sh"), "start"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()
    return out[-1]


def start_local_registry() -> str:
    """Run ``deploy/registry.sh start`` (Apicurio Registry); returns the Confluent-API base URL it prints."""
    out = subprocess.run(["bash", str(ROOT / "deploy" / "registry.sh"), "start"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()
    return out[-1]


class _Avro:
    """The demo's Avro side: the writer schema registered under ``<source>-value``, records
    written in the Confluent wire format, sink records read with the schema their id names."""

    def __init__(self, registry, source_topic: str):
        import fastavro

        from .formats.base import RegisteredSchema
        from .generator import CUSTOMER_AVRO_SCHEMA
        self.registry, self.fastavro = registry, fastavro
        self.schema_id = registry.register(f"{source_topic}-value",
                                           RegisteredSchema("AVRO", orjson.dumps(CUSTOMER_AVRO_SCHEMA).decode()))
        self.parsed = fastavro.parse_schema(CUSTOMER_AVRO_SCHEMA)
        self._sink: dict[int, object] = {}

    def encode(self, rec: dict) -> bytes:
        import io

        from .formats.base import frame
        from .generator import avro_datum
        bio = io.BytesIO()
        self.fastavro.schemaless_writer(bio, self.parsed, avro_datum(rec))
        return frame(self.schema_id, bio.getvalue())

    def decode(self, value: bytes) -> dict:
        import io

        from .formats.base import unframe
        sid, payload = unframe(value)
        if sid not in self._sink:
            self._sink[sid] = self.fastavro.parse_schema(orjson.loads(self.registry.schema_by_id(sid).schema_str))
        return self.fastavro.schemaless_reader(io.BytesIO(payload), self._sink[sid], None)


class _Protobuf:
    """The demo's Protobuf side: :data:`~proxy.generator.CUSTOMER_PROTO` registered under
    ``<source>-value``, records written in the Confluent wire format (message indexes ``[0]``),
    sink records read with the ``.proto`` text their id names."""

    def __init__(self, registry, source_topic: str):
        from .formats.base import RegisteredSchema
        from .generator import CUSTOMER_PROTO, customer_message_class
        self.registry = registry
        self.schema_id = registry.register(f"{source_topic}-value", RegisteredSchema("PROTOBUF", CUSTOMER_PROTO))
        self.cls = customer_message_class()
        self._sink: dict[int, object] = {}

    def encode(self, rec: dict) -> bytes:
        from google.protobuf import json_format

        from .formats.base import frame
        from .generator import protobuf_doc
        return frame(self.schema_id, b"\x00" + json_format.ParseDict(protobuf_doc(rec), self.cls()).SerializeToString())

    def decode(self, value: bytes) -> dict:
        from google.protobuf import json_format, message_factory

        from .formats import protobuf as pb
        from .formats.base import unframe
        sid, payload = unframe(value)
        if sid not in self._sink:
            pool = pb.build_pool(pb.compile_files({"sink.proto": self.registry.schema_by_id(sid).schema_str},
                                                  "sink.proto"))
            self._sink[sid] = message_factory.GetMessageClass(pool.FindMessageTypeByName("dpp.example.Customer"))
        indexes, n = pb.read_indexes(payload)
        msg = self._sink[sid]()
        msg.ParseFromString(bytes(payload[n:]))
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _flatten(node, prefix: str = "") -> list[tuple[str, object]]:
    """``[(path, scalar)]`` of a JSON value, paths spelled like policy field paths."""
    if isinstance(node, dict):
        out = []
        for k, v in node.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else k)
        return out or [(prefix, {})]
    if isinstance(node, list):
        out = []
        for i, v in enumerate(node):
            out += _flatten(v, f"{prefix}[{i}]")
        return out or [(prefix, [])]
    return [(prefix, node)]


def side_by_side(source: dict, sink: dict | None, width: int = 44) -> str:
    """A table of every field of ``source``: its value, and the value the sink record has for the
    same path (``(dropped)`` when absent). Wide (CJK) characters count as two columns."""
    right = dict(_flatten(sink)) if sink is not None else {}
    rows = _flatten(source)
    fw = max(len(p) for p, _ in rows)
    head = f"{'field':<{fw}}  {_fit('source (crm.customers)', width)}  sink (analytics.customers)"
    lines = [head, "-" * len(head)]
    for path, value in rows:
        l = orjson.dumps(value).decode()
        r = orjson.dumps(right[path]).decode() if path in right else ("(not in sink)" if sink is None else "(dropped)")
        lines.append(f"{path:<{fw}}  {_fit(l, width)}  {_fit(r, width).rstrip()}")
    return "\n".join(lines)


def _fit(s: str, w: int) -> str:
    """Trim (with an ellipsis) or pad ``s`` to ``w`` terminal columns (East Asian wide characters take two)."""
    def cw(ch: str) -> int:
        return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    if sum(cw(c) for c in s) > w:
        out, used = [], 0
        for ch in s:
            if used + cw(ch) > w - 1:
                break
            out.append(ch)
            used += cw(ch)
        return "".join(out) + "…" + " " * (w - used - 1)
    return s + " " * (w - sum(cw(c) for c in s))


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Read ``/metrics`` on localhost: ``{(sample name, sorted label items): value}``."""
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict, name: str, **match) -> float:
    """Sum of the samples called ``name`` whose labels include ``match``."""
    return sum(v for (n, labels), v in samples.items()
               if n == name and all(dict(labels).get(k) == val for k, val in match.items()))


def run_demo(count: int = 10000, bootstrap: str | None = None, policy_file: str | None = None,
             fmt: str = "json", registry_url: str | None = None) -> int:
    """Run the demo; returns the process exit code (0 when every record was accounted for).

    ``fmt="avro"`` / ``"protobuf"``: the records as Avro / Protobuf through a schema registry
    (``registry_url``, else the local one of ``deploy/registry.sh``), keyed by mobile number with
    an ``x-user-email`` header, through ``policies/examples/customer-pii-avro.yaml`` /
    ``customer-pii-protobuf.yaml``."""
    from confluent_kafka import Producer

    from . import logs
    from .generator import generate_records, malformed_payloads
    from .metrics import Metrics
    from .policy.compiler import compile_policy
    from .policy.loader import load_policy
    from .stream.admin import ensure_topics
    from .stream.engine import Engine, EngineConfig

    log_path = ROOT / ".cache" / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole demo
    logs.setup("INFO", log_file)  # JSON log lines (dead-lettered records...) kept out of the walkthrough
    print(f"proxy log (JSON lines): {log_path}")
    keyfile = ensure_demo_keys()
    if keyfile:
        print(f"demo keys: {keyfile} (random, made once; set {', '.join(KEY_VARS)} to use your own)")
    if bootstrap is None:
        print("starting the local Kafka broker (deploy/kafka.sh start) ...")
        bootstrap = start_local_kafka()
    print(f"broker: {bootstrap}")
    avro = None
    source = None
    if fmt in ("avro", "protobuf"):
        from .schemaregistry import Registry, resolve_config
        if registry_url is None:
            print("starting the local schema registry (deploy/registry.sh start) ...")
            registry_url = start_local_registry()
        print(f"schema registry: {registry_url}")
        source = Registry(resolve_config(registry_url, {}))
        policy_file = policy_file or str(AVRO_POLICY if fmt == "avro" else PROTOBUF_POLICY)
    cp = compile_policy(load_policy(policy_file or DEFAULT_POLICY), schema_source=source)
    route = cp.routes[0]
    if fmt in ("avro", "protobuf"):
        avro = (_Avro if fmt == "avro" else _Protobuf)(source, route.source)
    ensure_topics(bootstrap, {route.source: 3, route.sink: 3, route.dead_letter: 3})

    run_id = f"{int(time.time())}"
    records = list(generate_records(count, seed=int(run_id) % 100000))
    bad = malformed_payloads(3, seed=1)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True, "log_level": 3})
    t0 = time.perf_counter()
    for rec in records:
        if avro is None:
            p.produce(route.source, orjson.dumps(rec), rec["record_id"].encode())
        else:
            p.produce(route.source, avro.encode(rec), rec["mobile"].encode(),
                      headers=[("x-user-email", rec["email"].encode())])
        p.poll(0)
    for i, payload in enumerate(bad):
        p.produce(route.source, payload, f"malformed-{run_id}-{i}".encode())
    p.flush(60)
    print(f"produced {len(records)} generated records + {len(bad)} malformed ones to {route.source} "
          f"in {time.perf_counter() - t0:.1f} s")

    metrics = Metrics()
    eng = Engine(cp, EngineConfig(bootstrap_servers=bootstrap), metrics)
    server = metrics.serve(0, addr="127.0.0.1", ready=eng.ready)
    port = server.server_port
    th = threading.Thread(target=eng.run, daemon=True)
    t0 = time.perf_counter()
    th.start()
    expected = len(records) + len(bad)
    deadline = time.time() + 180
    while time.time() < deadline and th.is_alive():
        if total(scrape(port), "dpp_records_consumed_total") >= expected and _lag(bootstrap, route) == 0:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - t0
    eng.stop()
    th.join(30)
    failed = [w for w in eng.workers if w.error is not None]
    if failed:
        print(f"the proxy stopped on an error: {', '.join(type(w.error).__name__ for w in failed)}")
        return 1

    # one source record beside its sink record (a consenting one, so it reached the sink)
    pick = next(r for r in records if r["consent"]["analytics"] and r["orders"] and r["locale"] == "zh_CN")
    if avro is None:
        sink_rec = _find_by_key(bootstrap, route.sink, pick["record_id"].encode())
        print()
        print(side_by_side(pick, sink_rec))
    else:
        found = _find_avro(bootstrap, route.sink, avro, pick["record_id"])
        print()
        print(side_by_side(pick, orjson.loads(orjson.dumps(found[0])) if found else None))
        if found:
            print(f"{'record key':<24}  {_fit(pick['mobile'], 44)}  {found[1].decode()}")
            print(f"{'header x-user-email':<24}  {_fit(pick['email'], 44)}  {found[2].get('x-user-email', b'').decode()}")
    s = scrape(port)
    print()
    print(f"metric totals (http://127.0.0.1:{port}/metrics, proxy ran {elapsed:.1f} s):")
    consumed = total(s, "dpp_records_consumed_total")
    produced = total(s, "dpp_records_produced_total")
    blocked = total(s, "dpp_records_blocked_total")
    dead = total(s, "dpp_records_dead_lettered_total")
    print(f"  records consumed      {consumed:>8.0f}")
    print(f"  records produced      {produced:>8.0f}   -> {route.sink}")
    for (n, labels), v in sorted(s.items()):
        if n == "dpp_records_blocked_total" and v:
            print(f"  records blocked       {v:>8.0f}   reason={dict(labels)['reason']}")
    for (n, labels), v in sorted(s.items()):
        if n == "dpp_records_dead_lettered_total" and v:
            print(f"  records dead-lettered {v:>8.0f}   reason={dict(labels)['reason']} -> {route.dead_letter}")
    for (n, labels), v in sorted(s.items()):
        if n == "dpp_field_transforms_total" and v:
            d = dict(labels)
            print(f"  field transforms      {v:>8.0f}   rule={d['rule']} action={d['action']}")
    ok = consumed >= expected and consumed == produced + blocked + dead
    print()
    print("every consumed record is accounted for (produced + blocked + dead-lettered)" if ok
          else "WARNING: counts do not add up")
    print()
    print("next: the same keys for your own commands:  source .cache/demo-keys.env")
    sr = f"--schema-registry {registry_url} " if avro is not None else ""
    print(f"      dpp {sr}run --policy {policy_file or 'policies/examples/customer-pii.yaml'} --bootstrap-servers {bootstrap}")
    print(f"      dpp {sr}reveal --policy {policy_file or 'policies/examples/customer-pii.yaml'} --bootstrap-servers {bootstrap}"
          " --partition 0 --offset 0 4 --reason demo --audit-file /tmp/dpp-audit.jsonl")
    port_env = f"DPP_KAFKA_PORT={os.environ['DPP_KAFKA_PORT']} " if os.environ.get("DPP_KAFKA_PORT") else ""
    print(f"      {port_env}bash deploy/kafka.sh stop          # stop the local broker")
    return 0 if ok else 1


def _lag(bootstrap: str, route) -> int:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": route.group, "enable.auto.commit": False})
    try:
        md = c.list_topics(route.source, timeout=10)
        parts = [TopicPartition(route.source, p) for p in md.topics[route.source].partitions]
        lag = 0
        for tp in c.committed(parts, timeout=10):
            hi = c.get_watermark_offsets(tp, timeout=10)[1]
            lag += hi - (tp.offset if tp.offset >= 0 else 0)
        return lag
    finally:
        c.close()


def _find_in(bootstrap: str, topic: str, match, timeout_s: float = 30):
    """The first non-``None`` ``match(message)`` over ``topic`` read from the start, or ``None``."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dpp-demo-reader-{secrets.token_hex(4)}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    try:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for m in c.consume(5000, 1.0):
                if m.error() is None and m.value() is not None:
                    found = match(m)
                    if found is not None:
                        return found
        return None
    finally:
        c.close()


def _find_avro(bootstrap: str, topic: str, avro: "_Avro | _Protobuf", record_id: str):
    """``(decoded value, key, headers)`` of the sink record with ``record_id``, or ``None``."""
    def match(m):
        rec = avro.decode(m.value())
        return (rec, m.key(), dict(m.headers() or [])) if rec.get("record_id") == record_id else None
    return _find_in(bootstrap, topic, match)


def _find_by_key(bootstrap: str, topic: str, key: bytes) -> dict | None:
    return _find_in(bootstrap, topic, lambda m: orjson.loads(m.value()) if m.key() == key else None)
