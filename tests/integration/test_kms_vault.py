"""Envelope encryption through a real KMS on the real broker: HashiCorp Vault's dev server with
Transit (deploy/vault.sh) holds every key-encryption key of the example policy (plus a token rule).

1. ``dpp keys init`` writes the key store (wrapped DEKs only); ``dpp run`` unwraps them through
   Vault at start-up and protects 10,000 generated records (and three malformed payloads).
2. Every sink record is byte-identical to what the same policy gives offline with the same DEKs
   as plain hex keys (the determinism that keeps outputs joinable); read back with kafka-python.
3. ``dpp reveal`` (policy with the Vault keys) decrypts the FPE and the token fields through Vault.
4. No DEK (hex or base64) is in the key store, the proxy's stderr or the audit file.
"""
from __future__ import annotations

import base64
import os

import orjson
import pytest
import yaml

from proxy.crypto import kms as kms_pkg
from proxy.policy.compiler import SINK, compile_policy
from proxy.policy.loader import load_policy

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, create_topics, delete_group, delete_topics, drain,
                      generated_records, metric, policy_copy, produce, read_topic, run_dpp)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

N = 10_000
KEYS = ("pseudonym", "fpe", "dead-letter", "token")


def vault_route(vault_server, topic_prefix, tmp_path, tag: str, address: str | None = None, **key_options):
    """The example policy (plus a token rule on ``address.city``) with every key in Vault Transit (new
    KEKs ``<prefix>-<tag>-<key>``; Vault at ``address``, default the server's): ``(admin client, KEK
    names, policy path, policy document, RouteTopics, key-store path, environment with VAULT_TOKEN)``."""
    import hvac
    admin = hvac.Client(url=vault_server["addr"], token=vault_server["token"])
    keks = {k: f"{topic_prefix}-{tag}-{k}" for k in KEYS}
    for kek in keks.values():
        admin.secrets.transit.create_key(kek)
    copy, t = policy_copy(tmp_path, topic_prefix)
    store = tmp_path / "keys.json"
    doc = yaml.safe_load(copy.read_text(encoding="utf-8"))
    doc["keys"] = {k: {"source": "vault", "key": keks[k], "store": str(store),
                       "address": address or vault_server["addr"], **key_options} for k in KEYS}
    doc["routes"][0]["rules"].append({"field": "address.city", "action": "tokenize", "key": "token"})
    policy = tmp_path / "vault.yaml"
    policy.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return admin, keks, policy, doc, t, store, dict(os.environ, VAULT_TOKEN=vault_server["token"])


def test_example_policy_with_keys_in_vault(kafka_bootstrap, vault_server, topic_prefix, tmp_path):
    _, _, policy, doc, t, store, env = vault_route(vault_server, topic_prefix, tmp_path, "e")
    create_topics(kafka_bootstrap, t.all)
    try:
        res = run_dpp(["keys", "init", "--policy", str(policy)], env=env, timeout_s=60)
        assert res.returncode == 0, res.stderr
        assert sorted(orjson.loads(l)["key"] for l in res.stdout.splitlines()) == sorted(KEYS)

        recs = generated_records(N)
        bad = [b"{not json", b"\xff\xfe", b'{"customer_id": "C1", "id_number": [1, 2, 3]}']
        msgs = [(r["record_id"].encode(), orjson.dumps(r), None) for r in recs]
        msgs += [(f"bad-{i}".encode(), b, None) for i, b in enumerate(bad)]
        with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="dpp-vault",
                        extra=["--reload-interval", "0"]) as d:
            d.wait_ready()
            produce(kafka_bootstrap, t.source, msgs)
            samples = drain(d, kafka_bootstrap, t, len(msgs), timeout_s=300)
            assert d.stop() == 0, d.stderr_tail()
            stderr = d.stderr()
        # one unwrap per DEK, at start-up; none per record
        assert metric(samples, "dpp_kms_operations_total", provider="vault", operation="unwrap",
                      outcome="success") == len(KEYS)

        # -- the same DEKs as plain hex keys give the same bytes -------------------------------
        kms_pkg.reset()
        via_vault = compile_policy(load_policy(policy), env).route()
        deks = {k: via_vault._keyrings[k].key.material for k in KEYS}
        plain_doc = dict(doc, keys={k: {"source": "env", "name": f"DPP_IT_KMS_{i}"} for i, k in enumerate(KEYS)})
        plain_path = tmp_path / "plain.yaml"
        plain_path.write_text(yaml.safe_dump(plain_doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        plain = compile_policy(load_policy(plain_path),
                               {f"DPP_IT_KMS_{i}": deks[k].hex() for i, k in enumerate(KEYS)}).route()
        sink = read_topic(kafka_bootstrap, t.sink)
        dead = read_topic(kafka_bootstrap, t.dead_letter)
        expected = {}
        for key, value, _ in msgs:
            o = plain.process(value)
            if o.kind == SINK:
                expected[key] = o.value
        got = {r.key: r.value for r in sink}
        assert len(sink) == len(got) == len(expected) > 0.8 * N
        assert got == expected
        assert {r.key for r in dead} >= {f"bad-{i}".encode() for i in range(3)}
        assert all(r.header("dpp-key-versions") == "fpe=1,pseudonym=1,token=1" for r in sink[:50])

        # -- dpp reveal through Vault: FPE and token fields -----------------------------------
        first = sorted((r for r in sink if r.partition == 0), key=lambda r: r.offset)[:20]
        audit = tmp_path / "audit.jsonl"
        res = run_dpp(["reveal", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap, "--topic", t.sink,
                       "--partition", "0", "--offset", str(first[0].offset), str(first[-1].offset),
                       "--reason", "kms integration test", "--actor", "it-tester", "--audit-file", str(audit)],
                      env=env, timeout_s=120)
        assert res.returncode == 0, res.stderr
        by_id = {r["record_id"]: r for r in recs}
        revealed = [orjson.loads(line) for line in res.stdout.splitlines()]
        assert len(revealed) == len(first)
        for rec in revealed:
            orig = by_id[rec["record_id"]]
            assert rec["id_number"] == orig["id_number"] and rec["bank_card"] == orig["bank_card"]
            assert rec["address"]["city"] == orig["address"]["city"]
            assert [o["card_number"] for o in rec["orders"]] == [o["card_number"] for o in orig["orders"]]
        protected = orjson.loads(first[0].value)
        assert protected["address"]["city"].startswith("tok_")

        # -- dpp dead-letter opens a sealed record with the dead-letter DEK unwrapped through Vault ----
        sealed = next(r for r in dead if r.key == b"bad-0")
        res_dl = run_dpp(["dead-letter", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap,
                          "--partition", str(sealed.partition), "--offset", str(sealed.offset), str(sealed.offset),
                          "--reason", "kms integration test", "--audit-file", str(tmp_path / "dl-audit.jsonl")],
                         env=env, timeout_s=120)
        assert res_dl.returncode == 0, res_dl.stderr
        assert orjson.loads(res_dl.stdout)["payload"].encode() == bad[0]
        assert bad[0] not in sealed.value                              # sealed, not in clear

        # -- no DEK anywhere it could leak -----------------------------------------------------
        texts = {"key store": store.read_text(), "stderr": stderr, "audit": audit.read_text(), "reveal": res.stderr,
                 "dead-letter": res_dl.stdout + res_dl.stderr}
        for k, dek in deks.items():
            for form in (dek.hex(), dek.hex().upper(), base64.b64encode(dek).decode(),
                         base64.urlsafe_b64encode(dek).decode().rstrip("=")):
                for what, text in texts.items():
                    assert form not in text, f"DEK {k} in the {what}"
    finally:
        delete_topics(kafka_bootstrap, t.all)
        delete_group(kafka_bootstrap, t.group)


def test_vault_outage_mid_run(kafka_bootstrap, vault_server, topic_prefix, tmp_path):
    """Vault unreachable for 30 s mid-run (a closed TCP gate in front of it: the dev server keeps its
    keys in memory, so it is not restarted). The running worker keeps protecting with the DEKs it
    holds; a worker started during the outage is not ready and consumes nothing; when Vault is back
    it starts, and every record ends in the sink (protected, byte-identical to plain DEKs) or is
    blocked: none lost, none in clear."""
    import time
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    from kmskit import TcpGate

    from .helpers import group_lag, wait_until
    u = urlparse(vault_server["addr"])
    gate = TcpGate((u.hostname, u.port)).open()
    _, _, policy, _, t, _, env = vault_route(vault_server, topic_prefix, tmp_path, "o", address=gate.url, timeout_s=1)
    create_topics(kafka_bootstrap, t.all)
    recs = generated_records(3000)
    phases = [recs[:1000], recs[1000:2000], recs[2000:]]

    def send(batch):
        produce(kafka_bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in batch))

    def readyz(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        assert run_dpp(["keys", "init", "--policy", str(policy)], env=env, timeout_s=60).returncode == 0
        with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="w1", extra=["--reload-interval", "0"]) as w1:
            port = w1.wait_ready()
            send(phases[0])
            drain(w1, kafka_bootstrap, t, 1000, timeout_s=120)
            gate.close()                                          # the outage starts
            closed_at = time.monotonic()
            send(phases[1])
            drain(w1, kafka_bootstrap, t, 2000, timeout_s=120)    # cached DEKs: it keeps working
            assert readyz(port)[0] == 200
            assert w1.stop() == 0, w1.stderr_tail()
        with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="w2", extra=["--reload-interval", "0"]) as w2:
            wait_until(lambda: "KMS cannot be reached" in w2.stderr(), 60, "w2 to wait for the KMS", w2.stderr_tail)
            line = next(l for l in w2.stderr().splitlines() if "KMS cannot be reached" in l)
            port2 = int(orjson.loads(line)["metrics_port"])
            send(phases[2])
            status, body = readyz(port2)
            assert status == 503 and "waiting for the KMS" in body
            time.sleep(max(0.0, 30 - (time.monotonic() - closed_at)))
            assert group_lag(kafka_bootstrap, t.group, t.source) == 1000   # nothing consumed meanwhile
            assert readyz(port2)[0] == 503
            assert w2.stderr().count("KMS cannot be reached") == 1
            gate.open()                                           # Vault is back
            assert w2.wait_ready(timeout_s=60) == port2
            wait_until(lambda: readyz(port2)[0] == 200, 60, "w2 ready", w2.stderr_tail)
            samples = drain(w2, kafka_bootstrap, t, 1000, timeout_s=120)
            assert metric(samples, "dpp_kms_operations_total", provider="vault", operation="unwrap",
                          outcome="unavailable") >= 2
            assert metric(samples, "dpp_kms_operations_total", provider="vault", operation="unwrap",
                          outcome="success") == len(KEYS)
            assert w2.stop() == 0, w2.stderr_tail()

        kms_pkg.reset()
        gate_route = compile_policy(load_policy(policy), env).route()
        plain = {}
        for r in recs:
            o = gate_route.process(orjson.dumps(r))
            plain[r["record_id"].encode()] = o.value if o.kind == SINK else None
        sink = read_topic(kafka_bootstrap, t.sink)
        got = {}
        for rec in sink:
            assert got.setdefault(rec.key, rec.value) == rec.value          # a redelivery is byte-identical
        assert got == {k: v for k, v in plain.items() if v is not None}  # none lost, nothing else
        assert not read_topic(kafka_bootstrap, t.dead_letter)
        clear = {r["id_number"] for r in recs} | {r["bank_card"] for r in recs}
        assert not any(v in rec.value.decode() for rec in sink for v in clear)
    finally:
        gate.close()
        delete_topics(kafka_bootstrap, t.all)
        delete_group(kafka_bootstrap, t.group)


def test_rotation_in_vault_mid_run(kafka_bootstrap, vault_server, topic_prefix, tmp_path):
    """KEK rotation in Vault while ``dpp run`` runs: ``dpp keys rotate`` adds DEK version 2 (wrapped by
    KEK version 2) to the key store, the running worker reloads it without a restart, new records
    carry ``fpe=2``/``token=2``, none is lost or in clear, and ``dpp reveal`` reveals both generations;
    ``dpp keys rewrap`` then moves every DEK to KEK version 2 and the reveal still works."""
    admin, keks, policy, _, t, store, env = vault_route(vault_server, topic_prefix, tmp_path, "r")
    create_topics(kafka_bootstrap, t.all, partitions=1)
    recs = generated_records(600)
    phases = [recs[:300], recs[300:]]

    def send(batch):
        produce(kafka_bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in batch))

    try:
        assert run_dpp(["keys", "init", "--policy", str(policy)], env=env, timeout_s=60).returncode == 0
        with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, name="rot",
                        extra=["--reload-interval", "0.5"]) as d:
            d.wait_ready()
            send(phases[0])
            drain(d, kafka_bootstrap, t, 300, timeout_s=120)
            for k in ("fpe", "token"):
                admin.secrets.transit.rotate_key(keks[k])
            res = run_dpp(["keys", "rotate", "--policy", str(policy), "--key", "fpe", "--key", "token"], env=env,
                          timeout_s=60)
            assert res.returncode == 0, res.stderr
            assert {(r["key"], r["version"], r["kek_version"]) for r in map(orjson.loads, res.stdout.splitlines())} \
                == {("fpe", 2, 2), ("token", 2, 2)}
            d.wait_metric("dpp_policy_reloads_total", lambda v: v >= 1, 60, "the key store reload", result="success")
            send(phases[1])
            drain(d, kafka_bootstrap, t, 600, timeout_s=120)
            assert d.stop() == 0, d.stderr_tail()
        sink = read_topic(kafka_bootstrap, t.sink)
        first = {r["record_id"].encode() for r in phases[0]}
        kv = {r.key: r.header("dpp-key-versions") for r in sink}
        assert {kv[k] for k in kv if k in first} == {"fpe=1,pseudonym=1,token=1"}
        assert {kv[k] for k in kv if k not in first} == {"fpe=2,pseudonym=1,token=2"}
        assert len(kv) == len(sink) and len(sink) > 0.8 * 600
        clear = {r["id_number"] for r in recs} | {r["bank_card"] for r in recs}
        assert not any(v in rec.value.decode() for rec in sink for v in clear)

        def reveal_all() -> list[dict]:
            offs = sorted(r.offset for r in sink)
            res = run_dpp(["reveal", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap, "--topic", t.sink,
                           "--partition", "0", "--offset", str(offs[0]), str(offs[-1]), "--reason", "rotation test",
                           "--actor", "it", "--audit-file", str(tmp_path / "audit.jsonl")], env=env, timeout_s=120)
            assert res.returncode == 0, res.stderr
            return [orjson.loads(line) for line in res.stdout.splitlines()]

        by_id = {r["record_id"]: r for r in recs}
        for attempt in ("before rewrap", "after rewrap"):
            revealed = reveal_all()
            assert len(revealed) == len(sink), attempt
            for rec in revealed:
                orig = by_id[rec["record_id"]]
                assert (rec["id_number"], rec["address"]["city"]) == (orig["id_number"], orig["address"]["city"]), attempt
            if attempt == "before rewrap":
                res = run_dpp(["keys", "rewrap", "--policy", str(policy)], env=env, timeout_s=60)
                assert res.returncode == 0, res.stderr
                stored = orjson.loads(store.read_bytes())["keys"]
                assert {v["kek_version"] for v in stored["fpe"]["versions"].values()} == {2}
    finally:
        delete_topics(kafka_bootstrap, t.all)
        delete_group(kafka_bootstrap, t.group)
