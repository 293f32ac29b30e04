"""Named rule sets (``rule_sets:`` + a route's ``use:``): expanded at load into each route's
rules (the sets' rules in ``use:`` order, then the route's own), with ``FILE:LINE: PATH`` errors
for an unknown set, a set used twice, a set rule overlapping a route rule (naming both lines),
a set that would use a set, and keys checked like route rules."""
from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.errors import PolicyError
from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy_text, policy_warnings

KEYS = {"K": "11" * 32, "DLQ": "22" * 32}

BASE = """\
version: 1
name: sets
keys:
  k: {source: env, name: K}
  dlq: {source: env, name: DLQ}
rule_sets:
  contact:
    - {field: email, action: pseudonymize, key: k}
    - {field: phone, action: mask, keep_last: 4}
  billing:
    - {field: card, action: fpe, key: k}
routes:
  - name: a
    source: a.in
    sink: a.out
    dead_letter: a.dlq
    dead_letter_key: dlq
    use: [contact, billing]
    rules:
      - {field: name, action: mask, keep_first: 1}
  - name: b
    source: b.in
    sink: b.out
    dead_letter: b.dlq
    dead_letter_key: dlq
    unlisted_fields: drop
    use: [contact]
"""


def test_sets_expand_into_each_route_sets_first():
    lp = load_policy_text(BASE, "sets.yaml")
    a, b = lp.policy.routes
    assert [r.field for r in a.rules] == ["email", "phone", "card", "name"]
    assert [r.field for r in b.rules] == ["email", "phone"]
    compiled = compile_policy(lp, environ=KEYS)
    rec = orjson.dumps({"email": "a@b.c", "phone": "13900001111", "card": "4111111111111111", "name": "Li", "x": 1})
    out_a = orjson.loads(compiled.route("a").process(rec).value)
    out_b = orjson.loads(compiled.route("b").process(rec).value)
    assert out_a["phone"] == out_b["phone"] == "*******1111" and out_a["name"] == "L*" and out_a["x"] == 1
    assert out_a["card"] != "4111111111111111" and len(out_a["card"]) == 16
    assert set(out_b) == {"email", "phone"}  # the allow-list counts set rules as listed
    assert compiled.route("a").rule_labels == ["email", "phone", "card", "name"]


def test_a_policy_without_sets_is_unchanged():
    text = BASE.split("rule_sets:")[0] + "routes:" + BASE.split("routes:")[1].replace("    use: [contact, billing]\n", "") \
        .replace("    use: [contact]\n", "    rules:\n      - {field: x, action: keep}\n")
    lp = load_policy_text(text, "plain.yaml")
    assert [r.field for r in lp.policy.routes[0].rules] == ["name"]


@pytest.mark.parametrize("old,new,expected", [
    ("    use: [contact, billing]", "    use: [contact, billing, contact]",
     [(18, "routes[0].use[2]", "rule set 'contact' is used twice (use[0])")]),
    ("    use: [contact, billing]", "    use: [contcat, billing]",
     [(18, "routes[0].use[0]", "unknown rule set 'contcat'; declare it under rule_sets (known: contact, billing)")]),
    ("    - {field: card, action: fpe, key: k}", "    - {field: card, action: fpe, key: fpe}",
     [(11, "rule_sets.billing[0].key", "unknown key 'fpe'; declare it under keys")]),
    ("      - {field: name, action: mask, keep_first: 1}", "      - {field: phone, action: redact}",
     [(20, "routes[0].rules[0].name", "rule name 'phone' is used twice (rule_sets.contact[1], line 9)"),
      (20, "routes[0].rules[0].field", "field 'phone' already has a rule (rule_sets.contact[1], line 9)")]),
    ("      - {field: name, action: mask, keep_first: 1}", "      - {field: '*', action: redact}",
     [(20, "routes[0].rules[0].field",
       "field '*' and 'email' (rule_sets.contact[0], line 8) can select the same value: one value would get two rules"),
      (20, "routes[0].rules[0].field",
       "field '*' and 'phone' (rule_sets.contact[1], line 9) can select the same value: one value would get two rules"),
      (20, "routes[0].rules[0].field",
       "field '*' and 'card' (rule_sets.billing[0], line 11) can select the same value: one value would get two rules")]),
    ("    - {field: phone, action: mask, keep_last: 4}", "    - {field: email.domain, action: mask}",
     [(9, "rule_sets.contact[1].field",
       "field 'email.domain' lies inside 'email', which rule_sets.contact[0], line 8, route 'a' already pseudonymizes"),
      (9, "rule_sets.contact[1].field",
       "field 'email.domain' lies inside 'email', which rule_sets.contact[0], line 8, route 'b' already pseudonymizes")]),
    ("    - {field: card, action: fpe, key: k}", "    - {field: card, action: fpe, key: k, name: n}\n    - {field: iban, action: mask, name: n}",
     [(12, "rule_sets.billing[1].name", "rule name 'n' is used twice (rule_sets.billing[0], line 11, route 'a')")]),
    ("    - {field: card, action: fpe, key: k}", "    - {header: x-card, action: drop}",
     [(11, "rule_sets.billing[0].header", "header names go in the route's headers: rules")]),
    ("    - {field: card, action: fpe, key: k}", "    - {use: [contact]}",
     [(11, "rule_sets.billing[0]", "a rule set holds rules, not use: (sets cannot use sets: list both sets in the route's use:)")]),
    ("  billing:\n    - {field: card, action: fpe, key: k}\n", "  billing: []\n",
     [(10, "rule_sets.billing", "List should have at least 1 item after validation, not 0")]),
    ("rule_sets:\n  contact:", "rule_sets:\n  Contact!:",
     [(7, "rule_sets.Contact!.[key]", "String should match pattern '^[a-z0-9][a-z0-9._-]{0,62}$'")]),
])
def test_rule_set_problems(old, new, expected):
    assert old in BASE
    with pytest.raises(PolicyError) as ei:
        load_policy_text(BASE.replace(old, new), "sets.yaml")
    assert ei.value.problems == [("sets.yaml", line, path, msg) for line, path, msg in expected]


def test_an_unused_set_is_a_warning_and_dpp_check_prints_it(tmp_path):
    text = BASE.replace("    use: [contact, billing]", "    use: [contact]")
    assert [w for w in policy_warnings(load_policy_text(text, "sets.yaml").policy) if w[0][0] == "rule_sets"] == [
        (("rule_sets", "billing"), "rule set 'billing' is used by no route")]
    f = tmp_path / "sets.yaml"
    f.write_text(text)
    res = CliRunner().invoke(main, ["check", str(f)])
    assert res.exit_code == 0 and f"{f}:10: rule_sets.billing: warning: rule set 'billing' is used by no route" in res.stderr
