"""The fuzz targets of ``loadtests/fuzz.py`` on a small CI budget, and their oracle's teeth.

The long runs (``python -m loadtests.fuzz --cases 1000000``) are not CI; here each target runs a
few thousand cases (atheris, coverage-guided, when installed; otherwise skipped), and the oracle is
shown to report what it must: a leak, a disagreement between the paths, a crash, a policy error
without ``FILE:LINE``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from loadtests import fuzz  # noqa: E402

from policykit import policy_text  # noqa: E402

CASES = {"record": 15000, "policy": 1500}


@pytest.mark.parametrize("target", ["record", "policy"])
def test_fuzz_target_small_budget(target, tmp_path):
    pytest.importorskip("atheris", reason="atheris not installed (pip install atheris; the test extra has it)")
    res = subprocess.run([sys.executable, "-m", "loadtests.fuzz", "--target", target, "--cases", str(CASES[target]),
                          "--seconds", "12", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith(f"{target}: cases=")]
    assert lines, res.stdout[-2000:] + res.stderr[-2000:]
    assert " crashes=0 leaks=0 other=0 " in lines[0], res.stdout
    assert int(lines[0].split("cases=")[1].split()[0]) >= 100
    assert res.returncode == 0


def test_the_mutation_runner_without_atheris():
    tally = fuzz.run("record", 300, use_atheris=False)
    assert (tally.cases, tally.crashes, tally.leaks, tally.other) == (300, 0, 0, 0)


# ------------------------------------------------------------------------------- the oracle's teeth
SECRET = "sekret-value-7q"


def test_the_oracle_reports_a_leak(monkeypatch):
    oracle = fuzz.RecordOracle(policy_text(["{field: a, action: mask}", "{field: b, action: pseudonymize, key: k}"]))
    value = ('{"a": "' + SECRET + '", "b": "' + SECRET[::-1] + '"}').encode()
    assert oracle.check(value) == []
    t = oracle.ref.transforms[0]
    monkeypatch.setattr(oracle.ref, "_steps", [lambda o, h: 1] + oracle.ref._steps[1:])   # mask does nothing
    monkeypatch.setattr(oracle.other, "_steps", [lambda o, h: 1] + oracle.other._steps[1:])
    problems = oracle.check(value)
    assert any(p.startswith("leak:") for p in problems) and t is not None
    assert all(SECRET not in p for p in problems)                 # findings never hold record text


def test_the_oracle_ignores_a_value_also_held_in_clear_elsewhere():
    oracle = fuzz.RecordOracle(policy_text(["{field: a, action: mask}"]))
    assert oracle.check(('{"a": "' + SECRET + '", "c": "' + SECRET + '"}').encode()) == []
    assert oracle.check(('{"a": "****", "' + SECRET + '": 1}').encode()) == []


def test_the_oracle_reports_disagreement_and_crashes(monkeypatch):
    oracle = fuzz.RecordOracle(policy_text(["{field: a, action: mask}"]))
    name, batch = oracle.batches[0]
    monkeypatch.setattr(batch, "_fast", lambda values, timestamps=None: [b"{}" for _ in values])
    assert any(p.startswith("disagree:") for p in oracle.check(b'{"a": "xxxx"}'))

    def boom(values, timestamps=None):
        raise IndexError("x")
    monkeypatch.setattr(batch, "_fast", boom)
    assert any(p.startswith("crash:") for p in oracle.check(b'{"a": "xxxx"}'))


def test_the_policy_check_wants_file_and_line(monkeypatch):
    assert fuzz.check_policy_text(b"version: 1\nname: [\n") == []
    assert fuzz.check_policy_text(fuzz.EXAMPLE.read_bytes()) == []
    from proxy.errors import PolicyError

    def bad(text, file):
        raise PolicyError([("other.yaml", 0, "", "x")])
    monkeypatch.setattr(fuzz, "load_policy_text", bad)
    assert fuzz.check_policy_text(b"x") != []

    def crash(text, file):
        raise KeyError("x")
    monkeypatch.setattr(fuzz, "load_policy_text", crash)
    assert fuzz.check_policy_text(b"x") == ["crash: policy loader raised KeyError"]


def test_the_oracle_ignores_a_string_a_mask_rule_gives_back_under_another_rule_too():
    """Found by the fuzzer: ``"****"`` under a mask rule comes out as ``"****"``; the same string
    under a pseudonymize rule is protected, yet ``"****"`` is in the output (from the mask). Not a
    leak; a string only the pseudonymize rule holds still is one."""
    oracle = fuzz.RecordOracle(policy_text(["{field: a, action: mask}", "{field: b, action: pseudonymize, key: k}"]))
    assert oracle.check(b'{"a": "****", "b": "****"}') == []
    assert oracle.originals(b'{"a": "****", "b": "' + SECRET.encode() + b'"}') == [SECRET]
