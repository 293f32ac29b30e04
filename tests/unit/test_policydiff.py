"""``dpp diff`` (proxy/policydiff.py): what a policy change does. Tables of edits to a small
policy (rule removed, changed, added; block rule added; route added/removed; unlisted fields;
key versions) with the change, counts on a fixed sample and the warnings each must give; the
issue's must-show on the shipped example with generated records; the CLI's formats and exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.policy.loader import load_policy_text
from proxy.policydiff import CLEAR, diff_policies, differing_paths, format_markdown, format_text
from proxy.policy.paths import WILDCARD

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policies" / "examples" / "customer-pii.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")

BASE = """\
version: 1
name: shop
keys:
  pseudonym: {source: env, name: K_PSEUDONYM}
  fpe: {source: env, name: K_FPE}
  dl: {source: env, name: K_DL}
routes:
  - name: orders
    source: shop.orders
    sink: analytics.orders
    dead_letter: shop.orders.dlq
    dead_letter_key: dl
    unlisted_fields: keep
    block:
      - when: {field: consent, equals: false}
        reason: consent-withdrawn
    rules:
      - {field: email, action: pseudonymize, key: pseudonym, normalize: email}
      - {field: card, action: fpe, key: fpe}
      - {field: phone, action: mask, keep_first: 3, keep_last: 4}
      - {field: street, action: drop}
"""

# 6 records: 4 consenting, 1 not (blocked), 1 consenting without a card; one is a minor.
RECORDS = [
    {"id": 1, "email": "a@example.com", "card": "4111111111111111", "phone": "13912345678", "street": "1 Main St", "consent": True},
    {"id": 2, "email": "b@example.com", "card": "5500005555555559", "phone": "13800001111", "street": "2 Main St", "consent": True},
    {"id": 3, "email": "c@example.com", "card": "4012888888881881", "phone": "13700002222", "street": "3 Main St", "consent": True, "minor": True},
    {"id": 4, "email": "d@example.com", "card": "4222222222222", "phone": "13600003333", "street": "4 Main St", "consent": False},
    {"id": 5, "email": "e@example.com", "phone": "13500004444", "street": "5 Main St", "consent": True},
    {"id": 6, "email": "f@example.com", "card": "378282246310005", "phone": "13400005555", "street": "6 Main St", "consent": True},
]
SAMPLE = [orjson.dumps(r) for r in RECORDS]


def loaded(text: str, name: str = "p.yaml"):
    return load_policy_text(text, name)


def edit(*pairs: tuple[str, str]) -> str:
    text = BASE
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def diff(new_text: str, old_text: str = BASE, sample=SAMPLE, **kw):
    return diff_policies(loaded(old_text, "old.yaml"), loaded(new_text, "new.yaml"), sample, **kw)


PHONE = "      - {field: phone, action: mask, keep_first: 3, keep_last: 4}\n"
EMAIL = "      - {field: email, action: pseudonymize, key: pseudonym, normalize: email}\n"
CARD = "      - {field: card, action: fpe, key: fpe}\n"
STREET = "      - {field: street, action: drop}\n"

DETECTED = {"card", "phone"}  # fields of RECORDS whose values in clear a detector validates (street: none)

# edit, then (target, change, sample records whose output changes there, leak, breaks joins)
FIELD_CASES = {
    "rule removed: leaves in clear": (
        [(PHONE, "")], [("phone", "clear", 5, True, False)]),
    "mask changed: named with counts": (
        [(PHONE, PHONE.replace("keep_last: 4", "keep_last: 2"))], [("phone", "changed", 5, False, False)]),
    "pseudonym length changed: breaks joins": (
        [(EMAIL, EMAIL.replace("}", ", length: 16}"))], [("email", "changed", 5, False, True)]),
    "fpe rule removed: clear and breaks joins": (
        [(CARD, "")], [("card", "clear", 4, True, True)]),
    "fpe replaced by keep": (
        [(CARD, "      - {field: card, action: keep}\n")], [("card", "clear", 4, True, True)]),
    "drop rule removed: newly kept in clear": (
        [(STREET, "")], [("street", "kept", 5, True, False)]),
    "mask becomes drop": (
        [(PHONE, "      - {field: phone, action: drop}\n")], [("phone", "dropped", 5, False, False)]),
    "new rule on an unlisted field": (
        [(STREET, STREET + "      - {field: id, action: redact}\n")], [("id", "protected", 5, False, False)]),
    "only the metric name changes": (
        [(PHONE, PHONE.replace("}", ", name: phone-mask}"))], []),
    "rule order changes": (
        [(EMAIL + CARD, CARD + EMAIL)], []),
}


@pytest.mark.parametrize("name", sorted(FIELD_CASES))
def test_field_changes(name):
    pairs, want = FIELD_CASES[name]
    d = diff(edit(*pairs))
    (rd,) = d.routes
    got = [(fc.target, fc.change, fc.records, fc.leak, fc.breaks_joins) for fc in rd.fields]
    assert got == want
    found = {lk.path for lk in rd.sample.leaks}
    assert found == {w[0] for w in want if w[3] and w[0] in DETECTED}
    kinds = sorted(w.kind for w in d.warnings)
    assert kinds == sorted([CLEAR] * sum(w[3] for w in want) + ["joins"] * sum(w[4] for w in want) + [CLEAR] * len(found))
    assert d.exit_code() == int(bool(kinds))
    assert d.exit_code("clear") == int(any(w[3] for w in want))
    assert d.exit_code("never") == 0
    assert rd.status == ("changed" if want else "unchanged")


def test_unchanged_policy_is_an_empty_diff():
    d = diff(BASE)
    assert d.empty and not d.warnings and d.exit_code() == 0
    assert d.routes[0].status == "unchanged" and d.routes[0].sample.changed == 0
    assert format_text(d).splitlines()[-1] == "no change"


def test_block_rule_added_counts_the_records_it_blocks():
    block = "      - when: {field: minor, equals: true}\n        reason: minor\n"
    d = diff(edit(("        reason: consent-withdrawn\n", "        reason: consent-withdrawn\n" + block)))
    (rd,) = d.routes
    assert rd.blocks == [["added", "minor when minor equals true"]]
    assert rd.sample.moves == [["sink", "blocked minor", 1]]
    assert rd.sample.old == {"sink": 5, "blocked consent-withdrawn": 1}
    assert rd.sample.new == {"sink": 4, "blocked consent-withdrawn": 1, "blocked minor": 1}
    assert rd.sample.changed == 0 and not d.warnings and d.exit_code() == 0
    assert "1 record(s) move: sink -> blocked minor" in format_text(d)


def test_block_rule_removed_lets_records_through():
    d = diff(edit(("    block:\n      - when: {field: consent, equals: false}\n        reason: consent-withdrawn\n", "")))
    (rd,) = d.routes
    assert rd.blocks == [["removed", "consent-withdrawn when consent equals false"]]
    assert rd.sample.moves == [["blocked consent-withdrawn", "sink", 1]]


def test_a_record_that_now_dead_letters_is_counted_by_reason():
    d = diff(edit((STREET, STREET + "      - {field: consent, action: fpe, key: fpe}\n")))  # a boolean: unsupported
    (rd,) = d.routes
    assert rd.sample.moves == [["sink", "dead-lettered unsupported-type", 5]]
    assert rd.sample.new == {"dead-lettered unsupported-type": 5, "blocked consent-withdrawn": 1}


ROUTE2 = """\
  - name: refunds
    source: shop.refunds
    sink: analytics.refunds
    dead_letter: shop.refunds.dlq
    dead_letter_key: dl
"""


def test_route_added_reports_what_it_lets_out_in_clear():
    d = diff(BASE + ROUTE2)
    assert [(r.route, r.status) for r in d.routes] == [("orders", "unchanged"), ("refunds", "added")]
    added = d.routes[1]
    assert added.sample.new == {"sink": 6}
    leaked = {(lk.path, lk.detector) for lk in added.sample.leaks}
    assert ("card", "bank_card") in leaked and ("email", "email") in leaked
    assert all(w.kind == CLEAR and w.route == "refunds" for w in d.warnings) and d.exit_code() == 1


def test_route_removed():
    d = diff(BASE, BASE + ROUTE2)
    assert [(r.route, r.status) for r in d.routes] == [("orders", "unchanged"), ("refunds", "removed")]
    assert not d.warnings and d.exit_code() == 0 and not d.empty


def test_unlisted_fields_keep_is_a_leak_warning():
    d = diff(BASE, edit(("unlisted_fields: keep", "unlisted_fields: drop")))
    (rd,) = d.routes
    assert ["unlisted_fields", "drop", "keep"] in rd.settings
    assert any(w.kind == CLEAR and "unlisted_fields drop -> keep" in w.text for w in d.warnings)


def test_key_version_change_breaks_deterministic_rules():
    new = edit(("fpe: {source: env, name: K_FPE}", "fpe: {source: env, versions: {1: K_FPE, 2: K_FPE2}}"))
    d = diff(new)
    assert [(k.name, k.change) for k in d.keys] == [("fpe", "version")]
    (rd,) = d.routes
    assert [(fc.target, fc.change, fc.records, fc.breaks_joins) for fc in rd.fields] == [("card", "changed", 4, True)]
    assert [w.kind for w in d.warnings] == ["joins"]
    assert d.exit_code() == 1 and d.exit_code("clear") == 0


@pytest.mark.parametrize("old_key,new_key,change", [
    ("fpe: {source: env, name: K_FPE}", "fpe: {source: file, path: /keys/fpe}", "source"),
    ("fpe: {source: env, name: K_FPE}", "fpe: {source: env, versions: {1: K_FPE, 2: K2}, current: 1}", "version"),
    ("  dl: {source: env, name: K_DL}\n", "  dl: {source: env, name: K_DL}\n  extra: {source: env, name: K_X}\n", "added"),
])
def test_key_changes(old_key, new_key, change):
    d = diff(edit((old_key, new_key)))
    assert [k.change for k in d.keys] == [change]
    assert "K_FPE" not in format_text(d) and "/keys/fpe" not in format_text(d)  # sources are not shown
    if change != "version":
        assert not d.routes[0].fields and not d.warnings  # same test key material: same output


PARTS = "    key: {format: string, rules: [{action: tokenize, key: fpe}]}\n    headers: [{header: x-user, action: redact}]\n"


@pytest.mark.parametrize("new_parts,want", [
    ("    key: {format: string}\n    headers: [{header: x-user, action: redact}]\n", [("@key", "clear", True, True)]),
    ("    key: {format: string, rules: [{action: tokenize, key: fpe}]}\n", [("@headers.x-user", "clear", True, False)]),
    ("    key: {format: string, rules: [{action: tokenize, key: fpe}]}\n    headers: [{header: x-user, action: redact}]\n"
     "    unlisted_headers: drop\n", []),
])
def test_key_and_header_rules(new_parts, want):
    anchor = "    unlisted_fields: keep\n"
    old, new = edit((anchor, anchor + PARTS)), edit((anchor, anchor + new_parts))
    d = diff(new, old)
    (rd,) = d.routes
    assert [(fc.target, fc.change, fc.leak, fc.breaks_joins) for fc in rd.fields] == want
    assert all(fc.records is None for fc in rd.fields)  # the sample holds values only


def test_renamed_policy_changes_domain_less_pseudonyms():
    d = diff(BASE.replace("name: shop", "name: shop2"))
    assert d.policy == [["name", "shop", "shop2"]]
    (rd,) = d.routes
    assert {fc.target for fc in rd.fields if fc.breaks_joins} == {"email", "card"}
    assert all("same rule, other output" in fc.new for fc in rd.fields)


def test_without_a_sample_rules_are_still_compared():
    d = diff(edit((PHONE, "")), sample=None)
    (rd,) = d.routes
    assert rd.sample is None and [(fc.target, fc.change, fc.records) for fc in rd.fields] == [("phone", "clear", None)]
    assert d.exit_code() == 1


def test_reports_hold_no_record_value():
    d = diff(edit((PHONE, ""), (CARD, "")))
    for text in (format_text(d), format_markdown(d), json.dumps(d.to_dict())):
        for r in RECORDS:
            for v in r.values():
                if isinstance(v, str) and len(v) > 6:
                    assert v not in text


@pytest.mark.parametrize("a,b,want", [
    ({"x": 1}, {"x": 1}, set()),
    ({"x": 1}, {"x": 2}, {("x",)}),
    ({"x": 1}, {}, {("x",)}),
    ({"o": [{"c": "1"}, {"c": "2"}]}, {"o": [{"c": "1"}, {"c": "3"}]}, {("o", WILDCARD, "c")}),
    ({"x": True}, {"x": 1}, {("x",)}),
    ({"x": {}}, {"x": {"y": 1}}, {("x",), ("x", "y")}),
])
def test_differing_paths(a, b, want):
    assert differing_paths(a, b) == want


# ---------------------------------------------------------------- the must-show, on the example
NOTE_RULE = '      - {field: note, action: redact, value: "[redacted]"}\n'
MOBILE_RULE = "{field: mobile, action: mask, keep_first: 3, keep_last: 4}"


@pytest.fixture(scope="module")
def example_sample(customer_sample) -> Path:
    return customer_sample


@pytest.fixture()
def edited_example(tmp_path) -> Path:
    assert NOTE_RULE in EXAMPLE_TEXT and MOBILE_RULE in EXAMPLE_TEXT
    p = tmp_path / "customer-pii.yaml"
    p.write_text(EXAMPLE_TEXT.replace(NOTE_RULE, "").replace(MOBILE_RULE, MOBILE_RULE.replace("keep_last: 4", "keep_last: 2")),
                 encoding="utf-8")
    return p


def run(*args):
    return CliRunner().invoke(main, ["diff", *map(str, args)])


def test_example_one_rule_removed_one_changed(example_sample, edited_example):
    res = run(EXAMPLE, edited_example, "--sample", example_sample, "--format", "json")
    assert res.exit_code == 1, res.output
    rep = json.loads(res.output)
    (route,) = rep["routes"]
    fields = {f["target"]: f for f in route["fields"]}
    assert set(fields) == {"note", "mobile"}
    sink = route["sample"]["new"]["sink"]
    assert 0 < sink < 200 and route["sample"]["old"] == route["sample"]["new"]
    assert fields["note"]["change"] == "clear" and fields["note"]["leak"] and fields["note"]["records"] == sink
    assert fields["mobile"]["change"] == "changed" and not fields["mobile"]["leak"] and fields["mobile"]["records"] == sink
    clear = [w for w in rep["warnings"] if w["kind"] == "clear"]
    assert any(w["text"].startswith("note becomes clear") for w in clear)
    assert any(w["text"].startswith("note: the detectors find") for w in clear)
    assert not any(w["text"].startswith("mobile") for w in rep["warnings"])
    assert all(w["line"].startswith("WARNING: PERSONAL DATA LEAVES IN CLEAR") for w in clear)


def test_example_text_and_markdown(example_sample, edited_example):
    text = run(EXAMPLE, edited_example, "--sample", example_sample)
    assert text.exit_code == 1
    lines = text.output.splitlines()
    assert any(line.strip().startswith("note: becomes clear: redact") for line in lines)
    assert any(line.strip().startswith("mobile: protected differently: mask keep_first=3 keep_last=4 -> mask keep_first=3 "
                                       "keep_last=2") for line in lines)
    assert any(line.startswith("WARNING: PERSONAL DATA LEAVES IN CLEAR: route crm-to-analytics: note") for line in lines)
    md = run(EXAMPLE, edited_example, "--sample", example_sample, "--format", "markdown", "--fail-on", "never")
    assert md.exit_code == 0
    assert md.output.startswith("### dpp diff:")
    assert "| `note` | becomes clear |" in md.output and "| `mobile` | protected differently |" in md.output
    assert "> - **WARNING: PERSONAL DATA LEAVES IN CLEAR" in md.output


def test_example_against_itself_exits_0(example_sample):
    res = run(EXAMPLE, EXAMPLE, "--sample", example_sample)
    assert res.exit_code == 0 and res.output.splitlines()[-1] == "no change"


def test_invalid_policy_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\n", encoding="utf-8")
    res = run(EXAMPLE, bad)
    assert res.exit_code == 2 and "bad.yaml" in res.output


def test_unknown_route_is_a_usage_error():
    res = run(EXAMPLE, EXAMPLE, "--route", "nope")
    assert res.exit_code == 2 and "no route 'nope'" in res.output


SHIPPED = sorted(p for p in (ROOT / "policies").rglob("*.yaml") if not p.name.endswith(".tests.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_policy_against_itself_is_no_change(path, example_sample):
    """Also crypto-shredding routes, whose random subject keys are shared by both sides."""
    res = run(path, path, "--sample", example_sample, "--format", "json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["empty"] and not rep["warnings"]


CDC = ROOT / "policies" / "examples" / "debezium-cdc.yaml"
CDC_ROW = {"name": "Li Lei", "email": "li@example.com", "mobile": "13912345678", "payer": {"name": "Han Meimei",
                                                                                          "card_number": "4111111111111111"}}


@pytest.mark.parametrize("old_rule, new_rule, target, change, records", [
    ('{field: "{before,after}.mobile", action: mask, keep_first: 3', '{field: "{before,after}.mobile", action: mask, keep_first: 2',
     "{before,after}.mobile", "changed", 3),
    ('- {field: "**.card_number", action: fpe, key: fpe, alphabet: digits}', "", "**.card_number", "clear", 3),
    ('{field: "*.payer.name", action: mask, keep_first: 1}', '{field: "*.payer.name", action: mask, keep_first: 2}',
     "*.payer.name", "changed", 3),
])
def test_wildcard_rules_are_counted_on_the_paths_they_select(old_rule, new_rule, target, change, records):
    """A rule written with {a,b}, * or ** counts the sample records whose output changes on any
    path it selects (before.mobile and after.mobile for {before,after}.mobile)."""
    text = CDC.read_text(encoding="utf-8")
    assert old_rule in text
    sample = [orjson.dumps({"before": CDC_ROW, "after": CDC_ROW, "op": "u", "ts_ms": 1}) for _ in range(3)]
    rep = diff_policies(loaded(text, "old.yaml"), loaded(text.replace(old_rule, new_rule), "new.yaml"), sample)
    (route,) = rep.routes
    fields = {f.target: f for f in route.fields}
    assert fields[target].change == change and fields[target].records == records


@pytest.mark.parametrize("new_phone, weaker", [
    ("keep_first: 3, keep_last: 7", True),     # 10 of 11 digits in clear
    ("keep_first: 4, keep_last: 4", True),
    ("keep_first: 3, keep_last: 2", False),    # stronger
    ("keep_first: 2, keep_last: 5", False),    # as many characters, elsewhere
])
def test_a_weaker_mask_is_a_warning(new_phone, weaker):
    d = diff(edit((PHONE, PHONE.replace("keep_first: 3, keep_last: 4", new_phone))))
    kinds = [w.kind for w in d.warnings]
    assert ("weaker" in kinds) == weaker, d.warnings
    assert d.exit_code() == int(weaker) and d.exit_code("clear") == 0
    if weaker:
        assert any(w.line().startswith("WARNING: PROTECTION WEAKENED: route orders: phone leaves more") for w in d.warnings)
