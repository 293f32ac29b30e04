"""The offline commands of the ``dpp`` CLI: check, apply, generate, schema (no broker involved)."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.crypto.ff1 import FF1
from proxy.generator import generate_records
from proxy.policy.models import policy_json_schema

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "policies"
BROKEN = DATA / "broken"
ALL_ACTIONS = DATA / "valid-all-actions.yaml"
SHIPPED = sorted(p for ext in ("*.yaml", "*.yml") for p in (ROOT / "policies").rglob(ext)
                 if not p.name.endswith(".tests.yaml"))  # dpp test files (tests/unit/test_policytest.py)

KEY_PSEUDONYM = bytes(range(32))
KEY_FPE = bytes(range(100, 132))
KEY_DLQ = bytes(range(200, 232))


def runner() -> CliRunner:
    """A runner that keeps stdout and stderr apart (click >= 8.2 always does; 8.1 needs the flag)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


@pytest.fixture
def test_keys(monkeypatch):
    """The keys of tests/data/policies/valid-all-actions.yaml, in the environment."""
    monkeypatch.setenv("DPP_TEST_KEY_PSEUDONYM", KEY_PSEUDONYM.hex())
    monkeypatch.setenv("DPP_TEST_KEY_FPE", KEY_FPE.hex())
    monkeypatch.setenv("DPP_TEST_KEY_DLQ", KEY_DLQ.hex())


def pseudonym(value: str, binding: str, key: bytes = KEY_PSEUDONYM) -> str:
    """HMAC-SHA256 over the documented message, computed here independently of the transform."""
    return hmac.new(key, b"dpp-pseudonym-v1\x00" + binding.encode() + b"\x00" + value.encode(), hashlib.sha256).hexdigest()


# ----------------------------------------------------------------------------- check
def test_shipped_policies_exist():
    assert any(p.parent.name == "examples" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED + sorted(DATA.glob("valid-*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_check_accepts_every_shipped_policy(path):
    res = runner().invoke(main, ["check", str(path)])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith(f"{path}: ok: policy ")
    assert res.stderr == ""


def test_check_all_shipped_policies_in_one_call():
    res = runner().invoke(main, ["check", *map(str, SHIPPED)])
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.splitlines()) == len(SHIPPED)


def test_check_ok_line_counts_routes_and_rules():
    res = runner().invoke(main, ["check", str(ALL_ACTIONS)])
    assert res.stdout == f"{ALL_ACTIONS}: ok: policy unit-all-actions@r1, 2 route(s), 12 rule(s)\n"


BROKEN_STDERR = {
    "unknown-action.yaml": ["13: routes[0].rules[0]: unknown action 'maks'; expected one of "],
    "unknown-key.yaml": ["14: routes[0].rules[1].keep_frist: unknown key"],
    "duplicate-yaml-key.yaml": ["14: routes[0].sink: duplicate key"],
    "yaml-syntax.yaml": ["14: <root>: YAML syntax: expected ',' or '}', but got '{'"],
    "source-is-sink.yaml": ["7: routes[0]: source, sink and dead_letter must be three different topics"],
    "wildcard-overlap.yaml": [
        "15: routes[0].rules[2].field: field '**.email' and 'after.payer.email' (rules[0]) can select the same value: "
        "one value would get two rules",
        "16: routes[0].rules[3].field: field '*.phone' and '{before,after}.phone' (rules[1]) can select the same value: "
        "one value would get two rules",
        "18: routes[0].rules[5].field: field '{before,after}.address.city' lies inside 'before.address', which rules[4] "
        "already drops",
    ],
    "rule-set-overlap.yaml": [
        "20: routes[0].rules[1].field: field '*.email' and '{before,after}.email' (rule_sets.contact[0], line 9) can "
        "select the same value: one value would get two rules",
        "21: routes[0].rules[2].field: field 'after.address.city' lies inside '{before,after}.address', which "
        "rule_sets.contact[1], line 10 already drops",
    ],
    "rule-inside-dropped.yaml": [
        "13: routes[0].rules[0].field: field 'address.city' lies inside 'address', which rules[1] already drops",
        "16: routes[0].rules[3].field: field 'orders[2].card' lies inside 'orders[*]', which rules[2] already drops",
    ],
    "block-equals-and-in.yaml": ["14: routes[0].block[0].when: give exactly one of 'equals', 'in' or 'not_equals'"],
}


@pytest.mark.parametrize("name", sorted(BROKEN_STDERR))
def test_check_rejects_broken_policy_with_exact_lines(name):
    path = BROKEN / name
    res = runner().invoke(main, ["check", str(path)])
    assert res.exit_code == 1
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == len(BROKEN_STDERR[name])
    for got, want in zip(lines, BROKEN_STDERR[name]):
        want = f"{path}:{want}"
        # 'unknown action' lists every action; the list grows with the project, its head does not
        assert got == want or (want.endswith("expected one of ") and got.startswith(want + "'keep', 'mask'"))


@pytest.mark.parametrize("name", sorted(p.name for p in BROKEN.glob("*.yaml")))
def test_check_exits_1_for_every_broken_file(name):
    res = runner().invoke(main, ["check", str(BROKEN / name)])
    assert res.exit_code == 1
    assert all(line.startswith(f"{BROKEN / name}:") for line in res.stderr.splitlines())


def test_check_mixed_files_reports_both_and_exits_1():
    good, bad = SHIPPED[0], BROKEN / "unknown-key.yaml"
    res = runner().invoke(main, ["check", str(good), str(bad)])
    assert res.exit_code == 1
    assert res.stdout.startswith(f"{good}: ok: ")
    assert res.stderr == f"{bad}:14: routes[0].rules[1].keep_frist: unknown key\n"


def test_check_missing_file(tmp_path):
    missing = tmp_path / "absent.yaml"
    res = runner().invoke(main, ["check", str(missing)])
    assert res.exit_code == 1
    assert res.stderr == f"{missing}:?: <root>: cannot read policy file: FileNotFoundError\n"


def test_check_needs_a_file():
    assert runner().invoke(main, ["check"]).exit_code == 2


def test_check_as_a_real_process():
    """The installed entry point and a separate interpreter give the same exit codes."""
    scripts = [e for e in entry_points(group="console_scripts") if e.name == "dpp"]
    assert [e.value for e in scripts] == ["proxy.cli:main"]
    cmd = [sys.executable, "-c", "from proxy.cli import main; main()", "check"]
    ok = subprocess.run(cmd + [str(p) for p in SHIPPED], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(cmd + [str(BROKEN / "duplicate-yaml-key.yaml")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr == f"{BROKEN / 'duplicate-yaml-key.yaml'}:14: routes[0].sink: duplicate key\n"


# ----------------------------------------------------------------------------- apply
CANARY = "canary-zq81"
INPUT_LINES = [
    # 1: protected
    {"id": 1, "name": "Ada", "mobile": "13900001111", "email": " Ada.Lovelace@Example.COM",
     "card": "4111-1111-1111-1111", "address": {"street": "1 Main St", "city": "Hangzhou"},
     "note": "call me", "segment": "gold", "orders": [{"card": "5500000000000004", "amount": 3}]},
    # 2: invalid JSON (the text of the line must never be echoed)
    '{"id": 2, "email": "' + CANARY + '@example.org"',
    # 3: blocked by consent
    {"id": 3, "consent": {"analytics": False}, "email": CANARY + "@example.org"},
    # 4: cannot be protected: FPE of 5 digits is refused
    {"id": 4, "card": "12345", "extra": CANARY},
    # 5: not a JSON object
    [CANARY, 5],
    # 6: protected, CJK name
    {"id": 6, "name": "李四", "mobile": "+86 139 0000 1111"},
    # 7: blocked by the `in` condition
    {"id": 7, "country": "KP", "name": CANARY},
    # 8: empty line
    "",
    # 9: unsupported type for a masked field (a boolean cannot be masked)
    {"id": 9, "name": True, "note": CANARY},
]


def _input_bytes(lines, eol=b"\n") -> bytes:
    out = []
    for x in lines:
        out.append(x.encode() if isinstance(x, str) else orjson.dumps(x))
    return eol.join(out) + eol


def expected_record_1() -> dict:
    tweak_card = b"field:unit-all-actions:card"
    tweak_order = b"field:unit-all-actions:orders[*].card"
    ff1 = FF1(KEY_FPE, "0123456789")
    enc = ff1.encrypt("4111111111111111", tweak_card)
    return {
        "id": 1,
        "name": "A**",
        "mobile": "139****1111",    # 3 + 4 kept as asked, 4 of 11 digits masked
        "email": "em_" + pseudonym("ada.lovelace@example.com", "domain:contact")[:16],
        "card": "-".join(enc[i:i + 4] for i in range(0, 16, 4)),
        "address": {"city": "Hangzhou"},
        "note": "[redacted]",
        "segment": "gold",
        "orders": [{"card": ff1.encrypt("5500000000000004", tweak_order), "amount": 3}],
    }


def test_apply_protects_in_order_and_reports_failures(test_keys):
    res = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "people"],
                          input=_input_bytes(INPUT_LINES))
    assert res.exit_code == 1
    out = [orjson.loads(line) for line in res.stdout_bytes.splitlines()]
    assert [r["id"] for r in out] == [1, 6]          # one line per protected input line, in order
    assert out[0] == expected_record_1()
    assert out[1] == {"id": 6, "name": "李*", "mobile": "+86 1** **** 1111"}  # 13 digits: 3 + 4 kept
    assert res.stderr.splitlines() == [
        "line 2: not protected: invalid-json (stage=deserialize)",
        "line 3: blocked consent-withdrawn",
        "line 4: not protected: fpe-domain-too-small (stage=transform rule=card)",
        "line 5: not protected: not-an-object (stage=deserialize)",
        "line 7: blocked embargo",
        "line 8: not protected: invalid-json (stage=deserialize)",
        "line 9: not protected: unsupported-type (stage=transform rule=name)",
    ]
    assert CANARY not in res.stdout and CANARY not in res.stderr
    assert "Ada" not in res.stdout and "4111" not in res.stdout


def test_apply_crlf_and_summary(test_keys):
    lines = [{"id": 1, "name": "Bob"}, {"id": 2, "country": "IR"}, {"id": 3, "card": "1"}]
    res = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "people", "--summary"],
                          input=_input_bytes(lines, b"\r\n"))
    assert res.exit_code == 1
    assert res.stdout_bytes == b'{"id":1,"name":"B**"}\n'
    err = res.stderr.splitlines()
    assert err[:2] == ["line 2: blocked embargo", "line 3: not protected: fpe-domain-too-small (stage=transform rule=card)"]
    summary = json.loads(err[2])
    assert (summary["protected"], summary["blocked"], summary["unprotectable"]) == (1, 1, 1)
    assert summary["transforms"] == {"name": 1, "mobile": 0, "email": 0, "card": 0, "order-card": 0,
                                     "address.street": 0, "note": 0, "segment": 0}
    # the dead-lettered record counts nothing; the blocked one is never evaluated
    assert summary["unmatched"]["mobile"] == 1 and summary["unmatched"]["card"] == 1


def test_apply_exit_0_when_everything_is_protected_or_blocked(test_keys):
    lines = [{"id": 1}, {"id": 2, "consent": {"analytics": False}}, {"id": 3, "segment": None}]
    res = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "people"], input=_input_bytes(lines))
    assert res.exit_code == 0
    assert res.stdout_bytes == b'{"id":1}\n{"id":3,"segment":null}\n'
    assert res.stderr == "line 2: blocked consent-withdrawn\n"


def test_apply_allow_list_route(test_keys):
    rec = {"id": 5, "name": "Ada", "email": "ADA@example.com", "address": {"street": "s", "city": "c", "zip": "1"},
           "orders": [{"amount": 1, "card": "5500000000000004"}, {"card": "4111111111111111"}]}
    res = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "allow-list"], input=_input_bytes([rec]))
    assert res.exit_code == 0, res.stderr
    assert orjson.loads(res.stdout_bytes) == {
        "id": 5, "email": "em_" + pseudonym("ada@example.com", "domain:contact")[:16],
        "address": {"city": "c"}, "orders": [{"amount": 1}, {}]}


def test_apply_same_domain_links_across_routes(test_keys):
    rec = _input_bytes([{"email": "x@example.com"}])
    a = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "people"], input=rec)
    b = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "allow-list"], input=rec)
    assert a.stdout_bytes == b.stdout_bytes == orjson.dumps({"email": "em_" + pseudonym("x@example.com", "domain:contact")[:16]}) + b"\n"


def test_apply_needs_route_when_policy_has_several(test_keys):
    res = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS)], input=b"{}\n")
    assert res.exit_code == 2
    assert "policy has 2 routes" in res.stderr
    res = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "nope"], input=b"{}\n")
    assert res.exit_code == 2


def test_apply_missing_key_names_key_and_variable(monkeypatch, test_keys):
    monkeypatch.delenv("DPP_TEST_KEY_FPE")
    res = runner().invoke(main, ["apply", "--policy", str(ALL_ACTIONS), "--route", "people"], input=b"{}\n")
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr == (f"{ALL_ACTIONS}:8: keys.fpe: key 'fpe' (environment variable DPP_TEST_KEY_FPE): "
                          "variable is not set\n")
    assert KEY_PSEUDONYM.hex() not in res.stderr and KEY_DLQ.hex() not in res.stderr


def test_apply_broken_policy_exits_1_with_problem_lines():
    res = runner().invoke(main, ["apply", "--policy", str(BROKEN / "unknown-key.yaml")], input=b"{}\n")
    assert res.exit_code == 1
    assert res.stderr == f"{BROKEN / 'unknown-key.yaml'}:14: routes[0].rules[1].keep_frist: unknown key\n"


def test_apply_example_policy_on_generated_records(demo_keys):
    gen = runner().invoke(main, ["generate", "--count", "20", "--seed", "9"])
    assert gen.exit_code == 0
    res = runner().invoke(main, ["apply", "--policy", str(ROOT / "policies/examples/customer-pii.yaml")],
                          input=gen.stdout_bytes)
    src = [orjson.loads(x) for x in gen.stdout_bytes.splitlines()]
    blocked = {i + 1 for i, r in enumerate(src) if r["consent"]["analytics"] is False}
    assert blocked and any(r["id_number"].endswith("X") for r in src)   # the sample exercises both
    assert res.exit_code == 0, res.stderr
    assert res.stderr.splitlines() == [f"line {n}: blocked consent-withdrawn" for n in sorted(blocked)]
    out = [orjson.loads(x) for x in res.stdout_bytes.splitlines()]
    kept = [r for i, r in enumerate(src) if i + 1 not in blocked]
    assert [r["record_id"] for r in out] == [r["record_id"] for r in kept]
    for s, p in zip(kept, out):
        assert p["email"] != s["email"] and p["email"].startswith("em_")
        assert "street" not in p["address"]
        assert len(p["id_number"]) == len(s["id_number"]) and p["id_number"] != s["id_number"]
        if s["id_number"].endswith("X"):
            assert p["id_number"].endswith("X")          # outside the digits alphabet: kept in place


def test_apply_as_a_real_process_never_echoes_bad_lines(test_keys):
    """Same contract through real pipes (stdin/stdout buffers of a separate interpreter)."""
    proc = subprocess.run([sys.executable, "-c", "from proxy.cli import main; main()",
                           "apply", "--policy", str(ALL_ACTIONS), "--route", "people"],
                          input=_input_bytes(INPUT_LINES), capture_output=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 1
    assert [orjson.loads(x)["id"] for x in proc.stdout.splitlines()] == [1, 6]
    assert len(proc.stderr.decode().splitlines()) == 7
    assert CANARY.encode() not in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- generate / schema
def test_generate_is_deterministic():
    a = runner().invoke(main, ["generate", "--count", "5", "--seed", "3"])
    b = runner().invoke(main, ["generate", "--count", "5", "--seed", "3"])
    c = runner().invoke(main, ["generate", "--count", "5", "--seed", "4"])
    assert a.exit_code == b.exit_code == c.exit_code == 0
    assert a.stdout_bytes == b.stdout_bytes
    assert a.stdout_bytes != c.stdout_bytes
    recs = [orjson.loads(x) for x in a.stdout_bytes.splitlines()]
    assert [r["record_id"] for r in recs] == [f"r-3-{i}" for i in range(5)]
    assert recs == list(generate_records(5, 3))


def test_generate_zero_and_negative():
    assert runner().invoke(main, ["generate", "--count", "0"]).stdout_bytes == b""
    assert runner().invoke(main, ["generate", "--count", "-1"]).exit_code == 2


def test_schema_command_prints_the_model_schema():
    res = runner().invoke(main, ["schema"])
    assert res.exit_code == 0
    assert json.loads(res.stdout) == policy_json_schema()
