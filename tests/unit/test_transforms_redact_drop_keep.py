"""``redact`` (replace any JSON value with a literal), ``drop`` (remove object members and array
elements, also inside arrays) and ``keep`` (identity), directly and through a compiled route."""
from __future__ import annotations

import orjson
import pytest

from proxy.policy.compiler import SINK, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.models import DropRule, KeepRule, RedactRule
from proxy.transforms import BuildContext, build_transform
from proxy.transforms.drop import DROPPED

from policykit import compiled_route

CTX = BuildContext(policy_name="unit", route_name="r", keys={})
ANY_VALUES = ["text", "", 0, 42, -1.5, True, False, None, {"a": {"b": 1}}, [1, "x", None], "李四"]


def route(*rules: str, unlisted: str = "keep"):
    return compiled_route(list(rules), unlisted=unlisted)


def run(r, record: dict):
    out = r.process(orjson.dumps(record))
    assert out.kind == SINK, out
    return orjson.loads(out.value)


# ----------------------------------------------------------------------------- redact
@pytest.mark.parametrize("value", ANY_VALUES)
@pytest.mark.parametrize("literal", ["[redacted]", None, 0, False, ""])
def test_redact_replaces_any_type_with_the_literal(value, literal):
    t = build_transform(RedactRule(field="f", action="redact", value=literal), CTX)
    out = t.apply(value)
    assert out == literal and type(out) is type(literal)


def test_redact_default_is_null():
    assert RedactRule(field="f", action="redact").value is None


def test_redact_through_route():
    r = route("{field: note, action: redact, value: '[redacted]'}", "{field: 'tags[*]', action: redact}",
              "{field: obj, action: redact, value: 0}")
    rec = {"note": {"nested": "secret"}, "tags": ["a", 1, True], "obj": [1, 2], "other": "kept"}
    assert run(r, rec) == {"note": "[redacted]", "tags": [None, None, None], "obj": 0, "other": "kept"}
    assert r.stats.transforms == [1, 3, 1]


def test_redact_rejects_a_non_scalar_literal():
    with pytest.raises(ValueError):
        RedactRule(field="f", action="redact", value={"a": 1})


# ----------------------------------------------------------------------------- drop
@pytest.mark.parametrize(
    "rules,record,expected,counts",
    [
        (["{field: a, action: drop}"], {"a": 1, "b": 2}, {"b": 2}, [1]),
        (["{field: a, action: drop}"], {"a": None, "b": 2}, {"b": 2}, [1]),           # present null is dropped
        (["{field: a, action: drop}"], {"a": {"deep": [1]}}, {}, [1]),
        (["{field: a, action: drop}"], {"b": 2}, {"b": 2}, [0]),                       # absent: unmatched
        (["{field: a.b, action: drop}"], {"a": {"b": 1, "c": 2}}, {"a": {"c": 2}}, [1]),
        (["{field: '\"x.y\"', action: drop}"], {"x.y": 1, "x": {"y": 2}}, {"x": {"y": 2}}, [1]),
        # array elements
        (["{field: 'a[*]', action: drop}"], {"a": [1, 2, 3]}, {"a": []}, [3]),
        (["{field: 'a[0]', action: drop}"], {"a": [1, 2, 3]}, {"a": [2, 3]}, [1]),
        (["{field: 'a[2]', action: drop}"], {"a": [1, 2, 3]}, {"a": [1, 2]}, [1]),
        (["{field: 'a[5]', action: drop}"], {"a": [1, 2, 3]}, {"a": [1, 2, 3]}, [0]),
        # nested in arrays
        (["{field: 'orders[*].card', action: drop}"],
         {"orders": [{"card": "1", "n": 1}, {"n": 2}, {"card": "3"}]},
         {"orders": [{"n": 1}, {"n": 2}, {}]}, [2]),
        (["{field: 'm[*][*]', action: drop}"], {"m": [[1, 2], [], [3]]}, {"m": [[], [], []]}, [3]),
        (["{field: 'o[*].items[1]', action: drop}"],
         {"o": [{"items": [1, 2, 3]}, {"items": [4]}]}, {"o": [{"items": [1, 3]}, {"items": [4]}]}, [1]),
        # several drop rules select on the record as received (indexes do not shift between rules)
        (["{field: 'a[0]', action: drop}", "{field: 'a[1]', action: drop}"],
         {"a": [0, 1, 2, 3]}, {"a": [2, 3]}, [1, 1]),
        (["{field: 'a[2]', action: drop}", "{field: 'a[0]', action: drop}"],
         {"a": [0, 1, 2, 3]}, {"a": [1, 3]}, [1, 1]),
        (["{field: 'a[0]', action: drop}", "{field: 'a[1].pii', action: drop}"],
         {"a": [{"pii": "p0"}, {"pii": "p1", "k": 1}, {"pii": "p2"}]},
         {"a": [{"k": 1}, {"pii": "p2"}]}, [1, 1]),
        (["{field: 'a[*]', action: drop}", "{field: 'a[1]', action: drop}"],
         {"a": [0, 1, 2]}, {"a": []}, [3, 1]),
        (["{field: 'a[1]', action: drop}", "{field: c, action: drop}", "{field: 'b[0]', action: drop}"],
         {"a": [0, 1, 2], "b": [5, 6], "c": 1, "d": 2}, {"a": [0, 2], "b": [6], "d": 2}, [1, 1, 1]),
    ],
)
def test_drop(rules, record, expected, counts):
    r = route(*rules)
    assert run(r, record) == expected
    assert r.stats.transforms == counts
    assert r.stats.unmatched == [0 if c else 1 for c in counts]


@pytest.mark.parametrize("rule,record", [
    ("{field: a.b, action: drop}", {"a": "b: 1 Main St"}),           # a string where an object is needed
    ("{field: 'a[*]', action: drop}", {"a": {"0": "secret"}}),       # an object where an array is needed
    ("{field: 'a[*].b', action: redact}", {"a": ["b=secret"]}),      # an element of the wrong type
    ("{field: a.b, action: mask}", {"a": 12345}),
])
def test_wrong_shape_on_a_rule_path_fails_closed(rule, record):
    # the value in the way could hold what the rule protects: dead-letter, never pass it in clear
    out = route(rule).process(orjson.dumps(record))
    assert out.kind == "dead_letter" and out.reason == "unexpected-shape" and out.stage == "transform"
    assert out.value is None


def test_wrong_shape_under_keep_is_pruned_by_the_allow_list_not_dead_lettered():
    out = route("{field: a.b, action: keep}", unlisted="drop").process(orjson.dumps({"a": "x", "c": 1}))
    assert out.kind == "sink" and orjson.loads(out.value) == {}


def test_drop_runs_after_other_rules_whatever_their_order():
    # the drop of a[0] must not shift a[1] under the mask rule written after it
    r = route("{field: 'a[0]', action: drop}", "{field: 'a[1].v', action: mask}")
    assert run(r, {"a": [{"v": "aaaa"}, {"v": "bbbb"}, {"v": "cccc"}]}) == {"a": [{"v": "****"}, {"v": "cccc"}]}


def test_drop_transform_returns_sentinel():
    t = build_transform(DropRule(field="f", action="drop"), CTX)
    assert t.apply("anything") is DROPPED


# ----------------------------------------------------------------------------- keep
@pytest.mark.parametrize("value", ANY_VALUES)
def test_keep_is_identity(value):
    t = build_transform(KeepRule(field="f", action="keep"), CTX)
    assert t.apply(value) is value


def test_keep_through_route_counts_and_changes_nothing():
    r = route("{field: a, action: keep}", "{field: 'b[*]', action: keep}")
    rec = {"a": {"x": [1, None, True]}, "b": [1, "2"], "c": 3}
    assert run(r, rec) == rec
    assert r.stats.transforms == [1, 2]
    assert run(r, {"c": 1}) == {"c": 1}
    assert r.stats.unmatched == [1, 1]


def test_keep_lists_fields_for_the_allow_list():
    r = route("{field: a, action: keep}", "{field: 'b[*].c', action: keep}", unlisted="drop")
    rec = {"a": {"deep": 1}, "b": [{"c": 1, "d": 2}, {"d": 3}], "z": "gone"}
    assert run(r, rec) == {"a": {"deep": 1}, "b": [{"c": 1}, {}]}
