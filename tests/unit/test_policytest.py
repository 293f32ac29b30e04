"""``dpp test`` (proxy/policytest.py): the shipped example policies pass their own tests, every
assertion kind passes when it holds and fails when it does not, bad test files fail with
FILE:LINE: PATH, test keys never come from the policy's key sources, JUnit XML parses."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.errors import PolicyError
from proxy.policy.loader import load_policy_text
from proxy.policy.models import PolicyTestCase
from proxy.policytest import compile_for_tests, derived_test_key, load_suite, run_case, with_test_keys

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "policies" / "examples"
TESTED = ["customer-pii.yaml", "support-minimum-necessary.yaml", "crypto-shredding.yaml", "debezium-cdc.yaml", "consent-topic.yaml"]

POLICY = """\
version: 1
name: t
keys:
  fpe: {source: env, name: DPP_TEST_NEVER_SET_FPE}
  tok: {source: file, path: /nonexistent/never-read}
  dl:  {source: dir, path: /nonexistent/dir}
routes:
  - name: r
    source: a
    sink: b
    dead_letter: c
    dead_letter_key: dl
    key: {format: string, rules: [{action: tokenize, key: tok}]}
    headers: [{header: x-email, action: redact, value: "-"}]
    block:
      - when: {field: consent, equals: false}
        reason: no-consent
    rules:
      - {field: card, action: fpe, key: fpe}
      - {field: name, action: mask, keep_first: 1}
      - {field: email, action: tokenize, key: tok, prefix: "em_"}
      - {field: street, action: drop}
      - {field: "items[*].card", action: fpe, key: fpe}
"""

INPUT = {"value": {"card": "4111111111111111", "name": "Alice", "email": "a@example.com", "street": "1 Main St",
                   "keep": "as is", "items": [{"card": "5500000000000004"}, {"card": "4000056655665556"}]},
         "key": "C42", "headers": {"x-email": "a@example.com"}}


@pytest.fixture(scope="module")
def route():
    return compile_for_tests(load_policy_text(POLICY, "t.yaml")).route("r")


def case(**kw) -> PolicyTestCase:
    return PolicyTestCase.model_validate({"name": "c", "input": kw.pop("input", INPUT), **kw})


@pytest.mark.parametrize("runner_args", [[str(EXAMPLES / n)] for n in TESTED], ids=TESTED)
def test_shipped_examples_pass_their_tests(runner_args):
    res = CliRunner().invoke(main, ["test", *runner_args])
    assert res.exit_code == 0, res.output
    assert "FAIL" not in res.output and res.output.endswith(" passed, 0 failed\n")


def test_shipped_examples_have_enough_cases():
    assert len(load_suite(EXAMPLES / "customer-pii.yaml").cases) >= 5
    assert load_suite(EXAMPLES / "support-minimum-necessary.yaml").loaded.policy.tests  # written inside


# (assertion, passes?) — every kind both ways
ASSERTS = [
    ({"path": "name", "equals": "A****"}, True),
    ({"path": "name", "equals": "Alice"}, False),
    ({"path": "keep", "equals": "as is"}, True),
    ({"path": "email", "matches": "em_[a-z2-7]+"}, True),
    ({"path": "email", "matches": "em_"}, False),                     # whole value must match
    ({"path": "card", "length": 16}, True),
    ({"path": "card", "length": 15}, False),
    ({"path": "items", "length": 2}, True),
    ({"path": "street", "absent": True}, True),
    ({"path": "name", "absent": True}, False),
    ({"path": "card", "not_equals_input": True}, True),
    ({"path": "keep", "not_equals_input": True}, False),
    ({"path": "card", "decrypts_to": "4111111111111111"}, True),
    ({"path": "card", "decrypts_to": "4111111111111112"}, False),
    ({"path": "keep", "decrypts_to": "as is"}, False),                # in clear: not a ciphertext
    ({"path": "email", "decrypts_to": "a@example.com"}, True),
    ({"path": "items[*].card", "decrypts_to": "5500000000000004"}, False),  # second item differs
    ({"path": "items[0].card", "decrypts_to": "5500000000000004"}, True),
    ({"path": "items[*].card", "not_equals_input": True}, True),
    ({"path": "missing", "equals": 1}, False),
    ({"path": "{card,name}", "not_equals_input": True}, True),        # wildcard paths: every node must pass
    ({"path": "{name,keep}", "not_equals_input": True}, False),
    ({"path": "*", "absent": True}, False),
    ({"path": "**.card", "length": 16}, True),                        # objects only: not items[*].card
    ({"path": "**.street", "absent": True}, True),
    ({"path": "**.keep", "absent": True}, False),
    ({"path": "@key", "matches": "tok_[a-z2-7]+"}, True),
    ({"path": "@key", "not_equals_input": True}, True),
    ({"path": "@key", "equals": "C42"}, False),
    ({"path": "@headers.x-email", "equals": "-"}, True),
    ({"path": "@headers.x-email", "absent": True}, False),
    ({"path": "@headers.x-other", "absent": True}, True),
]


@pytest.mark.parametrize("assertion,passes", ASSERTS, ids=[f"{a['path']}-{[k for k in a if k != 'path'][0]}-{p}"
                                                           for a, p in ASSERTS])
def test_assertions(route, assertion, passes):
    fails = run_case(route, case(**{"assert": [assertion]}))
    assert (fails == []) is passes, fails


OUTCOMES = [
    ({"value": {"consent": False}}, {"blocked": "no-consent"}, True),
    ({"value": {"consent": False}}, {"blocked": "other"}, False),
    ({"value": {"consent": True}}, {"blocked": "no-consent"}, False),
    ({"value": {"card": {"x": 1}}}, {"dead_letter": "unsupported-type"}, True),
    ({"value": "not json"}, {"dead_letter": "invalid-json"}, True),
    ({"value": "not json"}, {"dead_letter": "unsupported-type"}, False),
]


@pytest.mark.parametrize("inp,outcome,passes", OUTCOMES)
def test_outcomes(route, inp, outcome, passes):
    fails = run_case(route, case(input=inp, outcome=outcome))
    assert (fails == []) is passes, fails


def test_output_exact_and_diff(route):
    inp = {"value": {"name": "Bob", "keep": 1}}
    assert run_case(route, case(input=inp, output={"keep": 1, "name": "B**"})) == []
    fails = run_case(route, case(input=inp, output={"keep": 1, "name": "Bob"}))
    assert fails[0].startswith("output differs")
    assert '-  "name": "Bob"' in fails and '+  "name": "B**"' in fails
    assert run_case(route, case(input=inp, output={"keep": True, "name": "B**"}))  # true is not 1
    # a blocked record fails an output expectation
    assert "blocked no-consent" in run_case(route, case(input={"value": {"consent": False}}, output={}))[0]


def test_test_keys_never_read_the_policy_sources_and_are_deterministic(tmp_path):
    loaded = load_policy_text(POLICY, "t.yaml")
    pol, env = with_test_keys(loaded, {"fpe": bytes(range(32))})
    assert {k.source for k in pol.policy.keys.values()} == {"env"}
    assert all(v.startswith("DPP_TEST_KEY_") for k in pol.policy.keys.values() for v in k.versions.values())
    assert bytes(range(32)).hex() in env.values() and derived_test_key("tok", 1).hex() in env.values()
    a = compile_for_tests(loaded).route("r").process_record(b'{"card":"4111111111111111"}')
    b = compile_for_tests(loaded).route("r").process_record(b'{"card":"4111111111111111"}')
    c = compile_for_tests(loaded, {"fpe": bytes(32)}).route("r").process_record(b'{"card":"4111111111111111"}')
    assert a.value == b.value != c.value


def write(tmp_path, text: str) -> tuple[Path, Path]:
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY, encoding="utf-8")
    tests = tmp_path / "p.tests.yaml"
    tests.write_text(text, encoding="utf-8")
    return pol, tests


BAD_FILES = [
    ("tests:\n  - name: a\n    input: {value: {}}\n", "p.tests.yaml:2: tests[0]: give an expectation"),
    ("tests:\n  - name: a\n    route: nope\n    input: {value: {}}\n    output: {}\n",
     "p.tests.yaml:3: tests[0].route: no route 'nope'"),
    ("tests:\n  - name: a\n    input: {value: {}}\n    assert:\n      - {path: x, equals: 1, length: 2}\n",
     "p.tests.yaml:5: tests[0].assert[0]: give exactly one of"),
    ("tests:\n  - name: a\n    input: {value: {}}\n    assert:\n      - {path: x, matches: '('}\n",
     "p.tests.yaml:5: tests[0].assert[0]: matches: invalid regular expression"),
    ("keys: {fpe: abc}\ntests:\n  - name: a\n    input: {value: {}}\n    output: {}\n",
     "p.tests.yaml:1: keys.fpe: String should match pattern"),
    ("keys: {fpe: " + "00" * 16 + "}\ntests:\n  - name: a\n    input: {value: {}}\n    output: {}\n",
     "p.tests.yaml:1: keys.fpe: YAML read this key as a number: quote the hex digits"),
    ("keys: {other: '" + "00" * 16 + "'}\ntests:\n  - name: a\n    input: {value: {}}\n    output: {}\n",
     "p.tests.yaml:1: keys.other: key 'other' is not declared"),
    ("tests:\n  - name: a\n    input: {value: {}}\n    output: {}\n  - name: a\n    input: {value: {}}\n    output: {}\n",
     "p.tests.yaml:5: tests[1].name: test name 'a' is used twice"),
    ("tests:\n  - name: a\n   input: {}\n", "p.tests.yaml:3: <root>: YAML syntax"),
]


@pytest.mark.parametrize("text,message", BAD_FILES, ids=range(len(BAD_FILES)))
def test_bad_test_files_name_file_line_path(tmp_path, text, message):
    pol, _ = write(tmp_path, text)
    with pytest.raises(PolicyError) as e:
        load_suite(pol)
    assert any(line.endswith(message) or message in line for line in str(e.value).splitlines()), str(e.value)
    res = CliRunner().invoke(main, ["test", str(pol)])
    assert res.exit_code == 1 and message in res.output


def test_cli_failure_diff_summary_and_junit(tmp_path):
    pol, tests = write(tmp_path, (
        "keys: {fpe: '" + "11" * 32 + "'}\n"
        "tests:\n"
        "  - name: passes\n    input: {value: {name: Bob}}\n    output: {name: B**}\n"
        "  - name: broken expectation\n    input: {value: {name: Bob}}\n    output: {name: Bob}\n"))
    junit = tmp_path / "junit.xml"
    res = CliRunner().invoke(main, ["test", str(pol), "--junit", str(junit)])
    assert res.exit_code == 1
    out = res.output.splitlines()
    assert "PASS passes" in out
    assert any(l.startswith("FAIL broken expectation (") and l.endswith("p.tests.yaml:6)") for l in out)
    assert '    -  "name": "Bob"' in out and '    +  "name": "B**"' in out
    assert out[-1] == "1 passed, 1 failed"
    assert "11" * 32 not in res.output
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "2" and root.get("failures") == "1"
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["passes", "broken expectation"]
    assert cases[1].find("failure") is not None and cases[0].find("failure") is None


def test_no_cases_is_an_error(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY, encoding="utf-8")
    res = CliRunner().invoke(main, ["test", str(pol)])
    assert res.exit_code == 1 and "no test cases" in res.output


def test_skip_untested_and_test_files_among_the_policies():
    """What the pre-commit hook passes: every policy file and test file that changed."""
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    res = CliRunner().invoke(main, ["test", "--skip-untested", *files])
    assert res.exit_code == 0, res.output
    ran = [line.split(":")[0] for line in res.output.splitlines() if line.endswith("case(s)")]
    assert sorted(Path(f).name for f in ran) == sorted(TESTED)  # each once, though its test file was given too
    skipped = [line for line in res.output.splitlines() if line.endswith("no test cases, skipped")]
    assert len(skipped) == len([f for f in files if not f.endswith(".tests.yaml")]) - len(TESTED)
    res = CliRunner().invoke(main, ["test", str(EXAMPLES / "customer-pii.tests.yaml")])
    assert res.exit_code == 0 and res.output.startswith(f"{EXAMPLES / 'customer-pii.yaml'}: 5 case(s)")
    res = CliRunner().invoke(main, ["test", str(EXAMPLES / "purposes.yaml")])
    assert res.exit_code == 1 and "no test cases" in res.output


def test_cases_inside_the_policy_are_checked_at_load():
    bad = POLICY + "tests:\n  - name: a\n    route: zz\n    input: {value: {}}\n    output: {}\n"
    with pytest.raises(PolicyError) as e:
        load_policy_text(bad, "t.yaml")
    assert "t.yaml:26: tests[0].route: no route 'zz'" in str(e.value)


def test_schema_format_routes_are_refused_by_name(tmp_path):
    tests = tmp_path / "avro.tests.yaml"
    tests.write_text("tests:\n  - name: a\n    input: {value: {name: x}}\n    output: {}\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["test", str(EXAMPLES / "customer-pii-avro.yaml"), "--tests", str(tests)])
    assert res.exit_code == 1
    assert "customer-pii-avro.yaml:" in res.output and "dpp test runs json routes" in res.output


def test_an_invalid_test_file_is_an_error_in_the_junit_report(tmp_path):
    """A test file that does not load runs no case: the runner says so on stdout, exits 1, and the
    JUnit report holds an <error> for it (a CI report must not look green)."""
    pol, tests = write(tmp_path, (
        "tests:\n"
        "  - name: typo\n    input: {value: {name: Bob}}\n    assert: [{path: name, equal: B**}]\n"))
    junit = tmp_path / "junit.xml"
    res = CliRunner().invoke(main, ["test", str(pol), "--junit", str(junit)])
    assert res.exit_code == 1
    assert any(line.startswith("ERROR ") and "not run" in line for line in res.output.splitlines()), res.output
    assert res.output.splitlines()[-1] == "0 passed, 0 failed, 1 file(s) not run"
    root = ET.parse(junit).getroot()
    assert root.get("errors") == "1" and root.get("tests") == "1"
    (err,) = root.findall("./testsuite/testcase/error")
    assert "equal" in err.text and "unknown key" in err.text
