"""Re-identification offline: ``CompiledRoute.reveal``, :class:`proxy.reveal.Revealer` and
``dpp reveal`` on stdin, including records protected before and after a key rotation.

Rotation: records protected with key version 1 (policy with one version), then the key rotated
(policy with versions {1, 2}, current 2): new records use version 2 (different output, header
``fpe=2``), and both the old (``key_versions {"fpe": 1}``) and the new records reveal correctly.
The audit trail names actor, reason, record location, fields and result and never any value.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.errors import Reason, RecordError
from proxy.policy.compiler import SINK, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.reveal import Revealer, one_way_rules, parse_key_versions

KEYS = {name: secrets.token_hex(32) for name in ("DPP_RV_FPE_V1", "DPP_RV_FPE_V2", "DPP_RV_TOK_V1", "DPP_RV_TOK_V2",
                                                  "DPP_RV_PSEUDONYM", "DPP_RV_DLQ")}


def policy_text(rotated: bool) -> str:
    fpe = "{1: DPP_RV_FPE_V1, 2: DPP_RV_FPE_V2}" if rotated else "{1: DPP_RV_FPE_V1}"
    tok = "{1: DPP_RV_TOK_V1, 2: DPP_RV_TOK_V2}" if rotated else "{1: DPP_RV_TOK_V1}"
    return f"""
version: 1
name: reveal-unit
keys:
  fpe: {{source: env, versions: {fpe}}}
  token: {{source: env, versions: {tok}}}
  pseudonym: {{source: env, name: DPP_RV_PSEUDONYM}}
  dead-letter: {{source: env, name: DPP_RV_DLQ}}
routes:
  - name: crm
    source: crm.src
    sink: crm.sink
    dead_letter: crm.dlq
    dead_letter_key: dead-letter
    rules:
      - {{field: id_number, action: fpe, key: fpe}}
      - {{field: card, action: fpe, key: fpe, name: card-number}}
      - {{field: name, action: tokenize, key: token}}
      - {{field: email, action: pseudonymize, key: pseudonym, normalize: email}}
      - {{field: mobile, action: mask, keep_first: 3, keep_last: 4}}
"""


RECORDS = [
    {"rid": 1, "id_number": "11010519491231002X", "card": "6222-0202-0011-2233", "name": "张三",
     "email": "Zhang.San@Example.com", "mobile": "13900001111"},
    {"rid": 2, "id_number": "440308199901011234", "card": "4111-1111-1111-1111", "name": "Jose\u0301 Doe",
     "email": "jose@example.com", "mobile": "13800002222"},
    {"rid": 3, "id_number": "310101200001010010", "card": "5500 0000 0000 0004", "name": "Zoë",
     "email": "zoe@example.com", "mobile": "13700003333"},
]
REVERSIBLE = ("id_number", "card", "name")


def compiled(rotated: bool):
    return compile_policy(load_policy_text(policy_text(rotated), "reveal-unit.yaml"), KEYS)


def protect(route, rec: dict) -> bytes:
    out = route.process(orjson.dumps(rec))
    assert out.kind == SINK, out
    return out.value


@pytest.fixture(scope="module")
def protected():
    """(v1 route, rotated route, records protected with v1, records protected with v2)."""
    r1, r2 = compiled(False).route(), compiled(True).route()
    return r1, r2, [protect(r1, r) for r in RECORDS], [protect(r2, r) for r in RECORDS]


def expected_revealed(rec: dict, prot: bytes) -> dict:
    """What a full reveal gives: reversible fields back, one-way fields as protected."""
    p = orjson.loads(prot)
    return {**p, **{k: rec[k] for k in REVERSIBLE}}


# ----------------------------------------------------------------------------- rotation, in-process
def test_key_versions_header(protected):
    r1, r2, _, _ = protected
    assert r1.key_versions_header == b"fpe=1,pseudonym=1,token=1"
    assert r2.key_versions_header == b"fpe=2,pseudonym=1,token=2"
    assert parse_key_versions(r2.key_versions_header) == {"fpe": 2, "pseudonym": 1, "token": 2}


def test_new_records_use_the_new_version(protected):
    _, _, old, new = protected
    for rec, o, n in zip(RECORDS, old, new):
        o, n = orjson.loads(o), orjson.loads(n)
        for f in REVERSIBLE:
            assert o[f] != n[f], f"{f}: same output after rotation"
            assert o[f] != rec[f] and n[f] != rec[f]
        assert o["email"] == n["email"]            # the pseudonym key did not rotate
        assert len(n["card"]) == len(rec["card"]) and n["card"][4] == rec["card"][4]   # format kept


def test_old_and_new_records_reveal_after_rotation(protected):
    _, r2, old, new = protected
    for rec, o, n in zip(RECORDS, old, new):
        got, done = r2.reveal(orjson.loads(o), key_versions={"fpe": 1, "token": 1})
        assert got == expected_revealed(rec, o) and done == ["id_number", "card-number", "name"]
        got, _ = r2.reveal(orjson.loads(n), key_versions={"fpe": 2, "token": 2})
        assert got == expected_revealed(rec, n)
        got, _ = r2.reveal(orjson.loads(n))                      # default: current versions
        assert got == expected_revealed(rec, n)


def test_old_records_need_their_key_version(protected):
    """FPE has no integrity check: without the header's version, an old record reveals to a wrong
    value. This is why the ``dpp-key-versions`` header exists (tokens carry their version inside)."""
    _, r2, old, _ = protected
    got, _ = r2.reveal(orjson.loads(old[0]))
    assert got["id_number"] != RECORDS[0]["id_number"]
    assert got["name"] == RECORDS[0]["name"]                     # the token's own version byte


def test_version_missing_from_the_keyring(protected):
    r1, _, _, new = protected
    with pytest.raises(RecordError) as e:
        r1.reveal(orjson.loads(new[0]), key_versions={"fpe": 2})
    assert e.value.reason is Reason.KEY_UNAVAILABLE and e.value.rule == "id_number"


def test_reveal_selected_rules_only(protected):
    _, r2, _, new = protected
    got, done = r2.reveal(orjson.loads(new[1]), ["name"])
    assert done == ["name"] and got["name"] == RECORDS[1]["name"]
    assert got["id_number"] == orjson.loads(new[1])["id_number"]


# ----------------------------------------------------------------------------- Revealer
def test_one_way_rules_listed(protected):
    assert one_way_rules(protected[1]) == ["email", "mobile"]


def test_revealer_refuses_one_way_and_unknown_fields(protected):
    r2 = protected[1]
    with pytest.raises(ValueError, match="'email' is one-way"):
        Revealer(r2, "p", "alice", "ticket", lambda d: None, ["email"])
    with pytest.raises(ValueError, match="no rule named 'nope'"):
        Revealer(r2, "p", "alice", "ticket", lambda d: None, ["nope"])
    with pytest.raises(ValueError, match="reason is required"):
        Revealer(r2, "p", "alice", "  ", lambda d: None)


def test_revealer_audits_before_output(protected):
    """If the audit record cannot be written, nothing is revealed."""
    r2, new = protected[1], protected[3]

    def broken_audit(doc: bytes) -> None:
        raise OSError("audit store down")

    rv = Revealer(r2, "p", "alice", "ticket", broken_audit)
    with pytest.raises(OSError):
        rv.reveal(new[0], {"line": 1})


# ----------------------------------------------------------------------------- dpp reveal (stdin)
def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


@pytest.fixture
def cli_env(monkeypatch, tmp_path) -> Path:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    p = tmp_path / "rotated.yaml"
    p.write_text(policy_text(True), encoding="utf-8")
    return p


def reveal_cli(policy: Path, stdin: bytes, *extra: str):
    return runner().invoke(main, ["reveal", "--policy", str(policy), "--reason", "ticket DPO-42", "--actor", "alice",
                                  *extra], input=stdin)


def lines(values: list[bytes]) -> bytes:
    return b"".join(v + b"\n" for v in values)


def audit_docs(path: Path) -> list[dict]:
    return [orjson.loads(l) for l in path.read_bytes().splitlines()]


def personal_and_protected(values: list[bytes]) -> list[str]:
    out = []
    for rec in RECORDS:
        out += [rec[k] for k in ("id_number", "card", "name", "email", "mobile")]
        out.append(rec["id_number"][:-1])
    for v in values:
        p = orjson.loads(v)
        out += [p[k] for k in ("id_number", "card", "name", "email", "mobile")]
    return out


def test_cli_reveals_old_and_new_records_with_key_versions(cli_env, protected, tmp_path):
    _, _, old, new = protected
    audit = tmp_path / "audit.jsonl"
    res_old = reveal_cli(cli_env, lines(old), "--key-versions", "fpe=1,token=1", "--audit-file", str(audit))
    assert res_old.exit_code == 0, res_old.stderr
    res_new = reveal_cli(cli_env, lines(new), "--key-versions", "fpe=2", "--audit-file", str(audit))
    assert res_new.exit_code == 0, res_new.stderr
    got_old = [orjson.loads(l) for l in res_old.stdout_bytes.splitlines()]
    got_new = [orjson.loads(l) for l in res_new.stdout_bytes.splitlines()]
    assert got_old == [expected_revealed(r, p) for r, p in zip(RECORDS, old)]
    assert got_new == [expected_revealed(r, p) for r, p in zip(RECORDS, new)]
    assert "one-way rules cannot be revealed: email, mobile" in res_new.stderr
    docs = audit_docs(audit)
    assert len(docs) == 2 * len(RECORDS)
    for i, d in enumerate(docs):
        assert d["actor"] == "alice" and d["reason"] == "ticket DPO-42"
        assert d["route"] == "crm" and d["policy"].startswith("reveal-unit@")
        assert d["record"] == {"line": i % len(RECORDS) + 1}
        assert d["fields"] == ["id_number", "card-number", "name"] and d["result"] == "revealed"
        assert d["ts"].endswith("+00:00")
    text = audit.read_text(encoding="utf-8")
    raw = audit.read_bytes()
    for value in personal_and_protected(old + new):
        assert value not in text and value.encode() not in raw, "a value reached the audit file"


def test_cli_without_key_versions_uses_current(cli_env, protected, tmp_path):
    _, _, old, new = protected
    res = reveal_cli(cli_env, lines(new), "--audit-file", str(tmp_path / "a.jsonl"))
    assert res.exit_code == 0
    assert [orjson.loads(l) for l in res.stdout_bytes.splitlines()] == [
        expected_revealed(r, p) for r, p in zip(RECORDS, new)]


def test_cli_refuses_without_audit(cli_env, protected):
    res = reveal_cli(cli_env, lines(protected[3]))
    assert res.exit_code == 2
    assert "--audit-file or --audit-topic" in res.stderr and res.stdout == ""


def test_cli_audit_topic_needs_bootstrap(cli_env, protected):
    res = reveal_cli(cli_env, lines(protected[3]), "--audit-topic", "audit")
    assert res.exit_code == 2 and "--bootstrap-servers" in res.stderr


def test_cli_refuses_one_way_field(cli_env, protected, tmp_path):
    audit = tmp_path / "audit.jsonl"
    res = reveal_cli(cli_env, lines(protected[3]), "--field", "email", "--audit-file", str(audit))
    assert res.exit_code == 1
    assert "one-way" in res.stderr and "'email'" in res.stderr
    assert res.stdout == ""
    assert not audit.exists() or audit.read_bytes() == b""


def test_cli_field_selection(cli_env, protected, tmp_path):
    _, _, _, new = protected
    audit = tmp_path / "audit.jsonl"
    res = reveal_cli(cli_env, lines(new[:1]), "--field", "card-number", "--audit-file", str(audit))
    assert res.exit_code == 0, res.stderr
    got = orjson.loads(res.stdout_bytes)
    assert got["card"] == RECORDS[0]["card"] and got["name"] == orjson.loads(new[0])["name"]
    assert audit_docs(audit)[0]["fields"] == ["card-number"]


def test_cli_failures_are_reported_audited_and_others_revealed(cli_env, protected, tmp_path):
    _, _, _, new = protected
    tampered = orjson.loads(new[1])
    tampered["name"] = tampered["name"][:-3] + ("aaa" if not tampered["name"].endswith("aaa") else "bbb")
    stdin = lines([new[0], orjson.dumps(tampered), b"{not json", new[2]])
    audit = tmp_path / "audit.jsonl"
    res = reveal_cli(cli_env, stdin, "--audit-file", str(audit))
    assert res.exit_code == 1
    assert "line 2: cannot reveal: token-invalid (rule name)" in res.stderr
    assert "line 3: cannot reveal: not a JSON object" in res.stderr
    assert "Traceback" not in res.stderr
    out = [orjson.loads(l) for l in res.stdout_bytes.splitlines()]
    assert out == [expected_revealed(RECORDS[0], new[0]), expected_revealed(RECORDS[2], new[2])]
    docs = audit_docs(audit)
    assert [d["record"] for d in docs] == [{"line": n} for n in (1, 2, 3, 4)]
    assert [d["result"] for d in docs] == ["revealed", "failed", "failed", "revealed"]
    assert docs[1]["error"] == "token-invalid" and docs[1]["rule"] == "name"
    assert docs[2]["error"] == "invalid-json"
    text = audit.read_text(encoding="utf-8")
    for value in personal_and_protected(new) + [tampered["name"]]:
        assert value not in text
    for value in personal_and_protected([]):              # nothing revealed leaks into stderr
        assert value not in res.stderr
