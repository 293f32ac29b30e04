"""Consent per purpose (route ``consent:``): the consent document format, the table (memory, then
on disk), and the check on every record path (reference, pure-Python batch, C accelerator) with the
same outcomes and counters; load errors."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policykit import KEYS, load_error_lines, policy_text, routes_on_every_path, same_on_every_path
from proxy.policy import consent as cs
from proxy.policy.compiler import BLOCK, DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text


def doc(subject: str, **purposes: str) -> bytes:
    return cs.consent_document(subject, purposes, "2026-12-07T10:00:00.000+00:00")


# ------------------------------------------------------------------------------ the document
@pytest.mark.parametrize("key, value, want", [
    (b"C1", doc("C1", analytics="granted"), ("C1", {"analytics": cs.GRANTED})),
    (b"C1", doc("C1", analytics="granted", marketing="withdrawn"),
     ("C1", {"analytics": cs.GRANTED, "marketing": cs.WITHDRAWN})),
    (b"C1", doc("C1"), ("C1", {})),
    (b"C1", None, ("C1", None)),                                         # tombstone
    ("张三".encode(), doc("张三", support="granted"), ("张三", {"support": cs.GRANTED})),
])
def test_parse_consent(key, value, want):
    assert cs.parse_consent(key, value) == want


@pytest.mark.parametrize("key, value", [
    (None, doc("C1", analytics="granted")),                              # no key: cannot be attributed
    (b"", doc("", analytics="granted")),
    (b"\xff", doc("x", analytics="granted")),
    (b"x" * 257, None),
    (b"C1", b"not json"),
    (b"C1", b"[1]"),
    (b"C1", doc("C2", analytics="granted")),                             # subject is not the key
    (b"C1", orjson.dumps({"subject": "C1", "purposes": {"analytics": "yes"}})),
    (b"C1", orjson.dumps({"subject": "C1", "purposes": ["analytics"]})),
    (b"C1", orjson.dumps({"subject": "C1"})),
])
def test_parse_consent_refuses(key, value):
    with pytest.raises(cs.ConsentFormatError) as e:
        cs.parse_consent(key, value)
    assert "C1" not in str(e.value) and "C2" not in str(e.value)         # no subject id in the message


# ------------------------------------------------------------------------------ the table
@pytest.mark.parametrize("memory_subjects", [0, 2, 1000])
def test_table_states(memory_subjects, tmp_path):
    t = cs.ConsentTable(memory_subjects=memory_subjects, spill_dir=str(tmp_path / "spill"))
    a, m = t.purpose_index("analytics"), t.purpose_index("marketing")
    t.apply("C1", {"analytics": cs.GRANTED, "marketing": cs.WITHDRAWN})
    t.apply("C2", {"marketing": cs.GRANTED})
    t.apply("C3", {})
    t.mark_unreadable("C4")
    assert [t.state(s, a) for s in ("C1", "C2", "C3", "C4", "C5")] == [
        cs.GRANTED, cs.NO_DECISION, cs.NO_DECISION, cs.UNREADABLE, cs.NO_DECISION]
    assert [t.state(s, m) for s in ("C1", "C2")] == [cs.WITHDRAWN, cs.GRANTED]
    assert len(t) == 4 and t.on_disk == max(0, 4 - memory_subjects)
    t.apply("C1", {"analytics": cs.WITHDRAWN})                           # the whole state is replaced
    assert (t.state("C1", a), t.state("C1", m)) == (cs.WITHDRAWN, cs.NO_DECISION)
    t.apply("C4", {"analytics": cs.GRANTED})                             # readable again
    assert t.state("C4", a) == cs.GRANTED
    t.apply("C2", None)                                                  # tombstone: removed
    assert t.state("C2", m) == cs.NO_DECISION and len(t) == 3
    assert t.state("C1", None) == cs.NO_DECISION                         # an untracked purpose: never granted
    assert "C1" not in repr(t)
    t.close()


def test_the_disk_holds_no_subject_id(tmp_path):
    t = cs.ConsentTable(memory_subjects=0, spill_dir=str(tmp_path / "spill"))
    t.apply("subject-4711@example.com", {"analytics": cs.GRANTED})
    t.close()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "spill").rglob("*") if p.is_file())
    assert blob and b"subject-4711" not in blob


def test_purposes_beyond_the_limit_are_ignored():
    t = cs.ConsentTable()
    first = t.purpose_index("analytics")
    t.apply("C1", {f"p{i}": cs.GRANTED for i in range(cs.MAX_PURPOSES + 5)})
    assert t.ignored_purposes == 6 and t.state("C1", first) == cs.NO_DECISION
    assert t.purpose_index("late") is None


@given(ops=st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3", "C4", "C5"]),
                              st.none() | st.just("bad") | st.dictionaries(
                                  st.sampled_from(["analytics", "marketing"]),
                                  st.sampled_from([cs.GRANTED, cs.WITHDRAWN]))), max_size=30),
       memory=st.integers(0, 6))
@settings(max_examples=60, deadline=None)
def test_table_equals_a_dict_model(ops, memory, tmp_path_factory):
    """Whatever the memory bound, the table answers like a plain dict of the last states."""
    t = cs.ConsentTable(memory_subjects=memory, spill_dir=str(tmp_path_factory.mktemp("spill")))
    model: dict = {}
    for subject, state in ops:
        if state == "bad":
            t.mark_unreadable(subject)
            model[subject] = "bad"
        else:
            t.apply(subject, state)
            if state is None:
                model.pop(subject, None)
            else:
                model[subject] = state
    for subject in ("C1", "C2", "C3", "C4", "C5"):
        for purpose in ("analytics", "marketing"):
            m = model.get(subject)
            want = (cs.NO_DECISION if m is None else cs.UNREADABLE if m == "bad"
                    else m.get(purpose, cs.NO_DECISION))
            assert t.state(subject, t.purpose_index(purpose)) == want
    assert len(t) == len(model)
    t.close()


# ------------------------------------------------------------------------------ the route
def _text(unknown: str = "block", field: str = "customer_id") -> str:
    return policy_text(["{field: name, action: mask, keep_first: 1}", "{field: customer_id, action: pseudonymize, key: k}"],
                       block=["{when: {field: test, equals: true}, reason: test-record}"],
                       route=f"    purpose: marketing\n    consent: {{subject_field: {field}, topic: crm.consent, unknown: {unknown}}}\n")


TABLE = [("C1", {"marketing": cs.GRANTED}), ("C2", {"marketing": cs.WITHDRAWN}),
         ("C3", {"analytics": cs.GRANTED}), ("7", {"marketing": cs.GRANTED}), ("C4", "bad")]


def _routes(text: str, monkeypatch, table=TABLE) -> list:
    """The reference route, then the batch paths this build has, sharing one consent table."""
    t = cs.ConsentTable()
    for s, state in table:
        t.mark_unreadable(s) if state == "bad" else t.apply(s, state)
    return routes_on_every_path(text, monkeypatch, "consent.yaml", lambda r: setattr(r, "consent_table", t))


def _run(text, values, monkeypatch, table=TABLE) -> list:
    return same_on_every_path(_routes(text, monkeypatch, table), values)


# (subject value, expected with unknown: block, expected with unknown: allow)
CASES = [
    ("C1", "sink", "sink"),
    ("C2", "consent-withdrawn", "consent-withdrawn"),
    ("C3", "consent-missing", "sink"),             # a decision for another purpose only
    ("C9", "consent-missing", "sink"),             # unknown subject
    ("C4", "consent-missing", "consent-missing"),  # unreadable consent record: blocks anyway
    (7, "sink", "sink"),                           # an integer id is its decimal text
    ("7", "sink", "sink"),
    ("", "dead", "dead"),
    (None, "dead", "dead"),
    (True, "dead", "dead"),
    (7.0, "dead", "dead"),
    (["C1"], "dead", "dead"),
    ({"id": "C1"}, "dead", "dead"),
    ("x" * 257, "dead", "dead"),
    ("<absent>", "dead", "dead"),
]


@pytest.mark.parametrize("unknown", ["block", "allow"])
@pytest.mark.parametrize("subject, if_block, if_allow", CASES, ids=[f"{i}" for i in range(len(CASES))])
def test_consent_outcomes_on_every_path(subject, if_block, if_allow, unknown, monkeypatch):
    rec = {"name": "Alice"}
    if subject != "<absent>":
        rec["customer_id"] = subject
    (out,) = _run(_text(unknown), [orjson.dumps(rec)], monkeypatch)
    expected = if_block if unknown == "block" else if_allow
    if expected == "sink":
        got = orjson.loads(out.value)
        assert out.kind == SINK and got["name"] == "A****" and got["customer_id"] != subject
    elif expected == "dead":
        assert (out.kind, out.reason, out.stage, out.rule) == (DEAD_LETTER, "subject-missing", "block", "consent")
    else:
        assert (out.kind, out.reason) == (BLOCK, expected)


def test_block_conditions_and_retention_come_first(monkeypatch):
    text = _text().replace("    consent:", "    retention: {field: at, max_age: 1d}\n    consent:")
    values = [orjson.dumps(r) for r in (
        {"test": True, "customer_id": "C2", "at": "garbage"},           # the block condition decides
        {"customer_id": "C2", "at": "2000-01-01T00:00:00Z"},           # then retention
        {"customer_id": "C2", "at": "2999-01-01T00:00:00Z"},           # then consent
    )]
    outs = _run(text, values, monkeypatch)
    assert [o.reason for o in outs] == ["test-record", "retention-expired", "consent-withdrawn"]


def test_a_withdrawal_applies_to_the_next_record(monkeypatch):
    ref, *batch = _routes(_text(), monkeypatch)
    v = orjson.dumps({"customer_id": "C1", "name": "Bob"})
    assert ref.process(v).kind == SINK
    ref.consent_table.apply("C1", {"marketing": cs.WITHDRAWN})        # the table all paths share
    for r in [ref] + batch:
        assert r.process(v).reason == "consent-withdrawn"
        assert r.process_batch([v])[0].reason == "consent-withdrawn"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3", "1", "2"]),
                                st.just("bad") | st.dictionaries(st.sampled_from(["marketing", "analytics"]),
                                                                 st.sampled_from([cs.GRANTED, cs.WITHDRAWN]))),
                      max_size=6),
       ids=st.lists(st.sampled_from(["C1", "C2", "C3", "C9", 1, 2, None, "", True, 1.5]), min_size=1, max_size=10),
       unknown=st.sampled_from(["block", "allow"]))
def test_batch_paths_equal_the_reference_path(table, ids, unknown, monkeypatch):
    values = [orjson.dumps({"customer_id": i, "name": "Eve"}) for i in ids] + [b"{", b"[]", None]
    _run(_text(unknown), values, monkeypatch, table)


@pytest.mark.parametrize("route_lines, where", [
    ("    consent: {subject_field: customer_id, topic: crm.consent}\n", "routes[0]"),      # no purpose
    ("    purpose: p\n    consent: {subject_field: customer_id, topic: in.t}\n", "routes[0]"),
    ("    purpose: p\n    consent: {subject_field: customer_id, topic: crm.consent, unknown: pass}\n",
     "routes[0].consent.unknown"),
    ("    purpose: p\n    consent: {topic: crm.consent}\n", "routes[0].consent.subject_field"),
    ("    purpose: p\n    consent: {subject_field: 'a[', topic: crm.consent}\n", "routes[0].consent.subject_field"),
    ("    purpose: p\n    consent: {subject_field: a, topic: crm.consent, purpose: Bad Purpose}\n",
     "routes[0].consent.purpose"),
])
def test_load_errors(route_lines, where):
    lines = load_error_lines(policy_text(["{field: a, action: mask}"], route=route_lines), "c.yaml")
    assert len(lines) == 1 and f": {where}" in lines[0], lines
    assert lines[0].startswith("c.yaml:"), lines


def test_consent_purpose_overrides_the_routes():
    text = _text().replace("topic: crm.consent,", "topic: crm.consent, purpose: analytics,")
    r = compile_policy(load_policy_text(text, "c.yaml"), environ=KEYS).route()
    r.consent_table.apply("C3", {"analytics": cs.GRANTED})
    assert r.process(orjson.dumps({"customer_id": "C3"})).kind == SINK
    assert r.process(orjson.dumps({"customer_id": "C1"})).reason == "consent-missing"

