"""Hypothesis strategies for hostile records and for random valid policies.

* :func:`hostile_values`: record values as bytes — JSON objects written by hand (so they can hold
  what a serializer never writes: duplicate member names, lone surrogates in ``\\u`` escapes,
  ``NaN``/``Infinity``, integers beyond 64 bits, odd whitespace) with deep nesting, huge strings,
  characters of every Unicode plane, numbers at the edges; then sometimes broken: truncated,
  invalid UTF-8 spliced in, a byte-order mark; and ``None`` (a tombstone).
* :func:`policies`: policy YAML with one route whose rules are random but valid combinations of
  what the loader accepts (every action and its options, nested/array/wildcard/quoted paths, block
  conditions, ``unlisted_fields``); some combinations the loader refuses (overlapping rewrites):
  tests ``assume`` those away.

Member names come from :data:`NAMES`, the names the policy paths use, so rules hit.
"""
from __future__ import annotations

import yaml
from hypothesis import strategies as st

NAMES = ["a", "b", "c", "card", "a.b"]
"""Member names of generated records (``a.b`` is one key with a dot; policies quote it)."""

EDGE_INTS = [0, -0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64,
             10**19, -(10**19), 10**30 + 7, -(10**40), 10**308]
EDGE_NUMBER_TEXT = ["-0", "0.0", "-0.0", "1e308", "1.7976931348623157e308", "5e-324", "1e-400", "1E+2",
                    "123456789012345678901234567890.5", "12345678901234567890e2", "0.1", "1e400", "-1e400",
                    "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "0x10", "9" * 400, "1" * 19]
"""Number literals, valid and not (``1e400``, ``NaN``, ``01``... must dead-letter)."""

SPECIAL_TEXT = ["13900001111", "4111111111111111", "6222021234567890123", "bob@example.com",
                "11010119900307777X", "2001:db8::1", "192.168.1.1", "GB82WEST12345698765432",
                "王小明", "\u0661\u0663\u0669\u0660\u0660\u0660\u0660\u0661\u0661\u0661\u0661",
                "１３９００００１１１１", "e\u0301", "\u200b\u200b\u200b\u200b", "----", "    ", "****", "aaaa"]

ESCAPES = ["\\ud800", "\\udfff", "\\ud800\\ud800", "\\udc00\\ud800", "\\ud83d\\ude00", "\\u0000", "\\n",
           "\\\"", "\\\\", "\\/", "\\u00e9", "\\uffff", "\\uD834\\uDD1E", "\\x41", "\\u12", "\\"]
"""``\\u`` escapes inside a JSON string: lone and reversed surrogates, valid pairs, and broken ones."""

# every plane: BMP, SMP (emoji, math digits), SIP (CJK ext.), planes 3-16 (private use, unassigned)
PLANE_CHARS = st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.integers(0x10000, 0x10FFFF).map(chr),
    st.sampled_from(["\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "\ufffd", "\U0001F600", "\U0001D7CF", "\U000E0001"]),
)


def _quote(s: str) -> str:
    """``s`` as JSON string text (escapes only what JSON needs; surrogates stay as characters)."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


@st.composite
def json_string(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:  # huge: up to ~256 KiB of one pattern
        unit = draw(st.sampled_from(["x", "1", "1-", "a@", ".", " 1", ":", "王", "\U0001F600", "a\\u0000"]))
        return '"' + unit * draw(st.integers(1000, 1 << 16)) + '"'
    if kind == 1:  # escapes, lone surrogates among them
        parts = draw(st.lists(st.sampled_from(ESCAPES) | st.text(PLANE_CHARS, max_size=3).map(lambda t: _quote(t)[1:-1]),
                              min_size=1, max_size=6))
        return '"' + "".join(parts) + '"'
    if kind <= 3:
        return _quote(draw(st.sampled_from(SPECIAL_TEXT)))
    if kind == 4:  # event times around RETENTION_NOW (retention)
        return _quote(draw(st.sampled_from(EVENT_TIME_TEXT)))
    return _quote(draw(st.text(PLANE_CHARS, max_size=24)))


def json_number(draw) -> str:
    if draw(st.integers(0, 4)) == 0:  # event times around RETENTION_NOW (retention)
        return repr(draw(st.sampled_from(EVENT_TIME_NUMBERS)))
    if draw(st.booleans()):
        return str(draw(st.sampled_from(EDGE_INTS) | st.integers()))
    if draw(st.booleans()):
        return draw(st.sampled_from(EDGE_NUMBER_TEXT))
    f = draw(st.floats(allow_nan=False, allow_infinity=False))
    return repr(f)


@st.composite
def json_text(draw, depth: int = 0) -> str:
    """One JSON value as text (sometimes not quite JSON: see :data:`EDGE_NUMBER_TEXT`, :data:`ESCAPES`)."""
    kinds = ["str", "num", "lit"] + (["obj", "obj", "arr"] if depth < 4 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "str":
        return draw(json_string())
    if kind == "num":
        return json_number(draw)
    if kind == "lit":
        return draw(st.sampled_from(["true", "false", "null"]))
    ws = draw(st.sampled_from(["", " ", "\n\t", "\r\n  "]))
    if kind == "arr":
        items = draw(st.lists(json_text(depth + 1), max_size=4))
        return "[" + ws + ("," + ws).join(items) + "]"
    return json_object(draw, depth + 1, ws)


def json_object(draw, depth: int, ws: str = "") -> str:
    names = draw(st.lists(st.sampled_from(NAMES) | st.text(PLANE_CHARS, max_size=4), max_size=5))
    if names and draw(st.integers(0, 4)) == 0:
        names.append(names[0])  # a duplicate member name
    members = [_quote(n) + ws + ":" + ws + draw(json_text(depth)) for n in names]
    return "{" + ws + ("," + ws).join(members) + ws + "}"


def _nest(draw, inner: str) -> str:
    """``inner`` inside 100-1100 levels of arrays/objects (orjson refuses beyond 1024)."""
    n = draw(st.integers(100, 1100))
    opens = draw(st.sampled_from(["[", '{"a":', '{"card":[']))
    closes = {"[": "]", '{"a":': "}", '{"card":[': "]}"}[opens]
    return '{"a":' + opens * n + inner + closes * n + "}"


@st.composite
def hostile_values(draw) -> bytes | None:
    """A record value: bytes (or ``None``, a tombstone) as described in the module doc."""
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return None
    if choice == 1:
        text = _nest(draw, draw(json_text(3)))
    else:
        text = json_object(draw, 0, draw(st.sampled_from(["", " "])))
    data = text.encode("utf-8", "surrogatepass")
    damage = draw(st.integers(0, 9))
    if damage == 0:     # truncated
        data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
    elif damage == 1:   # invalid UTF-8 spliced in
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])) + data[i:]
    elif damage == 2:
        data = b"\xef\xbb\xbf" + data
    elif damage == 3:   # not an object
        data = draw(st.sampled_from([b"[1]", b'"s"', b"3", b"null", b"", b" ", b"[]", b"12345678901234567890"]))
    return data


# ----------------------------------------------------------------------------------- policies
@st.composite
def paths(draw) -> str:
    # object wildcards and alternations too (*, **, {a,b}: proxy.policy.paths), now and then
    first = draw(st.sampled_from(['a', 'b', 'c', 'card', '"a.b"', 'a', 'card', '*', '{a,card}', '**.card', '**.a']))
    segs = [first]
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["key", "key", "key", "[*]", "[0]", "[1]", "*", "{}"]))
        if kind == "key":
            segs.append("." + draw(st.sampled_from(["a", "b", "card"])))
        elif kind == "*":
            segs.append(".*")
        elif kind == "{}":
            segs.append(".{b,card}")
        else:
            segs.append(kind)
    return "".join(segs)


LITERALS = st.sampled_from([None, "[x]", "", 0, -1, 2**63 - 1, 1.5, False, True, "王"])


@st.composite
def rules(draw) -> dict:
    field = draw(paths())
    action = draw(st.sampled_from(["mask", "pseudonymize", "redact", "drop", "keep", "fpe", "tokenize", "detect"]))
    rule: dict = {"field": field, "action": action}
    if action == "mask":
        rule.update(keep_first=draw(st.integers(0, 4)), keep_last=draw(st.integers(0, 4)),
                    mask_char=draw(st.sampled_from(["*", "0", "王", "\U0001F600"])), mask_separators=draw(st.booleans()))
    elif action == "pseudonymize":
        rule.update(key="k", normalize=draw(st.sampled_from(["none", "string", "email", "phone"])),
                    encoding=draw(st.sampled_from(["hex", "base32", "base64url"])),
                    length=draw(st.none() | st.integers(8, 60)), prefix=draw(st.sampled_from(["", "p_"])))
        if draw(st.booleans()):
            rule["domain"] = "d"
    elif action == "redact":
        rule["value"] = draw(LITERALS)
    elif action == "fpe":
        rule["key"] = "k"
        rule["algorithm"] = draw(st.sampled_from(["ff1", "ff1", "ffx"]))
        if rule["algorithm"] == "ff1":
            rule["alphabet"] = draw(st.sampled_from(["digits", "alnum", "hex", "upper", "lower"]))
    elif action == "tokenize":
        rule["key"] = "k"
    elif action == "detect":
        rule["detectors"] = draw(st.lists(st.sampled_from(["cn_mobile", "email", "bank_card", "ipv4", "ipv6",
                                                           "cn_resident_id", "iban"]), min_size=1, max_size=3,
                                          unique=True))
        rule["replace"] = draw(st.sampled_from(["placeholder", "mask", "pseudonymize", "fpe"]))
        if rule["replace"] in ("pseudonymize", "fpe"):
            rule["key"] = "k"
    return rule


RETENTION_NOW = 1_000_000.0
"""The clock of routes compiled from :func:`one_route_policies` in the tests (epoch seconds), so
generated integers (event times of 1970) fall on both sides of a ``retention.max_age``."""

EVENT_TIME_TEXT = ["1970-01-12T13:46:40Z", "1970-01-12T13:46:39+00:00", "1970-01-12T14:46:40+01:00",
                   "1970-01-01T00:00:00Z", "1970-01-12T00:00:00", "1970-01-12", "1970-01-12T13:46:40.5-00:01"]
EVENT_TIME_NUMBERS = [999_999, 999_999_000, 1_000_000_000, 100_000_000_000, 999_955, 999_954.5, 956_800, -5, 1e300]
EVENT_TIMES = st.sampled_from(EVENT_TIME_TEXT + EVENT_TIME_NUMBERS)
"""Event-time values around :data:`RETENTION_NOW` (ISO 8601 with and without offsets, epoch
seconds and milliseconds): strings and numbers of generated records and records drawn from them."""


@st.composite
def one_route_policies(draw, rule_strategy, block_paths, block_values, max_rules: int, name: str) -> str:
    """Policy YAML of one route ``r`` (``in.t`` to ``out.t``, dead letters ``dlq.t``), named ``name``,
    keys ``k`` and ``dlq`` from env ``K``/``DLQ``: 1..``max_rules`` rules drawn from ``rule_strategy``,
    up to two block conditions (``equals``, ``in`` or ``not_equals``) on a path of ``block_paths``
    and a value of ``block_values``, and in one policy of four a ``retention`` on a path of
    ``block_paths``. Shared with tests/unit/test_fastpath.py."""
    route = {"name": "r", "source": "in.t", "sink": "out.t", "dead_letter": "dlq.t", "dead_letter_key": "dlq",
             "unlisted_fields": draw(st.sampled_from(["keep", "keep", "drop"])),
             "rules": draw(st.lists(rule_strategy, min_size=1, max_size=max_rules))}
    blocks = draw(st.lists(st.tuples(block_paths, block_values, st.sampled_from(["equals", "in", "not_equals"])),
                           max_size=2))
    if blocks:
        route["block"] = [{"when": {"field": f, **({"in": [v, "x"]} if op == "in" else {op: v})}, "reason": f"r{i}"}
                          for i, (f, v, op) in enumerate(blocks)]
    if draw(st.integers(0, 3)) == 0:  # retention on a drawn path (the routes' clock: RETENTION_NOW)
        route["retention"] = {"field": draw(st.sampled_from(["a", "b"]) | block_paths), "max_age": draw(st.sampled_from(["45s", "90m", "12h", "30d"])),
                              "epoch": draw(st.sampled_from(["auto", "seconds", "milliseconds"]))}
    return yaml.safe_dump({"version": 1, "name": name, "keys": {"k": {"source": "env", "name": "K"},
                                                                "dlq": {"source": "env", "name": "DLQ"}},
                           "routes": [route]}, allow_unicode=True, sort_keys=False)


def policies():
    """Policy YAML (name ``hostile``): every action of :func:`rules`, literal block values."""
    return one_route_policies(rules(), paths(), LITERALS, max_rules=5, name="hostile")
