"""Object wildcards and alternations in field paths (``*``, ``**``, ``{a,b}``): the parser's good
and bad spellings, what each selects on records (a Debezium CDC envelope among them), the
load-time overlap algebra, and routes with wildcard rules (fail closed on wrong shapes, the
allow-list, one rule for ``before`` and ``after``)."""
from __future__ import annotations

import copy

import orjson
import pytest

from policykit import KEYS, policy_text
from proxy.errors import PolicyError
from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.paths import (ANY_KEY, DEEP, WILDCARD, KeyChoice, PathShapeError, PathSyntaxError, compile_visit,
                                expand_choices, format_path, has_wildcards, overlap, parse_path)

W = WILDCARD

GOOD = [
    ("*", (ANY_KEY,)),
    ("*.payer.name", (ANY_KEY, "payer", "name")),
    ("a.*", ("a", ANY_KEY)),
    ("a.*.b", ("a", ANY_KEY, "b")),
    ("*[*]", (ANY_KEY, W)),
    ("**.email", (DEEP, "email")),
    ("a.**.email", ("a", DEEP, "email")),
    ("**.orders[*].card", (DEEP, "orders", W, "card")),
    ("**.{email,phone}", (DEEP, KeyChoice(("email", "phone")))),
    ("{before,after}.payer.phone", (KeyChoice(("before", "after")), "payer", "phone")),
    ("{a,b,c}", (KeyChoice(("a", "b", "c")),)),
    ("orders[*].{card,iban}", ("orders", W, KeyChoice(("card", "iban")))),
    ('{"a.b",c}.x', (KeyChoice(("a.b", "c")), "x")),
    ('{"*",x}', (KeyChoice(("*", "x")),)),
    ('"*".x', ("*", "x")),                      # a member literally named *
    ('"**"', ("**",)),
    ('"a*b"', ("a*b",)),
    ('"{a,b}"', ("{a,b}",)),
    ("a,b", ("a,b",)),                           # a comma outside braces is part of the key
]


@pytest.mark.parametrize("text,segs", GOOD)
def test_parse_wildcards(text, segs):
    assert parse_path(text) == segs
    assert parse_path(format_path(segs)) == segs
    assert format_path(parse_path(text)) == text


def test_a_choice_is_not_a_plain_key_or_tuple():
    assert KeyChoice(("a", "b")) != ("a", "b")
    assert parse_path("{a,b}") != parse_path('"a,b"')
    assert has_wildcards(parse_path("{a,b}.c")) and has_wildcards(parse_path("**.c"))
    assert not has_wildcards(parse_path('orders[*]."*"'))


BAD = [
    ("a*", "'*' inside a key at character 2: a wildcard is a whole key (* or **); quote the key for a literal '*'"),
    ("a.b*c", "'*' inside a key at character 4: a wildcard is a whole key (* or **); quote the key for a literal '*'"),
    ("***", "'*' inside a key at character 1: a wildcard is a whole key (* or **); quote the key for a literal '*'"),
    ("**", "'**' must be followed by a key (**.email)"),
    ("a.**", "'**' must be followed by a key (**.email)"),
    ("**.**.a", "'**' must be followed by a key, at character 4"),
    ("**.*", "'**' must be followed by a key, at character 4"),
    ("**[*]", "'**' must be followed by a key, at character 3"),
    ("{a,b", "unclosed '{' at character 1"),
    ("{a,", "unclosed '{' at character 1"),
    ("{a}", "{...} at character 1 lists one key: write it without braces"),
    ("{}", "empty alternative in {...} at character 2"),
    ("{a,,b}", "empty alternative in {...} at character 4"),
    ("{a,a}", "'a' is listed twice in {...} at character 1"),
    ("{a,*}", "a wildcard inside {...} at character 4: list keys"),
    ("{a.b,c}", "unexpected '.' in {...} at character 3"),
    ("{a[0],b}", "unexpected '[' in {...} at character 3"),
    ("a{b,c}", "unexpected '{' at character 2"),
    ("a}", "unexpected '}' at character 2"),
    ("{a,b}{c,d}", "unexpected '{' at character 6"),
    ("{a,b}.{c,d}.{e,f}.{g,h}.{i,j}.{k,l}.{m,n}", "the alternations spell 128 paths (at most 64)"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_wildcard_paths_name_the_position(text, message):
    with pytest.raises(PathSyntaxError) as ei:
        parse_path(text)
    assert str(ei.value) == message


def test_expand_choices_in_written_order():
    assert expand_choices(parse_path("{b,a}.x.{c,d}")) == [("b", "x", "c"), ("b", "x", "d"), ("a", "x", "c"),
                                                           ("a", "x", "d")]
    assert expand_choices(parse_path("a[*].b")) == [("a", W, "b")]


# ---------------------------------------------------------------------------------- matching
CDC = {  # a Debezium change event (update): the row before and after, operation, timestamp
    "before": {"id": 7, "email": "old@example.com", "payer": {"name": "Li Na", "phone": "13900001111"}},
    "after": {"id": 7, "email": "new@example.com", "payer": {"name": "Li Na", "phone": "13900002222"},
              "orders": [{"email": "in-array@example.com"}]},
    "source": {"db": "crm", "table": "customers"},
    "op": "u",
    "ts_ms": 1700000000000,
}

SELECTS = [
    ("{before,after}.email", ["old@example.com", "new@example.com"]),
    ("{after,before}.email", ["new@example.com", "old@example.com"]),   # written order
    ("{before,after}.payer.phone", ["13900001111", "13900002222"]),
    ("*.payer.name", ["Li Na", "Li Na"]),          # op (a string) and ts_ms (a number) are not objects: skipped
    ("*.email", ["old@example.com", "new@example.com"]),
    ("**.email", ["old@example.com", "new@example.com"]),   # not inside after.orders: ** walks objects only
    ("**.orders[*].email", ["in-array@example.com"]),
    ("**.phone", ["13900001111", "13900002222"]),
    ("**.op", ["u"]),                              # zero levels: the top-level key
    ("after.**.name", ["Li Na"]),
    ("source.*", ["crm", "customers"]),
    ("*", [CDC["before"], CDC["after"], CDC["source"], "u", 1700000000000]),
    ("{before,after,missing}.id", [7, 7]),
    ("*.nothing", []),
    ("**.nothing", []),
    ("{x,y}.email", []),
]


@pytest.mark.parametrize("path,expected", SELECTS)
def test_wildcards_select_on_a_cdc_event(path, expected):
    rec = copy.deepcopy(CDC)
    seen = []
    n = compile_visit(parse_path(path), strict=True)(rec, lambda c, k: seen.append(c[k]))
    assert seen == expected and n == len(expected)
    assert rec == CDC


@pytest.mark.parametrize("path,record,strict_raises", [
    ("{before,after}.email", {"before": None, "after": {"email": "x"}}, False),   # null = absent (a create event)
    ("{before,after}.email", {"before": "oops", "after": {"email": "x"}}, True),  # named key, wrong shape
    ("*.email", {"before": "oops", "after": {"email": "x"}}, False),              # * skips it
    ("**.payer.name", {"a": {"payer": "Li Na"}}, True),                           # payer is named
    ("**.email", {"a": [{"email": "x"}]}, False),
    ("a.*.b", {"a": "not an object"}, True),                                       # * needs an object at a
    ("a.**.b", {"a": 5}, True),
    ("*[*]", {"a": "s", "b": [1]}, False),
])
def test_wrong_shapes(path, record, strict_raises):
    visit = compile_visit(parse_path(path), strict=True)
    if strict_raises:
        with pytest.raises(PathShapeError):
            visit(record, lambda c, k: None)
    else:
        visit(record, lambda c, k: None)
    compile_visit(parse_path(path))(record, lambda c, k: None)  # never raises without strict


def test_deep_sees_what_earlier_levels_left():
    rec = {"a": {"x": {"x": "inner"}}, "x": "top"}
    compile_visit(parse_path("**.x"))(rec, lambda c, k: c.__setitem__(k, "R"))
    assert rec == {"a": {"x": "R"}, "x": "R"}   # a.x replaced before its inside is walked


# ---------------------------------------------------------------------------------- overlap
OVERLAP = [  # a, b, (same, a above b, b above a)
    ("**.email", "after.payer.email", (True, False, True)),   # ...and after.payer.email.email
    ("**.email", "email", (True, False, True)),
    ("**.email", "after.email.x", (False, True, True)),
    ("*.email", "after.payer.email", (False, False, False)),
    ("*.email", "{before,after}.email", (True, False, False)),
    ("{a,b}.x", "{c,b}.x", (True, False, False)),
    ("{a,b}.x", "{c,d}.x", (False, False, False)),
    ("*.x", "a[*].x", (False, False, False)),                  # a key and an index never meet
    ("a[*]", "a[3].b", (False, True, False)),
    ("**.a", "**.b", (False, True, True)),                      # a.b and b.a
    ("**.a.b", "x.**.b", (True, True, True)),         # x.a.b, x.a.b.b, x.b.a.b
    ("a.**.c", "a.c", (True, False, True)),
    ("*", "a.b", (False, True, False)),
    ("*.*", "a", (False, False, True)),
    ("a", "b", (False, False, False)),
]


@pytest.mark.parametrize("a,b,expected", OVERLAP)
def test_overlap(a, b, expected):
    assert overlap(parse_path(a), parse_path(b)) == expected
    same, above, below = expected
    assert overlap(parse_path(b), parse_path(a)) == (same, below, above)


# ---------------------------------------------------------------------------------- routes
def policy(rules: str, unlisted: str = "keep", fmt: str = "json") -> str:
    """One route (tests/policykit) with ``rules`` (YAML list lines), its first rule on line 15."""
    return policy_text([line.strip()[2:] for line in rules.splitlines() if line.strip()], name="cdc",
                       unlisted=unlisted, route=f"    format: {fmt}\n")


def run(rules: str, record: dict, unlisted: str = "keep"):
    route = compile_policy(load_policy_text(policy(rules, unlisted), "cdc.yaml"), environ=KEYS).route()
    out = route.process(orjson.dumps(record))
    stats = route.stats.drain()
    return out, stats


def test_one_alternation_rule_replaces_a_rule_per_side():
    one, _ = run("      - {field: '{before,after}.email', action: pseudonymize, key: k}\n", CDC)
    two, _ = run("      - {field: before.email, action: pseudonymize, key: k, domain: email}\n"
                 "      - {field: after.email, action: pseudonymize, key: k, domain: email}\n", CDC)
    got, want = orjson.loads(one.value), orjson.loads(two.value)
    assert got["before"]["email"] != CDC["before"]["email"] and got["after"]["email"] != CDC["after"]["email"]
    # one rule, one binding: the same address gives one pseudonym on both sides (joinable)
    same, _ = run("      - {field: '{before,after}.email', action: pseudonymize, key: k}\n",
                  {"before": {"email": "a@b.c"}, "after": {"email": "a@b.c"}})
    s = orjson.loads(same.value)
    assert s["before"]["email"] == s["after"]["email"]
    assert set(got) == set(want) and got["op"] == "u"


def test_a_create_event_counts_one_match_and_no_miss():
    rec = {"before": None, "after": {"email": "new@example.com"}, "op": "c"}
    out, stats = run("      - {field: '{before,after}.email', action: mask}\n", rec)
    assert orjson.loads(out.value) == {"before": None, "after": {"email": "***@*******.***"}, "op": "c"}
    assert stats.transforms == [1] and stats.unmatched == [0]
    out, stats = run("      - {field: '{before,after}.email', action: mask}\n", {"op": "d"})
    assert out.kind == "sink" and stats.unmatched == [1]


def test_wrong_shape_under_a_named_alternative_fails_closed():
    out, _ = run("      - {field: '{before,after}.email', action: mask}\n", {"before": "{\"email\": \"x\"}", "after": None})
    assert (out.kind, out.reason, out.rule) == ("dead_letter", "unexpected-shape", "{before,after}.email")


def test_deep_rule_on_nested_rows():
    out, stats = run("      - {field: '**.phone', action: mask, keep_last: 4}\n", CDC)
    got = orjson.loads(out.value)
    assert got["before"]["payer"]["phone"] == "*******1111" and got["after"]["payer"]["phone"] == "*******2222"
    assert stats.transforms == [2]


def test_allow_list_counts_wildcard_rules_as_listed():
    rules = ("      - {field: '{before,after}.id', action: keep}\n"
             "      - {field: '*.payer.name', action: mask, keep_first: 1}\n"
             "      - {field: '**.email', action: redact, value: x}\n"
             "      - {field: op, action: keep}\n")
    out, _ = run(rules, CDC, unlisted="drop")
    assert orjson.loads(out.value) == {
        "op": "u",
        "before": {"id": 7, "payer": {"name": "L* **"}, "email": "x"},
        "after": {"id": 7, "payer": {"name": "L* **"}, "email": "x"},
        "source": {},  # listed by *.payer.name, as source.payer.name would list it
    }  # phones and orders are not listed; objects ** only looked into (after.orders[*]) are not kept empty


def test_allow_list_with_any_key_keeps_every_member_of_that_level():
    out, _ = run("      - {field: 'source.*', action: keep}\n      - {field: op, action: keep}\n", CDC, unlisted="drop")
    assert orjson.loads(out.value) == {"source": {"db": "crm", "table": "customers"}, "op": "u"}


def test_drop_with_wildcards():
    out, _ = run("      - {field: '*.payer', action: drop}\n      - {field: '**.id', action: drop}\n", CDC)
    got = orjson.loads(out.value)
    assert "payer" not in got["before"] and "payer" not in got["after"] and "id" not in got["after"]
    assert got["source"] == CDC["source"]


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "jsonschema"])
def test_wildcards_need_a_json_route(fmt):
    with pytest.raises(PolicyError) as ei:
        load_policy_text(policy("      - {field: '*.email', action: drop}\n", fmt=fmt), "cdc.yaml")
    assert ei.value.problems == [("cdc.yaml", 15, "routes[0].rules[0].field",
                                  f"wildcards and {{a,b}} in field paths need format: json, not {fmt} "
                                  "(the sink schema is derived field by field)")]


@pytest.mark.parametrize("rules,line,message", [
    ("      - {field: after.email, action: mask}\n      - {field: '{before,after}.email', action: mask}\n", 16,
     "field '{before,after}.email' already has a rule (rules[0])"),
    ("      - {field: '**.email', action: mask}\n      - {field: '**.email', action: redact, name: e2}\n", 16,
     "field '**.email' already has a rule (rules[0])"),
    ("      - {field: '**.email', action: mask}\n      - {field: '*.email', action: pseudonymize, key: k}\n", 16,
     "field '*.email' and '**.email' (rules[0]) can select the same value: one value would get two rules"),
    ("      - {field: '{a,b}', action: redact}\n      - {field: b.c, action: mask}\n", 16,
     "field 'b.c' lies inside '{a,b}', which rules[0] already redacts"),
])
def test_overlapping_rules_are_refused_at_load(rules, line, message):
    with pytest.raises(PolicyError) as ei:
        load_policy_text(policy(rules), "cdc.yaml")
    assert ei.value.problems == [("cdc.yaml", line, "routes[0].rules[1].field", message)]


@pytest.mark.parametrize("rules", [
    "      - {field: '**.email', action: mask}\n      - {field: after.email, action: drop}\n",   # a drop wins
    "      - {field: '**.email', action: mask}\n      - {field: '*.email', action: keep}\n",     # keep does nothing
    "      - {field: '**.email', action: mask}\n      - {field: '**.phone', action: mask}\n",    # nesting: data decides
    "      - {field: '*.payer', action: redact}\n      - {field: '**.name', action: mask}\n",
])
def test_overlaps_that_do_not_depend_on_order_are_accepted(rules):
    load_policy_text(policy(rules), "cdc.yaml")


@pytest.mark.parametrize("key,expected_kind", [
    (b'{"tenant": "t1", "user": {"email": "a@b.c"}, "owner": {"email": "x@y.z"}}', "sink"),
    (b'{"user": "not an object"}', "dead_letter"),                    # a named alternative fails closed
])
def test_json_key_rules_take_wildcards(key, expected_kind):
    route = compile_policy(load_policy_text(policy_text(
        ["{field: x, action: keep}"],
        route="    key: {format: json, rules: [{field: '{user,owner}.email', action: pseudonymize, key: k}]}\n"),
        "k.yaml"), environ=KEYS).route()
    out = route.process_record(b'{"x": 1}', key)
    assert out.kind == expected_kind
    if expected_kind == "sink":
        got = orjson.loads(out.key)
        assert got["tenant"] == "t1" and got["user"]["email"] != "a@b.c" and got["owner"]["email"] != "x@y.z"


def test_schema_key_rules_refuse_wildcards():
    with pytest.raises(PolicyError) as ei:
        load_policy_text(policy_text(["{field: x, action: keep}"], route=(
            "    key: {format: avro, rules: [{field: '*.email', action: pseudonymize, key: k}]}\n")), "k.yaml")
    assert [p[2:] for p in ei.value.problems] == [
        ("routes[0].key.rules[0].field", "wildcards and {a,b} in key field paths need format: json, not avro")]
