"""Crypto-shredding on the real broker (erasure: PIPL Art. 47, GDPR Art. 17).

A route with ``subject_keys`` (subject = ``customer_id``) and fpe/tokenize fields runs under
``dpp run --create-topics``. Records of four subjects are protected; ``dpp reveal`` reveals them all.
``dpp forget C-1002`` (a CLI subprocess) erases one subject's key. Then, with the same worker still
running (no restart):

* revealing that subject's earlier records fails (exit 1, stderr says the key was erased), the other
  subjects' records still reveal;
* new records of the forgotten subject are blocked and counted
  (``dpp_records_blocked_total{reason="subject-forgotten"}``), the other subjects' new records pass;
* the subject-key topic is compacted (``cleanup.policy=compact``, read with AdminClient
  ``describe_configs``), its record keys are keyed references, never the subject ids, and it holds
  the forget marker of the erased subject.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time

import orjson
import pytest

from .helpers import (DppProcess, RouteTopics, create_topics, delete_topics, drain, metric, produce, read_topic,
                      run_dpp)

pytestmark = pytest.mark.integration

SUBJECTS = ["C-1001", "C-1002", "C-1003", "C-1004"]
FORGOTTEN = "C-1002"
PER_SUBJECT = 5
NEW_PER_SUBJECT = 3
KEYS = {name: secrets.token_hex(32) for name in ("DPP_CS_FPE", "DPP_CS_TOK", "DPP_CS_PSEUDONYM", "DPP_CS_DLQ",
                                                  "DPP_CS_KEK")}
REVERSIBLE = ("id_number", "bank_card", "name")
PICKUP_S = 5.0   # the worker follows the key topic every 0.5 s; documented: "within about a second"


def policy_text(t: RouteTopics, key_topic: str) -> str:
    return f"""
version: 1
name: shredding-it
keys:
  fpe: {{source: env, name: DPP_CS_FPE}}
  token: {{source: env, name: DPP_CS_TOK}}
  pseudonym: {{source: env, name: DPP_CS_PSEUDONYM}}
  dead-letter: {{source: env, name: DPP_CS_DLQ}}
  subject-kek: {{source: env, name: DPP_CS_KEK}}
routes:
  - name: crm
    source: {t.source}
    sink: {t.sink}
    dead_letter: {t.dead_letter}
    dead_letter_key: dead-letter
    consumer_group: {t.group}
    subject_keys: {{field: customer_id, topic: {key_topic}, key: subject-kek}}
    rules:
      - {{field: customer_id, action: pseudonymize, key: pseudonym, domain: customer, prefix: "cus_", length: 20}}
      - {{field: id_number, action: fpe, key: fpe}}
      - {{field: bank_card, action: fpe, key: fpe}}
      - {{field: name, action: tokenize, key: token}}
"""


def record(subject: str, n: int) -> dict:
    s = int(subject[2:])
    return {"rid": f"r{s:04d}-{n:02d}", "customer_id": subject, "id_number": f"4403081999{s:04d}{n:03d}X",
            "bank_card": f"6222-{s:04d}-{n:04d}-1111", "name": f"客户{s}号{n}", "amount": n * 10}


def subject_ref(subject: str) -> str:
    """The documented subject reference, computed here: HMAC-SHA256(KEK, "dpp-subject-v1" 0x00 id)[:32 hex]."""
    return hmac.new(bytes.fromhex(KEYS["DPP_CS_KEK"]), b"dpp-subject-v1\x00" + subject.encode(),
                    hashlib.sha256).hexdigest()[:32]


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([res])[res].result(timeout=30)
    return {k: v.value for k, v in entries.items()}


def test_forget_shreds_one_subject_on_a_running_worker(kafka_bootstrap, topic_prefix, tmp_path):
    t = RouteTopics(f"{topic_prefix}.crm", f"{topic_prefix}.analytics", f"{topic_prefix}.crm.dlq",
                    f"{topic_prefix}.dpp")
    key_topic = f"{topic_prefix}.subject-keys"
    create_topics(kafka_bootstrap, [t.source], partitions=1)
    policy = tmp_path / "shredding.yaml"
    policy.write_text(policy_text(t, key_topic), encoding="utf-8")
    env = dict(os.environ, **KEYS)
    first = [record(s, n) for n in range(PER_SUBJECT) for s in SUBJECTS]      # interleaved subjects
    originals = {r["rid"]: r for r in first}
    audit = tmp_path / "audit.jsonl"

    def reveal(last_offset: int):
        return run_dpp(["reveal", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap, "--topic", t.sink,
                        "--partition", "0", "--offset", "0", str(last_offset), "--reason", "DSAR ticket 99",
                        "--actor", "dpo", "--audit-file", str(audit)], env=env, timeout_s=120)

    try:
        with DppProcess(policy, kafka_bootstrap, tmp_path, env=env, extra=["--reload-interval", "0"]) as dpp:
            dpp.wait_ready()
            pid = dpp.proc.pid
            produce(kafka_bootstrap, t.source, ((r["rid"].encode(), orjson.dumps(r), None) for r in first))
            before = drain(dpp, kafka_bootstrap, t, len(first), timeout_s=120)
            # the block series of a crypto-shredding route exists from the start, at zero, so that
            # rate()/increase() see the first forgotten-subject block
            assert ({"route": "crm", "reason": "subject-forgotten"}, 0.0) in before["dpp_records_blocked_total"]

            sink = read_topic(kafka_bootstrap, t.sink)
            assert len(sink) == len(first)
            for r in sink:
                orig = originals[r.key.decode()]
                assert r.header("dpp-subject") == subject_ref(orig["customer_id"])
                prot = orjson.loads(r.value)
                for f in REVERSIBLE:
                    assert prot[f] != orig[f]
                assert not any(s.encode() in r.value for s in SUBJECTS), "a subject id reached the sink"
                assert not any(s.encode() in v for _, v in r.headers for s in SUBJECTS)
            last = len(sink) - 1

            # -- before forget: everything reveals ------------------------------------------------
            res = reveal(last)
            assert res.returncode == 0, res.stderr
            got = [orjson.loads(line) for line in res.stdout.splitlines()]
            assert len(got) == len(first)
            for g in got:
                for f in REVERSIBLE:
                    assert g[f] == originals[g["rid"]][f]

            # -- forget one subject (CLI subprocess) --------------------------------------------
            fres = run_dpp(["forget", FORGOTTEN, "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap,
                            "--reason", "erasure request ER-7", "--actor", "dpo",
                            "--audit-file", str(tmp_path / "forget-audit.jsonl")], env=env, timeout_s=120)
            forgot_at = time.monotonic()
            assert fres.returncode == 0, fres.stderr
            assert subject_ref(FORGOTTEN) in fres.stdout and "forgotten" in fres.stdout
            assert FORGOTTEN not in fres.stdout + fres.stderr
            fdoc = orjson.loads((tmp_path / "forget-audit.jsonl").read_bytes())
            assert fdoc["action"] == "forget" and fdoc["subject_ref"] == subject_ref(FORGOTTEN)
            assert fdoc["had_key"] is True and FORGOTTEN not in orjson.dumps(fdoc).decode()

            # -- the forgotten subject's earlier records can no longer be revealed --------------
            audit.unlink()
            res = reveal(last)
            assert res.returncode == 1
            assert "Traceback" not in res.stderr
            got = [orjson.loads(line) for line in res.stdout.splitlines()]
            assert sorted(g["rid"] for g in got) == sorted(r["rid"] for r in first if r["customer_id"] != FORGOTTEN)
            for g in got:
                for f in REVERSIBLE:
                    assert g[f] == originals[g["rid"]][f]
            failures = [line for line in res.stderr.splitlines() if "cannot reveal" in line]
            assert len(failures) == PER_SUBJECT
            for line in failures:
                assert "subject-forgotten" in line and "key was erased" in line and "can never be revealed" in line
            forgotten_offsets = sorted(r.offset for r in sink if originals[r.key.decode()]["customer_id"] == FORGOTTEN)
            assert [int(re.search(r"@(\d+):", line).group(1)) for line in failures] == forgotten_offsets
            docs = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
            assert len(docs) == len(first)
            failed = [d for d in docs if d["result"] == "failed"]
            assert sorted(d["record"]["offset"] for d in failed) == forgotten_offsets
            assert all(d["error"] == "subject-forgotten" for d in failed)
            audit_text = audit.read_text(encoding="utf-8")
            for r in first:
                for f in (*REVERSIBLE, "customer_id"):
                    assert r[f] not in audit_text

            # -- the running worker blocks new records of the forgotten subject -------------------
            time.sleep(max(0.0, PICKUP_S - (time.monotonic() - forgot_at)))
            new = [record(s, PER_SUBJECT + n) for n in range(NEW_PER_SUBJECT) for s in (FORGOTTEN, "C-1001", "C-1005")]
            produce(kafka_bootstrap, t.source, ((r["rid"].encode(), orjson.dumps(r), None) for r in new))
            samples = drain(dpp, kafka_bootstrap, t, len(first) + len(new), timeout_s=120)
            dpp.assert_running()
            assert dpp.proc.pid == pid                       # the same worker, never restarted
            assert metric(samples, "dpp_records_blocked_total", route="crm", reason="subject-forgotten") \
                == NEW_PER_SUBJECT
            assert metric(samples, "dpp_records_produced_total", route="crm") == len(first) + 2 * NEW_PER_SUBJECT
            assert metric(samples, "dpp_records_dead_lettered_total", route="crm") == 0
            sink2 = read_topic(kafka_bootstrap, t.sink)
            new_sink = {r.key.decode() for r in sink2[len(sink):]}
            assert new_sink == {r["rid"] for r in new if r["customer_id"] != FORGOTTEN}
            assert dpp.stop() == 0, dpp.stderr_tail()
            assert "Traceback" not in dpp.stderr()
            for s in SUBJECTS:
                assert s not in dpp.stderr(), "a subject id reached the log"

        # -- the subject-key topic: compacted, keyed by references ---------------------------------
        cfg = topic_config(kafka_bootstrap, key_topic)
        assert cfg["cleanup.policy"] == "compact"
        keyrecs = read_topic(kafka_bootstrap, key_topic)
        keys = {r.key.decode() for r in keyrecs}
        assert keys == {subject_ref(s) for s in SUBJECTS + ["C-1005"]}
        for r in keyrecs:
            assert re.fullmatch(r"[0-9a-f]{32}", r.key.decode())
            for s in SUBJECTS + ["C-1005"]:
                assert s.encode() not in r.key and s.encode() not in (r.value or b"")
        markers = [orjson.loads(r.value) for r in keyrecs if r.key.decode() == subject_ref(FORGOTTEN)]
        assert markers[-1].get("forgotten") is True and "wrapped" not in markers[-1]
        assert all("wrapped" in orjson.loads(r.value) for r in keyrecs if r.key.decode() != subject_ref(FORGOTTEN))
    finally:
        delete_topics(kafka_bootstrap, [t.source, t.sink, t.dead_letter, key_topic])
