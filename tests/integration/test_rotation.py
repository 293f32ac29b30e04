"""Key rotation on the real broker: records protected before and after a rotation both reveal.

1. ``dpp run`` with a policy whose ``fpe`` and ``token`` keys have one version; produce; stop.
2. ``dpp run`` (same consumer group) with the rotated policy: versions {1, 2}, current 2; produce
   the same personal values again under new record ids; stop.
3. The sink holds both generations: the ``dpp-key-versions`` header says ``fpe=1``/``fpe=2``, and the
   same value is protected differently by the two versions.
4. ``dpp reveal --bootstrap-servers … --topic <sink> --partition 0 --offset 0 N-1`` with the rotated
   policy reveals every record (picking each record's key version from its header; FPE has no
   integrity check, so using the current version for the old records would give wrong values, which
   the test also shows) and writes one audit record per record, with no personal value in it.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import orjson
import pytest

from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy

from .helpers import (DppProcess, RouteTopics, create_topics, delete_topics, drain, produce, read_topic,
                      run_dpp)

pytestmark = pytest.mark.integration

N_PER_PHASE = 40
KEYS = {name: secrets.token_hex(32) for name in ("DPP_ROT_FPE_V1", "DPP_ROT_FPE_V2", "DPP_ROT_TOK_V1",
                                                  "DPP_ROT_TOK_V2", "DPP_ROT_PSEUDONYM", "DPP_ROT_DLQ")}
REVERSIBLE = ("id_number", "bank_card", "name")


def write_policy(path: Path, t: RouteTopics, rotated: bool) -> Path:
    fpe = "{1: DPP_ROT_FPE_V1, 2: DPP_ROT_FPE_V2}" if rotated else "{1: DPP_ROT_FPE_V1}"
    tok = "{1: DPP_ROT_TOK_V1, 2: DPP_ROT_TOK_V2}" if rotated else "{1: DPP_ROT_TOK_V1}"
    path.write_text(f"""
version: 1
name: rotation-it
keys:
  fpe: {{source: env, versions: {fpe}}}
  token: {{source: env, versions: {tok}}}
  pseudonym: {{source: env, name: DPP_ROT_PSEUDONYM}}
  dead-letter: {{source: env, name: DPP_ROT_DLQ}}
routes:
  - name: crm
    source: {t.source}
    sink: {t.sink}
    dead_letter: {t.dead_letter}
    dead_letter_key: dead-letter
    consumer_group: {t.group}
    rules:
      - {{field: id_number, action: fpe, key: fpe}}
      - {{field: bank_card, action: fpe, key: fpe}}
      - {{field: name, action: tokenize, key: token}}
      - {{field: email, action: pseudonymize, key: pseudonym, normalize: email}}
""", encoding="utf-8")
    return path


def person(i: int) -> dict:
    """Personal values of person ``i`` (phase 2 repeats phase 1's people under new record ids)."""
    names = ["张伟", "王芳", "李娜", "刘洋", "Jose\u0301 Doe", "Zoë Ñúñez", "欧阳娜娜", "김민준"]
    return {"id_number": f"1101051949{i:04d}002X", "bank_card": f"6222-0202-{i:04d}-{(7 * i) % 10000:04d}",
            "name": f"{names[i % len(names)]}{i}", "email": f"Person.{i}@Example.com"}


def records(phase: int) -> list[dict]:
    return [{"rid": f"p{phase}-{i:03d}", **person(i), "segment": "gold" if i % 3 else "silver"}
            for i in range(N_PER_PHASE)]


def personal_values(recs: list[dict]) -> list[str]:
    out = []
    for r in recs:
        out += [r[k] for k in REVERSIBLE] + [r["email"], r["id_number"][:-1], r["bank_card"].replace("-", "")]
    return out


def test_records_before_and_after_rotation_both_reveal(kafka_bootstrap, topic_prefix, tmp_path):
    t = RouteTopics(f"{topic_prefix}.crm", f"{topic_prefix}.analytics", f"{topic_prefix}.crm.dlq",
                    f"{topic_prefix}.dpp")
    create_topics(kafka_bootstrap, [t.source], partitions=1)   # --create-topics makes sink/dlq alike
    env = dict(os.environ, **KEYS)
    v1 = write_policy(tmp_path / "v1.yaml", t, rotated=False)
    v2 = write_policy(tmp_path / "v2.yaml", t, rotated=True)
    phase1, phase2 = records(1), records(2)
    try:
        # -- phase 1: one key version ---------------------------------------------------------
        with DppProcess(v1, kafka_bootstrap, tmp_path, env=env, name="dpp-v1", extra=["--reload-interval", "0"]) as d1:
            d1.wait_ready()
            produce(kafka_bootstrap, t.source, ((r["rid"].encode(), orjson.dumps(r), None) for r in phase1))
            drain(d1, kafka_bootstrap, t, N_PER_PHASE, timeout_s=120)
            assert d1.stop() == 0, d1.stderr_tail()
        # -- phase 2: rotated (versions 1 and 2, current 2), same consumer group ---------------
        with DppProcess(v2, kafka_bootstrap, tmp_path, env=env, name="dpp-v2", extra=["--reload-interval", "0"]) as d2:
            d2.wait_ready()
            produce(kafka_bootstrap, t.source, ((r["rid"].encode(), orjson.dumps(r), None) for r in phase2))
            drain(d2, kafka_bootstrap, t, N_PER_PHASE, timeout_s=120)
            assert d2.stop() == 0, d2.stderr_tail()

        sink = read_topic(kafka_bootstrap, t.sink)
        assert len(sink) == 2 * N_PER_PHASE
        assert {r.partition for r in sink} == {0}
        by_rid = {r.key.decode(): r for r in sink}
        originals = {r["rid"]: r for r in phase1 + phase2}
        assert set(by_rid) == set(originals)
        for rid, rec in by_rid.items():
            want = "fpe=1,pseudonym=1,token=1" if rid.startswith("p1-") else "fpe=2,pseudonym=1,token=2"
            assert rec.header("dpp-key-versions") == want, rid
        # the same person protected with version 1 and version 2: different outputs, same format
        for i in range(N_PER_PHASE):
            a = orjson.loads(by_rid[f"p1-{i:03d}"].value)
            b = orjson.loads(by_rid[f"p2-{i:03d}"].value)
            for f in REVERSIBLE:
                assert a[f] != b[f], f"{f} of person {i}: same output before and after rotation"
                assert a[f] != person(i)[f]
            assert len(b["id_number"]) == 18 and b["id_number"].endswith("X")
            assert b["bank_card"][4] == "-" and len(b["bank_card"]) == len(person(i)["bank_card"])
            assert a["email"] == b["email"]                     # pseudonym key not rotated

        # -- reveal both generations through the dpp-key-versions header -----------------------
        offsets = sorted(r.offset for r in sink)
        assert offsets == list(range(2 * N_PER_PHASE))
        audit = tmp_path / "audit.jsonl"
        res = run_dpp(["reveal", "--policy", str(v2), "--bootstrap-servers", kafka_bootstrap, "--topic", t.sink,
                       "--partition", "0", "--offset", "0", str(offsets[-1]), "--reason", "rotation test INC-7",
                       "--actor", "it-tester", "--audit-file", str(audit)], env=env, timeout_s=120)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr
        revealed = [orjson.loads(line) for line in res.stdout.splitlines()]
        assert len(revealed) == 2 * N_PER_PHASE
        for got in revealed:
            orig = originals[got["rid"]]
            for f in REVERSIBLE:
                assert got[f] == orig[f], f"{got['rid']}: {f} not revealed"
            assert got["email"] != orig["email"]               # one-way: stays a pseudonym
        docs = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
        assert len(docs) == len(revealed)
        assert [d["record"] for d in docs] == [{"topic": t.sink, "partition": 0, "offset": o} for o in offsets]
        for d in docs:
            assert d["result"] == "revealed" and d["actor"] == "it-tester" and d["reason"] == "rotation test INC-7"
            assert d["fields"] == ["id_number", "bank_card", "name"] and d["route"] == "crm"
        audit_text = audit.read_text(encoding="utf-8")
        protected_values = [orjson.loads(r.value)[f] for r in sink for f in (*REVERSIBLE, "email")]
        for value in personal_values(phase1 + phase2) + protected_values:
            assert value not in audit_text, "a value reached the audit file"

        # -- control: the header matters (FPE cannot detect a wrong key version) ----------------
        route = compile_policy(load_policy(v2), env).route()
        old = by_rid["p1-000"]
        wrong, _ = route.reveal(orjson.loads(old.value))                       # current version 2
        assert wrong["id_number"] != person(0)["id_number"]
        right, _ = route.reveal(orjson.loads(old.value), key_versions={"fpe": 1})
        assert right["id_number"] == person(0)["id_number"]
    finally:
        delete_topics(kafka_bootstrap, [t.source, t.sink, t.dead_letter])
