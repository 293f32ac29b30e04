"""``dpp subject`` (proxy.subjectlookup): the printed pseudonyms and tokens equal what the route
writes for a record holding those values (both computed, then compared); one-way and
non-deterministic rules are left out; crypto-shredding routes name their per-subject rules; the
look-up is audited without the identifiers."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from policykit import KEYS, policy_text
from proxy.cli import main
from proxy.policy.compiler import SINK, compile_policy
from proxy.policy.loader import load_policy, load_policy_text
from proxy.subjectlookup import lookup

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policies/examples/customer-pii.yaml"
ENV = {"DPP_KEY_PSEUDONYM": "0f" * 16, "DPP_KEY_FPE": "11" * 32, "DPP_KEY_DEAD_LETTER": "22" * 32,
       "DPP_KEY_TOKEN": "33" * 64, "DPP_KEY_SUBJECT_KEK": "44" * 32}

MIXED = policy_text([
    '{field: uid, action: pseudonymize, key: k, prefix: "u_"}',
    "{field: phone, action: mask, keep_first: 3}",
    '{field: email, action: tokenize, key: k, prefix: "em_"}',
    "{field: note, action: detect, detectors: [email], replace: pseudonymize, key: k}",
    "{field: note2, action: detect, detectors: [email], replace: mask}",
    '{field: "orders[*].card", action: fpe, key: k, alphabet: digits, name: order-card}'])


def example():
    return compile_policy(load_policy(str(EXAMPLE)), environ=ENV)


def produced(route, record: dict) -> dict:
    out = route.process(orjson.dumps(record))
    assert out.kind == SINK, out
    return orjson.loads(out.value)


@pytest.mark.parametrize("values", [
    {"customer_id": "C-000123"},
    {"customer_id": "C-9", "email": "Alice.Li@Example.COM"},
    {"customer_id": "C-42", "email": "x@y.cn", "id_number": "11010519491231002X", "bank_card": "6222020200112233445"},
])
def test_printed_values_equal_what_the_route_produces(values):
    cp = example()
    route = cp.route()
    rows = lookup(cp, values["customer_id"], {k: v for k, v in values.items() if k != "customer_id"},
                  field="customer_id")
    got = {r["field"]: r["value"] for r in rows}
    assert set(got) == set(values)  # every deterministic rule given a value, nothing else
    out = produced(route, values)
    for f in values:
        assert got[f] == out[f] and got[f] != values[f]


def test_mask_and_non_deterministic_detect_are_left_out_and_paths_and_rule_names_work():
    cp = compile_policy(load_policy_text(MIXED, "m.yaml"), environ=KEYS)
    route = cp.route()
    rows = lookup(cp, "U-1", {"phone": "13800138000", "email": "a@b.cn", "note": "mail a@b.cn",
                              "note2": "a@b.cn", "order-card": "4111111111111111"}, field="uid")
    by = {r["rule"]: r for r in rows}
    assert set(by) == {"uid", "email", "note", "order-card"}
    assert by["uid"]["input"] == "subject"
    rec = {"uid": "U-1", "phone": "13800138000", "email": "a@b.cn", "note": "mail a@b.cn", "note2": "a@b.cn",
           "orders": [{"card": "4111111111111111"}]}
    out = produced(route, rec)
    assert by["uid"]["value"] == out["uid"] and by["email"]["value"] == out["email"]
    assert by["note"]["value"] == out["note"] and by["order-card"]["value"] == out["orders"][0]["card"]


def test_crypto_shredding_routes_name_the_per_subject_rules():
    cp = compile_policy(load_policy(str(ROOT / "policies/examples/crypto-shredding.yaml")), environ=ENV)
    rows = lookup(cp, "C-1", {"email": "a@b.cn", "bank_card": "6222020200112233445"})
    assert {(r["rule"], r.get("note")) for r in rows} == {("email", "subject-key"), ("bank_card", "subject-key")}
    assert all("value" not in r for r in rows)


def test_cli_prints_and_audits_without_the_identifiers(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    audit = tmp_path / "audit.jsonl"
    res = CliRunner().invoke(main, ["subject", "C-77", "--policy", str(EXAMPLE), "--subject-field", "customer_id",
                                    "--field", "email=bob@example.org", "--reason", "ER-3", "--actor", "dpo",
                                    "--audit-file", str(audit), "--json"])
    assert res.exit_code == 0, res.output
    rows = orjson.loads(res.stdout)
    out = produced(example().route(), {"customer_id": "C-77", "email": "bob@example.org"})
    assert {r["field"]: r["value"] for r in rows} == {"customer_id": out["customer_id"], "email": out["email"]}
    (doc,) = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
    assert doc["action"] == "subject" and doc["reason"] == "ER-3" and doc["actor"] == "dpo"
    assert doc["rules"] == ["customer_id", "email"]
    text = audit.read_text()
    assert "C-77" not in text and "bob@" not in text


@pytest.mark.parametrize("args, message", [
    (["--reason", "x"], "must be audited"),
    (["--reason", "x", "--audit-topic", "dpp.audit"], "needs --bootstrap-servers"),
    (["--reason", "x", "--audit-file", "AUDIT", "--field", "novalue"], "expected FIELD=VALUE"),
])
def test_cli_refuses(tmp_path, monkeypatch, args, message):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    args = [str(tmp_path / "a.jsonl") if a == "AUDIT" else a for a in args]
    res = CliRunner().invoke(main, ["subject", "C-1", "--policy", str(EXAMPLE), *args])
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "a.jsonl").exists()


def test_cli_says_when_the_subject_id_has_no_field(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    res = CliRunner().invoke(main, ["subject", "C-1", "--policy", str(EXAMPLE), "--reason", "x",
                                    "--audit-file", str(tmp_path / "a.jsonl")])
    assert res.exit_code == 0
    assert "SUBJECT_ID is not used on crm-to-analytics" in res.stderr and "--subject-field" in res.stderr
    assert "no deterministic rule" in res.stdout
