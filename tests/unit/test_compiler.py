"""The compiled record path (proxy.policy.compiler): outcomes, fail-closed dead-letter causes without
record content, tombstones, block conditions with JSON typing, allow-list pruning, exact counters,
reveal()."""
from __future__ import annotations

import dataclasses

import orjson
import pytest

from proxy.errors import PolicyError
from proxy.policy.compiler import BLOCK, DEAD_LETTER, LATENCY_BUCKETS, SINK, TOMBSTONE, Outcome, RouteStats, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.transforms.mask import Mask

from policykit import KEYS, compiled_route, policy_text

CANARY = "canary-7f3q"


policy, route = policy_text, compiled_route


STANDARD = ["{field: name, action: mask, keep_first: 1}",
            "{field: card, action: fpe, key: k}",
            "{field: email, action: pseudonymize, key: k, normalize: email}",
            "{field: phone, action: pseudonymize, key: k, normalize: phone}",
            "{field: secret, action: drop}"]


def assert_no_content(out: Outcome, *fragments: str):
    for f in dataclasses.fields(out):
        v = getattr(out, f.name)
        for frag in fragments:
            assert frag not in str(v) and frag.encode() not in (v if isinstance(v, bytes) else b"")
    for frag in fragments:
        assert frag not in repr(out)


# ----------------------------------------------------------------------------- dead-letter outcomes
@pytest.mark.parametrize(
    "payload,reason,stage,error_class,rule",
    [
        (b'{"name": "' + CANARY.encode() + b'"', "invalid-json", "deserialize", "JSONDecodeError", ""),
        (CANARY.encode(), "invalid-json", "deserialize", "JSONDecodeError", ""),
        (b"", "invalid-json", "deserialize", "JSONDecodeError", ""),
        (b"\xff\xfe" + CANARY.encode(), "invalid-json", "deserialize", "JSONDecodeError", ""),
        (b'{"a": 1} {"b": 2}', "invalid-json", "deserialize", "JSONDecodeError", ""),
        (orjson.dumps([CANARY]), "not-an-object", "deserialize", "TypeError", ""),
        (orjson.dumps(CANARY), "not-an-object", "deserialize", "TypeError", ""),
        (b"42", "not-an-object", "deserialize", "TypeError", ""),
        (b"null", "not-an-object", "deserialize", "TypeError", ""),
        (orjson.dumps({"name": {"first": CANARY}}), "unsupported-type", "transform", "RecordError", "name"),
        (orjson.dumps({"name": True, "other": CANARY}), "unsupported-type", "transform", "RecordError", "name"),
        (orjson.dumps({"card": [CANARY]}), "unsupported-type", "transform", "RecordError", "card"),
        (orjson.dumps({"card": "12345", "x": CANARY}), "fpe-domain-too-small", "transform", "RecordError", "card"),
        (orjson.dumps({"phone": CANARY}), "normalize-failed", "transform", "RecordError", "phone"),
    ],
)
def test_dead_letter_outcomes_carry_no_content(payload, reason, stage, error_class, rule):
    r = route(STANDARD)
    out = r.process(payload)
    assert out == Outcome(DEAD_LETTER, None, reason, stage, error_class, rule)
    assert_no_content(out, CANARY, "12345")
    assert r.stats.dead_lettered == {reason: 1}
    assert r.stats.produced == 0 and r.stats.consumed == 1


def test_unexpected_transform_exception_fails_closed_without_its_message(monkeypatch):
    def boom(self, text):
        raise ValueError(f"leaky message with {text}")
    monkeypatch.setattr(Mask, "apply_text", boom)     # a bug inside a transform
    r = route(STANDARD)
    out = r.process(orjson.dumps({"name": CANARY}))
    assert out == Outcome(DEAD_LETTER, None, "transform-failed", "transform", "ValueError", "")
    assert_no_content(out, CANARY, "leaky")
    assert r.stats.dead_lettered == {"transform-failed": 1}


def test_unserializable_result_is_dead_lettered(monkeypatch):
    monkeypatch.setattr(Mask, "apply_text", lambda self, text: {text})   # a set cannot be serialized to JSON
    r = route(STANDARD)
    out = r.process(orjson.dumps({"name": CANARY}))
    assert out == Outcome(DEAD_LETTER, None, "serialize-failed", "serialize", "TypeError", "")
    assert_no_content(out, CANARY)
    assert r.stats.dead_lettered == {"serialize-failed": 1} and r.stats.produced == 0


def test_a_failing_field_withholds_the_whole_record():
    r = route(STANDARD)
    out = r.process(orjson.dumps({"name": "Ada", "email": "a@b.c", "card": "123"}))
    assert out.kind == DEAD_LETTER and out.value is None and out.rule == "card"
    # and counts nothing for the fields that did transform before the failure
    assert r.stats.transforms == [0] * 5 and r.stats.unmatched == [0] * 5


# ----------------------------------------------------------------------------- sink outcomes
def test_tombstone_stays_none():
    r = route(STANDARD)
    out = r.process(None)
    assert out is TOMBSTONE and out == Outcome(SINK, None)
    assert (r.stats.consumed, r.stats.produced) == (1, 1)
    assert r.stats.transforms == [0] * 5 and r.stats.unmatched == [0] * 5


def test_sink_outcome_is_compact_json_in_key_order():
    r = route(STANDARD)
    out = r.process(b'{"z": 1, "name": "Ada", "a": [1, 2.5, null, true], "secret": "s"}')
    assert out == Outcome(SINK, b'{"z":1,"name":"A**","a":[1,2.5,null,true]}')


def test_empty_object_and_unicode():
    r = route(STANDARD)
    assert r.process(b"{}").value == b"{}"
    out = r.process(orjson.dumps({"name": "李小龙", "note": "你好"}))
    assert orjson.loads(out.value) == {"name": "李**", "note": "你好"}


# ----------------------------------------------------------------------------- block
@pytest.mark.parametrize(
    "condition,record,blocked",
    [
        ("{field: c.ok, equals: false}", {"c": {"ok": False}}, True),
        ("{field: c.ok, equals: false}", {"c": {"ok": 0}}, False),          # JSON typing: 0 is not false
        ("{field: c.ok, equals: false}", {"c": {"ok": None}}, False),
        ("{field: c.ok, equals: false}", {"c": {"ok": "false"}}, False),
        ("{field: c.ok, equals: false}", {"c": {}}, False),                  # absent never matches
        ("{field: c.ok, equals: false}", {"c": "false"}, False),
        ("{field: c.ok, equals: 0}", {"c": {"ok": False}}, False),
        ("{field: c.ok, equals: 0}", {"c": {"ok": 0}}, True),
        ("{field: c.ok, equals: 0}", {"c": {"ok": 0.0}}, True),              # numbers compare numerically
        ("{field: c.ok, equals: 1}", {"c": {"ok": True}}, False),
        ("{field: c.ok, equals: true}", {"c": {"ok": 1}}, False),
        ("{field: c.ok, equals: null}", {"c": {"ok": None}}, True),
        ("{field: c.ok, equals: null}", {"c": {}}, False),
        ("{field: c.ok, equals: '1'}", {"c": {"ok": 1}}, False),
        ("{field: c.ok, equals: 'no'}", {"c": {"ok": "no"}}, True),
        ("{field: c.ok, equals: 'no'}", {"c": {"ok": "No"}}, False),
        ("{field: country, in: [KP, IR]}", {"country": "IR"}, True),
        ("{field: country, in: [KP, IR]}", {"country": "CN"}, False),
        ("{field: country, in: [KP, IR]}", {"country": ["KP"]}, False),      # an array is not a member
        ("{field: v, in: [false, 2]}", {"v": 0}, False),
        ("{field: v, in: [false, 2]}", {"v": False}, True),
        ("{field: v, in: [false, 2]}", {"v": 2.0}, True),
        ("{field: v, in: []}", {"v": 1}, False),
        ("{field: 'orders[*].currency', in: [USD]}", {"orders": [{"currency": "CNY"}, {"currency": "USD"}]}, True),
        ("{field: 'orders[*].currency', in: [USD]}", {"orders": [{"currency": "CNY"}]}, False),
        ("{field: 'orders[0].currency', equals: USD}", {"orders": [{"currency": "CNY"}, {"currency": "USD"}]}, False),
    ],
)
def test_block_conditions(condition, record, blocked):
    r = route(["{field: name, action: mask}"], block=[f"when: {condition}\n        reason: stop"])
    out = r.process(orjson.dumps(record))
    if blocked:
        assert out == Outcome(BLOCK, None, "stop")
        assert r.stats.blocked == {"stop": 1} and r.stats.produced == 0
    else:
        assert out.kind == SINK
        assert r.stats.blocked == {}


def test_first_matching_block_wins_and_block_precedes_failures():
    r = route(STANDARD, block=["when: {field: a, equals: 1}\n        reason: first",
                               "when: {field: b, equals: 1}\n        reason: second"])
    assert r.process(orjson.dumps({"a": 1, "b": 1})).reason == "first"
    assert r.process(orjson.dumps({"b": 1, "card": "1"})).reason == "second"    # unprotectable, but blocked first
    assert r.stats.blocked == {"first": 1, "second": 1}
    assert r.stats.dead_lettered == {}


# ----------------------------------------------------------------------------- allow-list
@pytest.mark.parametrize(
    "rules,record,expected",
    [
        (["{field: a, action: keep}"], {"a": 1, "b": 2}, {"a": 1}),
        (["{field: a, action: keep}"], {"b": 2}, {}),
        (["{field: a, action: keep}"], {"a": {"x": [1, {"y": 2}]}, "b": 2}, {"a": {"x": [1, {"y": 2}]}}),
        (["{field: a.b, action: keep}"], {"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1}}),
        (["{field: a.b, action: keep}"], {"a": "flat"}, {}),                   # wrong type: removed
        (["{field: a.b, action: keep}"], {"a": [{"b": 1}]}, {"a": []}),           # array where object listed: emptied
        (["{field: 'a[*].b', action: keep}"], {"a": [{"b": 1, "c": 2}, {"c": 3}, 5]}, {"a": [{"b": 1}, {}]}),
        (["{field: 'a[1]', action: keep}"], {"a": [10, 11, 12]}, {"a": [11]}),
        (["{field: 'a[*]', action: keep}"], {"a": [10, {"x": 1}]}, {"a": [10, {"x": 1}]}),
        (["{field: 'a[*].b', action: keep}", "{field: 'a[0].c', action: keep}"],
         {"a": [{"b": 1, "c": 2, "d": 3}, {"b": 4, "c": 5}]}, {"a": [{"b": 1, "c": 2}, {"b": 4}]}),
        (["{field: 'a[*].b.x', action: keep}", "{field: 'a[1].b.y', action: keep}"],
         {"a": [{"b": {"x": 1, "y": 2}}, {"b": {"x": 3, "y": 4, "z": 5}}]}, {"a": [{"b": {"x": 1}}, {"b": {"x": 3, "y": 4}}]}),
        (["{field: 'a[*]', action: keep}", "{field: 'a[0].c', action: keep}"],
         {"a": [{"c": 1, "d": 2}, {"d": 3}]}, {"a": [{"c": 1, "d": 2}, {"d": 3}]}),
        (["{field: a, action: keep}", "{field: a.b, action: keep}"], {"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 2}}),
        (["{field: '\"x.y\"', action: keep}"], {"x.y": 1, "x": {"y": 2}}, {"x.y": 1}),
        # transformed fields are listed; drop rules are not
        (["{field: n, action: mask}", "{field: d, action: drop}"], {"n": "ab", "d": 1, "o": 2}, {"n": "**"}),
        (["{field: n, action: redact}", "{field: 'l[*].c', action: fpe, key: k}"],
         {"n": {"deep": 1}, "l": [{"c": "4111111111111111", "z": 1}], "o": 1},
         None),
    ],
)
def test_unlisted_fields_drop(rules, record, expected):
    r = route(rules, unlisted="drop")
    out = orjson.loads(r.process(orjson.dumps(record)).value)
    if expected is None:   # last row: check shape only, the FPE value is tested elsewhere
        assert set(out) == {"n", "l"} and out["n"] is None and set(out["l"][0]) == {"c"}
        assert out["l"][0]["c"] != "4111111111111111" and out["l"][0]["c"].isdigit()
    else:
        assert out == expected


def test_allow_list_prunes_before_transforms_count():
    r = route(["{field: a, action: keep}", "{field: b, action: mask}"], unlisted="drop")
    r.process(orjson.dumps({"b": "x", "z": 1}))
    assert r.stats.transforms == [0, 1] and r.stats.unmatched == [1, 0]


# ----------------------------------------------------------------------------- counters
def test_counters_are_exact():
    r = route(STANDARD + ["{field: 'o[*].c', action: mask}"],
              block=["when: {field: consent, equals: false}\n        reason: consent-withdrawn"])
    payloads = [
        {"name": "Ada", "email": "a@b.c", "o": [{"c": "x"}, {"c": "y"}, {}]},         # sink
        {"name": "Bob", "secret": 1},                                                 # sink
        {"consent": False, "name": "Cy"},                                             # block
        {"card": "123"},                                                              # dead-letter
        {"o": []},                                                                    # sink
    ]
    outs = [r.process(orjson.dumps(p)) for p in payloads] + [r.process(b"{bad"), r.process(None), r.process(b"[]")]
    assert [o.kind for o in outs] == [SINK, SINK, BLOCK, DEAD_LETTER, SINK, DEAD_LETTER, SINK, DEAD_LETTER]
    st = r.stats
    assert (st.consumed, st.produced) == (8, 4)
    assert st.blocked == {"consent-withdrawn": 1}
    assert st.dead_lettered == {"fpe-domain-too-small": 1, "invalid-json": 1, "not-an-object": 1}
    # rule order: name, card, email, phone, secret, o[*].c; counted for the 3 protected records only
    assert st.transforms == [2, 0, 1, 0, 1, 2]
    assert st.unmatched == [1, 3, 2, 3, 2, 2]
    assert sum(st.latency_buckets) == 8 and len(st.latency_buckets) == len(LATENCY_BUCKETS) + 1
    assert st.latency_sum > 0

    snap = st.drain()
    assert isinstance(snap, RouteStats)
    assert (snap.consumed, snap.produced, snap.transforms, snap.blocked) == (8, 4, [2, 0, 1, 0, 1, 2], {"consent-withdrawn": 1})
    assert (r.stats.consumed, r.stats.produced, r.stats.blocked, r.stats.dead_lettered) == (0, 0, {}, {})
    assert r.stats.transforms == [0] * 6 and r.stats.unmatched == [0] * 6
    assert r.stats.latency_buckets == [0] * (len(LATENCY_BUCKETS) + 1) and r.stats.latency_sum == 0.0
    r.process(orjson.dumps({"name": "Dee"}))
    assert r.stats.transforms == [1, 0, 0, 0, 0, 0] and snap.transforms == [2, 0, 1, 0, 1, 2]


def test_rule_labels_and_actions():
    r = route(["{field: a, action: mask, name: the-a}", "{field: 'b[*]', action: drop}"])
    assert r.rule_labels == ["the-a", "b[*]"]
    assert r.rule_actions == ["mask", "drop"]


# ----------------------------------------------------------------------------- reveal
def test_reveal_restores_fpe_fields_only():
    r = route(["{field: card, action: fpe, key: k}", "{field: 'o[*].c', action: fpe, key: k, name: oc, alphabet: alnum}",
               "{field: name, action: mask}", "{field: email, action: pseudonymize, key: k}"])
    rec = {"card": "4111 1111 1111 1111", "o": [{"c": "AB12-cd34"}, {"c": None}], "name": "Ada", "email": "e@x.y"}
    prot = orjson.loads(r.process(orjson.dumps(rec)).value)
    assert prot["card"] != rec["card"] and prot["o"][0]["c"] != rec["o"][0]["c"]
    back, labels = r.reveal(orjson.loads(orjson.dumps(prot)))
    assert labels == ["card", "oc"]
    assert back["card"] == rec["card"] and back["o"] == rec["o"]
    assert back["name"] == prot["name"] and back["email"] == prot["email"]     # one-way fields stay protected
    only, labels = r.reveal(orjson.loads(orjson.dumps(prot)), ["oc"])
    assert labels == ["oc"] and only["card"] == prot["card"] and only["o"] == rec["o"]
    assert r.reveal({"name": "x"}) == ({"name": "x"}, [])


def test_reveal_raises_record_error_for_unrevealable_values():
    from proxy.errors import RecordError
    r = route(["{field: card, action: fpe, key: k}"])
    with pytest.raises(RecordError) as ei:
        r.reveal({"card": "123"})
    assert (ei.value.stage.value, ei.value.reason.value, ei.value.rule) == ("transform", "fpe-domain-too-small", "card")
    assert "123" not in str(ei.value)


# ----------------------------------------------------------------------------- compile_policy
SECOND_ROUTE = """  - name: r2
    source: in2.t
    sink: out2.t
    dead_letter: dlq2.t
    dead_letter_key: dlq
    consumer_group: custom-group
    rules:
      - {field: x, action: mask}
"""


def test_compile_selected_routes_and_groups():
    lp = load_policy_text(policy(["{field: a, action: mask}"], extra_routes=SECOND_ROUTE), "p.yaml")
    cp = compile_policy(lp, environ=KEYS)
    assert [r.name for r in cp.routes] == ["r", "r2"]
    assert cp.route("r").group == "dpp.unit.r" and cp.route("r2").group == "custom-group"
    assert (cp.route("r2").source, cp.route("r2").sink, cp.route("r2").dead_letter) == ("in2.t", "out2.t", "dlq2.t")
    assert cp.route("r").dead_letter_key == bytes.fromhex(KEYS["DLQ"])
    assert cp.provenance == lp.provenance
    with pytest.raises(KeyError):
        cp.route()
    with pytest.raises(KeyError):
        cp.route("nope")
    only = compile_policy(lp, environ={"DLQ": KEYS["DLQ"]}, routes=["r2"])   # K is not needed by r2
    assert [r.name for r in only.routes] == ["r2"] and only.route().name == "r2"


def test_compile_refuses_wrong_key_lengths():
    lp = load_policy_text(policy(["{field: a, action: fpe, key: k}"]), "p.yaml")
    with pytest.raises(PolicyError) as ei:
        compile_policy(lp, environ={"K": "33" * 20, "DLQ": KEYS["DLQ"]})
    line = lp.line_of(("routes", 0))
    assert line is not None
    assert ei.value.problems == [("p.yaml", line, "routes[0]", "key 'k' for fpe rule a: 20 bytes; AES needs 16, 24 or 32")]
    with pytest.raises(PolicyError) as ei:
        compile_policy(lp, environ={"K": KEYS["K"], "DLQ": "44" * 20})
    assert ei.value.problems == [("p.yaml", line, "routes[0]",
                                  "key 'dlq' for dead_letter_key of route r: 20 bytes; AES needs 16, 24 or 32")]
    assert "33" * 20 not in str(ei.value) and "44" * 20 not in str(ei.value)
