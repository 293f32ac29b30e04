"""Policy loading (proxy.policy.loader): shipped policies load; broken ones give exact
``FILE:LINE: PATH: message`` problems."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import get_args

import pytest

from proxy.errors import PolicyError, format_problem
from proxy.policy.loader import LoadedPolicy, load_policy, load_policy_text
from proxy.policy.models import DropRule, FpeRule, KeepRule, KeySpec, MaskRule, PseudonymizeRule, RedactRule, Rule

def _tags(union_type, field: str) -> str:
    """Discriminator values of a tagged union in declaration order, as pydantic lists them."""
    members = get_args(get_args(union_type)[0])
    return ", ".join(repr(get_args(m.model_fields[field].annotation)[0]) for m in members)


ACTIONS = _tags(Rule, "action")      # 'keep', 'mask', ... (grows with new actions)
KEY_SOURCES = _tags(KeySpec, "source")

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "policies"
BROKEN = DATA / "broken"
SHIPPED = sorted(p for ext in ("*.yaml", "*.yml") for p in (ROOT / "policies").rglob(ext)
                 if not p.name.endswith(".tests.yaml"))  # dpp test files (tests/unit/test_policytest.py)
VALID_TEST = sorted(DATA.glob("valid-*.yaml"))


def test_there_are_shipped_policies():
    assert ACTIONS.startswith("'keep', 'mask', 'redact', 'drop', 'pseudonymize', 'fpe'")
    assert KEY_SOURCES.startswith("'env', 'file'")
    assert ROOT / "policies" / "examples" / "customer-pii.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED + VALID_TEST, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_and_test_policy_loads(path):
    lp = load_policy(path)
    assert isinstance(lp, LoadedPolicy)
    assert lp.file == str(path)
    assert lp.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert lp.policy.routes


def test_example_policy_contents():
    lp = load_policy(ROOT / "policies" / "examples" / "customer-pii.yaml")
    pol = lp.policy
    assert pol.name == "customer-pii"
    assert set(pol.keys) == {"pseudonym", "fpe", "dead-letter"}
    route = pol.routes[0]
    assert (route.source, route.sink, route.dead_letter) == ("crm.customers", "analytics.customers", "crm.customers.dlq")
    assert route.block[0].when.field == "consent.analytics" and route.block[0].when.equals is False
    by_field = {r.field: r for r in route.rules}
    assert isinstance(by_field["orders[*].card_number"], FpeRule)
    assert by_field["orders[*].card_number"].label == "order-card"
    assert by_field["name"].label == "name"  # default label: the field path


def test_all_actions_policy_builds_typed_models():
    pol = load_policy(DATA / "valid-all-actions.yaml").policy
    kinds = [type(r) for r in pol.routes[0].rules]
    assert kinds == [MaskRule, MaskRule, PseudonymizeRule, FpeRule, FpeRule, DropRule, RedactRule, KeepRule]
    fpe = pol.routes[0].rules[3]
    assert fpe.algorithm == "ff1" and fpe.chars == "0123456789"
    assert pol.routes[0].block[1].when.in_ == ["KP", "IR"]
    assert pol.routes[1].unlisted_fields == "drop"
    with pytest.raises(Exception):  # models are frozen
        pol.routes[0].rules[0].keep_first = 5  # type: ignore[misc]


def test_revision_and_provenance():
    lp = load_policy(DATA / "valid-all-actions.yaml")
    assert lp.revision == "r1" and lp.provenance == "unit-all-actions@r1"
    text = (DATA / "valid-file-keys.yaml").read_text()
    lp2 = load_policy_text(text, "x.yaml")
    assert lp2.revision == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert lp2.provenance == f"unit-file-keys@{lp2.revision}"
    # one changed byte, another revision
    assert load_policy_text(text + "\n", "x.yaml").revision != lp2.revision


# Every broken file, with the exact problems ``FILE:LINE: PATH: message`` (FILE is the path given).
BROKEN_CASES = {
    "unknown-key.yaml": [(14, "routes[0].rules[1].keep_frist", "unknown key")],
    "unknown-action.yaml": [
        (13, "routes[0].rules[0]", f"unknown action 'maks'; expected one of {ACTIONS}")],
    "bad-path.yaml": [(15, "routes[0].rules[1].field", "invalid field path: expected a key at character 9")],
    "missing-required.yaml": [(13, "routes[0].rules[0].key", "required key is missing")],
    "duplicate-yaml-key.yaml": [(14, "routes[0].sink", "duplicate key")],
    "yaml-syntax.yaml": [(14, "", "YAML syntax: expected ',' or '}', but got '{'")],
    "unknown-key-reference.yaml": [(14, "routes[0].rules[1].key", "unknown key 'fpe'; declare it under keys")],
    "duplicate-rule.yaml": [(15, "routes[0].rules[2].field", "field 'card' already has a rule (rules[0])")],
    "rule-inside-dropped.yaml": [
        (13, "routes[0].rules[0].field", "field 'address.city' lies inside 'address', which rules[1] already drops"),
        (16, "routes[0].rules[3].field", "field 'orders[2].card' lies inside 'orders[*]', which rules[2] already drops"),
    ],
    "wildcard-overlap.yaml": [
        (15, "routes[0].rules[2].field", "field '**.email' and 'after.payer.email' (rules[0]) can select the same value: "
                                         "one value would get two rules"),
        (16, "routes[0].rules[3].field", "field '*.phone' and '{before,after}.phone' (rules[1]) can select the same "
                                         "value: one value would get two rules"),
        (18, "routes[0].rules[5].field", "field '{before,after}.address.city' lies inside 'before.address', which "
                                         "rules[4] already drops"),
    ],
    "rule-set-problems.yaml": [
        (17, "routes[0].use[1]", "rule set 'contact' is used twice (use[0])"),
        (17, "routes[0].use[2]", "unknown rule set 'billing'; declare it under rule_sets (known: contact)"),
        (10, "rule_sets.contact[1].key", "unknown key 'nope'; declare it under keys"),
        (19, "routes[0].rules[0].field", "field 'after.email' already has a rule (rule_sets.contact[0], line 9)"),
    ],
    "rule-set-overlap.yaml": [
        (20, "routes[0].rules[1].field", "field '*.email' and '{before,after}.email' (rule_sets.contact[0], line 9) "
                                         "can select the same value: one value would get two rules"),
        (21, "routes[0].rules[2].field", "field 'after.address.city' lies inside '{before,after}.address', which "
                                         "rule_sets.contact[1], line 10 already drops"),
    ],
    "rule-set-uses-set.yaml": [
        (12, "rule_sets.nested[0]", "a rule set holds rules, not use: (sets cannot use sets: list both sets in the "
                                    "route's use:)"),
    ],
    "source-is-sink.yaml": [(7, "routes[0]", "source, sink and dead_letter must be three different topics")],
    "bad-alphabet.yaml": [
        (14, "routes[0].rules[1]",
         "unknown alphabet 'octal'; use one of ['HEX', 'alnum', 'alnum_lower', 'alpha', 'digits', 'hex', 'lower', 'upper'] "
         "or alphabet_chars"),
        (15, "routes[0].rules[2]", "alphabet_chars must hold 2..65536 unique characters"),
    ],
    "block-equals-and-in.yaml": [(14, "routes[0].block[0].when", "give exactly one of 'equals', 'in' or 'not_equals'")],
    "several-problems.yaml": [
        (3, "name", "String should match pattern '^[a-z0-9][a-z0-9._-]{0,62}$'"),
        (5, "keys.k", f"unknown source 'hsm'; expected one of {KEY_SOURCES}"),
        (13, "routes[0].rules[0].mask_char", "String should have at most 1 character"),
    ],
}


def expected_lines(name: str) -> list[str]:
    """The exact ``dpp check`` lines for a broken test file (used here and by test_cli_offline)."""
    f = str(BROKEN / name)
    return [format_problem(f, line, path, msg) for line, path, msg in BROKEN_CASES[name]]


def test_every_broken_file_has_a_case():
    assert sorted(p.name for p in BROKEN.glob("*.yaml")) == sorted(BROKEN_CASES)


@pytest.mark.parametrize("name", sorted(BROKEN_CASES))
def test_broken_policy_problems_are_exact(name):
    with pytest.raises(PolicyError) as ei:
        load_policy(BROKEN / name)
    assert str(ei.value).splitlines() == expected_lines(name)
    f = str(BROKEN / name)
    assert ei.value.problems == [(f, line, path, msg) for line, path, msg in BROKEN_CASES[name]]


def test_problem_format():
    assert format_problem("p.yaml", 3, "routes[0].name", "bad") == "p.yaml:3: routes[0].name: bad"
    assert format_problem("p.yaml", None, "", "bad") == "p.yaml:?: <root>: bad"


def test_yaml_syntax_error_renders_root_path():
    with pytest.raises(PolicyError) as ei:
        load_policy(BROKEN / "yaml-syntax.yaml")
    assert str(ei.value) == f"{BROKEN / 'yaml-syntax.yaml'}:14: <root>: YAML syntax: expected ',' or '}}', but got '{{'"


# Inline cases: small edits of a valid policy, problem located by line.
BASE = """\
version: 1
name: inline
keys:
  k: {source: env, name: K}
routes:
  - name: r
    source: in.topic
    sink: out.topic
    dead_letter: dlq.topic
    dead_letter_key: k
    rules:
      - {field: name, action: mask}
"""


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("version: 1", "version: 2", ("<policy>", 1, "version", "Input should be 1")),
        ("dead_letter_key: k", "dead_letter_key: nope",
         ("<policy>", 10, "routes[0].dead_letter_key", "unknown key 'nope'; declare it under keys")),
        ("    sink: out.topic\n", "", ("<policy>", 6, "routes[0].sink", "required key is missing")),
        ("name: inline", "name: inline\ncolour: red", ("<policy>", 3, "colour", "unknown key")),
        ("dead_letter: dlq.topic", "dead_letter: out.topic",
         ("<policy>", 6, "routes[0]", "source, sink and dead_letter must be three different topics")),
        ("      - {field: name, action: mask}\n",
         "      - {field: name, action: mask, name: n}\n      - {field: mobile, action: mask, name: n}\n",
         ("<policy>", 13, "routes[0].rules[1].name", "rule name 'n' is used twice (rules[0])")),
        ("    source: in.topic", "    source: in.topic\n    format: xml",
         ("<policy>", 8, "routes[0].format", "Input should be 'json', 'avro', 'protobuf' or 'jsonschema'")),
        # keys: deterministic rules only, placed where the key format says
        ("    rules:", "    key:\n      format: string\n      rules:\n        - {action: mask}\n    rules:",
         ("<policy>", 14, "routes[0].key.rules[0]",
          "unknown action 'mask'; expected one of 'keep', 'redact', 'pseudonymize', 'fpe', 'tokenize'")),
        ("    rules:", "    key:\n      format: string\n      rules:\n        - {field: id, action: pseudonymize, key: k}\n    rules:",
         ("<policy>", 14, "routes[0].key.rules[0].field", "a string key is one value: its rule has no field")),
        ("    rules:", "    key:\n      format: json\n      rules:\n        - {action: tokenize, key: k}\n    rules:",
         ("<policy>", 14, "routes[0].key.rules[0]", "a json key rule needs a field")),
        ("    rules:", "    key:\n      format: string\n      rules:\n        - {action: redact}\n    rules:",
         ("<policy>", 14, "routes[0].key.rules[0].value",
          "a key is redacted to a literal, not null (a null key changes partitioning and log compaction downstream)")),
        ("    rules:", "    key:\n      format: bytes\n      rules:\n        - {action: fpe, key: k}\n    rules:",
         ("<policy>", 14, "routes[0].key.rules[0].action",
          "fpe needs text: a bytes key is opaque (use format: string, or pseudonymize/tokenize)")),
        ("    rules:", "    key:\n      rules:\n        - {action: pseudonymize, key: nope}\n    rules:",
         ("<policy>", 13, "routes[0].key.rules[0].key", "unknown key 'nope'; declare it under keys")),
        ("    rules:", "    key: {format: yaml}\n    rules:",
         ("<policy>", 11, "routes[0].key.format",
          "Input should be 'string', 'json', 'avro', 'protobuf' or 'bytes'")),
        # headers: by name, no field
        ("    rules:", "    headers:\n      - {field: email, action: drop}\n    rules:",
         ("<policy>", 12, "routes[0].headers[0].field", "a header rule names a header (header: NAME or glob), not a field")),
        ("    rules:", "    headers:\n      - {header: a, action: drop}\n      - {header: a, action: keep}\n    rules:",
         ("<policy>", 13, "routes[0].headers[1].header", "header 'a' already has a rule (headers[0])")),
        ("      - {field: name, action: mask}", "      - {header: name, action: mask}",
         ("<policy>", 12, "routes[0].rules[0].header", "header names go in the route's headers: rules")),
        ("      - {field: name, action: mask}", "      - {action: mask}",
         ("<policy>", 12, "routes[0].rules[0]", "a value rule needs a field (or select: {tag: ...})")),
        ("    rules:", "    headers:\n      - {header: 'bad name', action: drop}\n    rules:",
         ("<policy>", 12, "routes[0].headers[0].header", "String should match pattern '^[\\x21-\\x7e]+$'")),
        ("      - {field: name, action: mask}", "      - {field: name, action: mask, keep_first: -1}",
         ("<policy>", 12, "routes[0].rules[0].keep_first", "Input should be greater than or equal to 0")),
        ("      - {field: name, action: mask}", "      - {field: name, action: pseudonymize, key: k, normalize: soundex}",
         ("<policy>", 12, "routes[0].rules[0].normalize", "Input should be 'none', 'string', 'email' or 'phone'")),
    ],
)
def test_inline_problems(old, new, expected):
    assert old in BASE
    with pytest.raises(PolicyError) as ei:
        load_policy_text(BASE.replace(old, new))
    assert ei.value.problems == [expected]


def test_allow_list_of_only_drops_is_refused():
    text = BASE.replace("    rules:\n      - {field: name, action: mask}\n",
                        "    unlisted_fields: drop\n    rules:\n      - {field: a, action: drop}\n")
    with pytest.raises(PolicyError) as ei:
        load_policy_text(text, "p.yaml")
    assert ei.value.problems == [
        ("p.yaml", 12, "routes[0].rules", "unlisted_fields: drop with no keep/transform rule would drop every field")]


def test_duplicate_route_name_and_consumer_group():
    route2 = """  - name: r
    source: in.topic
    sink: out2.topic
    dead_letter: dlq2.topic
    dead_letter_key: k
    rules: []
"""
    with pytest.raises(PolicyError) as ei:
        load_policy_text(BASE + route2, "p.yaml")
    assert ei.value.problems == [
        ("p.yaml", 13, "routes[1].name", "duplicate route name 'r'"),
        # same default group dpp.inline.r; the key is absent, so the route's line is given
        ("p.yaml", 13, "routes[1].consumer_group", "consumer group 'dpp.inline.r' is already used by routes[0]"),
    ]


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", ("<policy>", 1, "", "a policy must be a YAML mapping")),
        ("- a\n- b\n", ("<policy>", 1, "", "a policy must be a YAML mapping")),
        ("just text\n", ("<policy>", 1, "", "a policy must be a YAML mapping")),
        ("a: [1\n", ("<policy>", 2, "", "YAML syntax: expected ',' or ']', but got '<stream end>'")),
        ("a: 1\n---\nb: 2\n", ("<policy>", 2, "", "YAML syntax: but found another document")),
    ],
)
def test_not_a_policy_document(text, problem):
    with pytest.raises(PolicyError) as ei:
        load_policy_text(text)
    assert ei.value.problems == [problem]


EXAMPLE_TEXT = (ROOT / "policies" / "examples" / "customer-pii.yaml").read_text(encoding="utf-8")
BLOCK_END = "the likely cause is indentation: line this up with the other keys (or '- ' items) of the block it belongs to"

# Real indentation mistakes in the shipped example: (the line as written, as mistyped, the problem's
# line number, the message). The line named is the mistyped one.
INDENTATION_MISTAKES = {
    "rule outdented to the route's keys": (
        "      - {field: name, action: mask, keep_first: 1}", "    - {field: name, action: mask, keep_first: 1}", 25,
        f"YAML syntax: expected <block end>, but found a list item; {BLOCK_END}"),
    "block reason outdented to its list item": (
        "        reason: consent-withdrawn", "      reason: consent-withdrawn", 21,
        f"YAML syntax: expected <block end>, but found a key; {BLOCK_END}"),
    "block reason indented past its when": (
        "        reason: consent-withdrawn", "          reason: consent-withdrawn", 21,
        f"YAML syntax: expected <block end>, but found a key indented differently; {BLOCK_END}"),
    "route key one space short": (
        "    sink: analytics.customers", "   sink: analytics.customers", 13,
        f"YAML syntax: expected <block end>, but found a key indented differently; {BLOCK_END}"),
    "route key indented deeper": (
        "    sink: analytics.customers", "      sink: analytics.customers", 13,
        "YAML syntax: mapping values are not allowed here; the likely cause is indentation: this key is indented "
        "deeper than the key above it (or an unquoted value holds ': ', quote it)"),
    "route key indented with a tab": (
        "    sink: analytics.customers", "\tsink: analytics.customers", 13,
        "YAML syntax: found character '\\t' that cannot start any token; YAML indents with spaces: replace the tab"),
    "a key without ':' under a route": (
        "    sink: analytics.customers", "    sink analytics.customers", 13,
        "YAML syntax: could not find expected ':'; the likely cause is indentation (a line continuing the one "
        "above must be indented deeper) or a key without ':'"),
}


@pytest.mark.parametrize("name", sorted(INDENTATION_MISTAKES))
def test_indentation_mistake_names_the_line_and_the_likely_cause(name):
    line, typo, lineno, message = INDENTATION_MISTAKES[name]
    assert EXAMPLE_TEXT.count(line + "\n") == 1
    text = EXAMPLE_TEXT.replace(line + "\n", typo + "\n")
    assert text.splitlines()[lineno - 1] == typo
    with pytest.raises(PolicyError) as ei:
        load_policy_text(text, "p.yaml")
    assert ei.value.problems == [("p.yaml", lineno, "", message)]


# Mistakes that are still valid YAML: a route's key at the top level, a rule's key among the route's
# (the line as written, as mistyped, the problem's path, what the message must say)
VALID_YAML_INDENTATION_MISTAKES = {
    "rules: moved to column 0": ("    rules:", "rules:", "rules", "'rules' is a route key: the likely cause is indentation"),
    "a rule's keys under the route, not in a list item": (
        "    rules:", "    field: name\n    action: mask\n    rules:", "routes[0].field", "'field' is a rule key"),
}


@pytest.mark.parametrize("name", sorted(VALID_YAML_INDENTATION_MISTAKES))
def test_a_dedent_that_is_valid_yaml_gets_the_indentation_hint(name):
    line, typo, path, says = VALID_YAML_INDENTATION_MISTAKES[name]
    assert EXAMPLE_TEXT.count(line + "\n") == 1
    with pytest.raises(PolicyError) as ei:
        load_policy_text(EXAMPLE_TEXT.replace(line + "\n", typo + "\n"), "p.yaml")
    hits = [p for p in ei.value.problems if p[2] == path]
    assert hits and says in hits[0][3], ei.value.problems


def test_an_unknown_top_level_key_that_is_no_route_key_gets_no_hint():
    with pytest.raises(PolicyError) as ei:
        load_policy_text(EXAMPLE_TEXT + "colour: blue\n", "p.yaml")
    assert [p[3] for p in ei.value.problems if p[2] == "colour"] == ["unknown key"]


def test_other_yaml_errors_get_no_indentation_hint():
    with pytest.raises(PolicyError) as ei:
        load_policy_text("a: {b: 1\n", "p.yaml")
    assert "indentation" not in ei.value.problems[0][3]


def test_duplicate_key_in_flow_mapping_and_nested():
    text = BASE.replace("{field: name, action: mask}", "{field: name, action: mask, field: other}")
    with pytest.raises(PolicyError) as ei:
        load_policy_text(text, "p.yaml")
    assert ei.value.problems == [("p.yaml", 12, "routes[0].rules[0].field", "duplicate key")]
    text = BASE.replace("  k: {source: env, name: K}\n", "  k: {source: env, name: K}\n  k: {source: env, name: K2}\n")
    with pytest.raises(PolicyError) as ei:
        load_policy_text(text, "p.yaml")
    assert ei.value.problems == [("p.yaml", 5, "keys.k", "duplicate key")]


def test_unreadable_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as ei:
        load_policy(missing)
    assert ei.value.problems == [(str(missing), None, "", "cannot read policy file: FileNotFoundError")]
    assert str(ei.value) == f"{missing}:?: <root>: cannot read policy file: FileNotFoundError"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(BASE.replace("inline", "inl\xe9ne").encode("latin-1"))
    with pytest.raises(PolicyError) as ei:
        load_policy(latin)
    assert ei.value.problems == [(str(latin), None, "", "cannot read policy file: UnicodeDecodeError")]


def test_loader_does_not_touch_keys(monkeypatch):
    """Loading validates structure only; key variables are read by compile_policy."""
    monkeypatch.delenv("K", raising=False)
    assert load_policy_text(BASE).policy.keys["k"].name == "K"
