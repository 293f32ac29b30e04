"""Field paths (proxy.policy.paths): parse/format, syntax errors, compile_visit, is_prefix."""
from __future__ import annotations

import copy

import pytest

from proxy.policy.paths import ANY_KEY, WILDCARD, PathSyntaxError, compile_visit, format_path, is_prefix, iter_values, parse_path

W = WILDCARD

# text -> segments, where text is already the canonical spelling (format_path(segs) == text)
CANONICAL = [
    ("name", ("name",)),
    ("address.city", ("address", "city")),
    ("a.b.c.d", ("a", "b", "c", "d")),
    ("orders[*]", ("orders", W)),
    ("orders[*].card_number", ("orders", W, "card_number")),
    ("orders[0].card_number", ("orders", 0, "card_number")),
    ("orders[12]", ("orders", 12)),
    ("m[*][*]", ("m", W, W)),
    ("m[1][*].x", ("m", 1, W, "x")),
    ('"user.name".first', ("user.name", "first")),
    ('a."b.c"', ("a", "b.c")),
    ('a."x[0]"', ("a", "x[0]")),
    ('"say \\"hi\\""', ('say "hi"',)),
    ('"back\\\\slash.x"', ("back\\slash.x",)),
    ("名前.姓", ("名前", "姓")),
    ("with space", ("with space",)),
    ("0", ("0",)),
    ("a-b_c", ("a-b_c",)),
]


@pytest.mark.parametrize("text,segs", CANONICAL)
def test_parse_canonical(text, segs):
    assert parse_path(text) == segs


@pytest.mark.parametrize("text,segs", CANONICAL)
def test_format_canonical(text, segs):
    assert format_path(segs) == text


@pytest.mark.parametrize("text,segs", CANONICAL)
def test_round_trip(text, segs):
    assert parse_path(format_path(segs)) == segs
    assert format_path(parse_path(text)) == text


@pytest.mark.parametrize(
    "text,canonical",
    [
        ('"plain"', "plain"),            # needless quotes are dropped
        ('"a".b', "a.b"),
        ('"a\\q"', "a\\q"),              # backslash before another char stays literal
        ("orders[007]", "orders[7]"),
    ],
)
def test_non_canonical_spellings_normalize(text, canonical):
    assert format_path(parse_path(text)) == canonical


def test_wildcard_is_a_distinct_segment_not_the_string_star():
    assert parse_path("a[*]")[1] is WILDCARD
    assert parse_path("a.*")[1] is ANY_KEY        # any key of an object, not an array element
    assert parse_path('a."*"') == ("a", "*")      # a member literally named * is quoted
    assert format_path(("a", "*")) == 'a."*"'


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty path"),
        (".a", "expected a key at character 1"),
        ("a..b", "expected a key at character 3"),
        ("a.", "path ends with '.'"),
        ("[0]", "expected a key at character 1"),
        ("[*].a", "expected a key at character 1"),
        ("a[", "unclosed '[' at character 2"),
        ("abc[*", "unclosed '[' at character 4"),
        ("a[x]", "array selector must be [*] or [N], at character 2"),
        ("a[-1]", "array selector must be [*] or [N], at character 2"),
        ("a[]", "array selector must be [*] or [N], at character 2"),
        ("a[ 1]", "array selector must be [*] or [N], at character 2"),
        ("a]", "unexpected ']' at character 2"),
        ("a[0]b", "unexpected 'b' at character 5"),
        ('a"b"', "unexpected '\"' at character 2"),
        ('"abc', "unterminated quote starting at character 1"),
        ('a."b', "unterminated quote starting at character 3"),
        ('""', "empty quoted key at character 1"),
        ('x.""', "empty quoted key at character 3"),
        ('"a"b', "unexpected 'b' at character 4"),
    ],
)
def test_syntax_errors_name_the_position(text, message):
    with pytest.raises(PathSyntaxError) as ei:
        parse_path(text)
    assert str(ei.value) == message


@pytest.mark.parametrize("bad", [None, 3, ("a",)])
def test_non_string_path_is_an_error(bad):
    with pytest.raises(PathSyntaxError):
        parse_path(bad)


# ----------------------------------------------------------------------------- is_prefix
@pytest.mark.parametrize(
    "a,b,expected",
    [
        ("a", "a", True),
        ("a", "a.b", True),
        ("a.b", "a", False),
        ("a", "ab", False),
        ("a.b", "a.c", False),
        ("orders[*]", "orders[0].card", True),
        ("orders[0]", "orders[*].card", True),
        ("orders[0]", "orders[1].card", False),
        ("orders[1]", "orders[1].card", True),
        ("orders[*]", "orders[*]", True),
        ("orders[*].card", "orders[3].card", True),
        ("orders[*].card", "orders[3].amount", False),
        ("orders.x", "orders[0].x", False),   # key vs index never overlap
        ("orders[*]", "orders.x", False),
        ("a.b.c", "a.b", False),
    ],
)
def test_is_prefix(a, b, expected):
    assert is_prefix(parse_path(a), parse_path(b)) is expected


# ----------------------------------------------------------------------------- compile_visit
RECORD = {
    "name": "Ada",
    "address": {"city": "Hangzhou", "geo": {"lat": 30.2}},
    "orders": [
        {"card": "4111", "items": [{"sku": "a"}, {"sku": "b"}]},
        {"card": "5500", "items": []},
        {"amount": 3},
        "not-an-object",
    ],
    "user.name": {"first": "Ada"},
    "tags": ["x", "y", "z"],
    "nothing": None,
    "scalar": 7,
}


@pytest.mark.parametrize(
    "path,expected",
    [
        ("name", ["Ada"]),
        ("address.city", ["Hangzhou"]),
        ("address.geo.lat", [30.2]),
        ("address", [RECORD["address"]]),
        ("orders[*].card", ["4111", "5500"]),                    # missing key and a string element skipped
        ("orders[*].items[*].sku", ["a", "b"]),
        ("orders[0].card", ["4111"]),
        ("orders[1].card", ["5500"]),
        ("orders[2].card", []),
        ("orders[9].card", []),                                  # index out of range
        ("orders[3]", ["not-an-object"]),
        ("tags[*]", ["x", "y", "z"]),
        ("tags[2]", ["z"]),
        ('"user.name".first', ["Ada"]),
        ("missing", []),
        ("missing.deeper", []),
        ("nothing", [None]),                                     # a present null is selected
        ("nothing.x", []),                                       # ... but not walked into
        ("name.first", []),                                      # wrong type: string where object expected
        ("name[*]", []),                                         # string where array expected
        ("address[0]", []),                                      # object where array expected
        ("tags.x", []),                                          # array where object expected
        ("scalar.x", []),
        ("scalar[*]", []),
    ],
)
def test_compile_visit_selects(path, expected):
    rec = copy.deepcopy(RECORD)
    seen = []
    n = compile_visit(parse_path(path))(rec, lambda c, k: seen.append(c[k]))
    assert seen == expected
    assert n == len(expected)
    assert rec == RECORD  # visiting alone changes nothing
    assert list(iter_values(rec, parse_path(path))) == expected


def test_compile_visit_passes_parent_and_key_for_in_place_edits():
    rec = copy.deepcopy(RECORD)
    visit = compile_visit(parse_path("orders[*].items[*].sku"))

    def upper(c, k):
        c[k] = c[k].upper()
    assert visit(rec, upper) == 2
    assert [i["sku"] for i in rec["orders"][0]["items"]] == ["A", "B"]

    parents = []
    compile_visit(parse_path("tags[*]"))(rec, lambda c, k: parents.append((c is rec["tags"], k)))
    assert parents == [(True, 0), (True, 1), (True, 2)]
    keys = []
    compile_visit(parse_path("address.city"))(rec, lambda c, k: keys.append((c is rec["address"], k)))
    assert keys == [(True, "city")]


def test_compile_visit_wildcard_on_empty_array_selects_nothing():
    calls = []
    assert compile_visit(parse_path("a[*].b"))({"a": []}, lambda c, k: calls.append(k)) == 0
    assert compile_visit(parse_path("a[*]"))({"a": []}, lambda c, k: calls.append(k)) == 0
    assert calls == []


def test_compile_visit_rejects_empty_path():
    with pytest.raises(ValueError):
        compile_visit(())


def test_compile_visit_does_not_treat_bool_or_subclasses_as_containers():
    # a JSON boolean or number is never walked into, whatever the segment
    for node in (True, 0, 1.5, "s"):
        assert compile_visit(parse_path("a[0]"))({"a": node}, lambda c, k: None) == 0
        assert compile_visit(parse_path("a.b"))({"a": node}, lambda c, k: None) == 0
