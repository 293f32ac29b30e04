"""Purposes: a route's ``purpose:`` slug, ``dpp_route_info{route,purpose}``, the ``not_equals``
block condition, and the example policy that routes one source to one sink per purpose
(policies/examples/purposes.yaml), with records run through every route on both record paths."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from policykit import load_error_lines
from proxy.generator import generate_records
from proxy.metrics import Metrics
from proxy.policy.compiler import BLOCK, SINK, compile_policy
from proxy.policy.loader import load_policy, load_policy_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policies" / "examples" / "purposes.yaml"
ENV = {"DPP_KEY_PSEUDONYM": "11" * 32, "DPP_KEY_DEAD_LETTER": "22" * 32}
IDENTIFYING = ("id_number", "bank_card", "birth_date", "mobile")


@pytest.fixture(scope="module")
def cp():
    return compile_policy(load_policy(EXAMPLE), environ=ENV)


@pytest.fixture(scope="module")
def records():
    recs = list(generate_records(300, seed=12))
    # consent states the generator does not make: the marketing route must block all of them
    extra = [dict(recs[0], consent={"analytics": True}), dict(recs[1], consent=None),
             {k: v for k, v in recs[2].items() if k != "consent"}, dict(recs[3], consent={"marketing": "true"}),
             dict(recs[4], consent={"marketing": 1}), dict(recs[5], consent="yes")]
    return recs + extra


def test_every_route_declares_its_purpose(cp):
    assert {r.name: r.purpose for r in cp.routes} == {
        "crm-to-analytics": "analytics", "crm-to-support": "support", "crm-to-marketing": "marketing"}
    assert len({r.source for r in cp.routes}) == 1 and len({r.sink for r in cp.routes}) == 3


def _outcomes(route, values):
    """Reference path per record and batch path, which must agree (bytes, kind, reason)."""
    ref = [route.process(v) for v in values]
    route.stats.drain()
    fast = route.process_batch(values)
    route.stats.drain()
    assert [(o.kind, o.value, o.reason) for o in fast] == [(o.kind, o.value, o.reason) for o in ref]
    return ref


def test_analytics_gets_pseudonyms_only(cp, records):
    route = cp.route("crm-to-analytics")
    for rec, out in zip(records, _outcomes(route, [orjson.dumps(r) for r in records])):
        consent = rec.get("consent")
        if type(consent) is dict and consent.get("analytics") is False:
            assert (out.kind, out.reason) == (BLOCK, "consent-withdrawn")
            continue
        assert out.kind == SINK, out
        got = orjson.loads(out.value)
        assert got["customer_id"].startswith("cus_") and got["customer_id"] != rec["customer_id"]
        assert got["email"].startswith("em_")
        assert not set(got) & {"name", "note", *IDENTIFYING}
        assert set(got.get("address", {})) <= {"city"}


def test_support_gets_masked_contact_data(cp, records):
    route = cp.route("crm-to-support")
    for rec, out in zip(records, _outcomes(route, [orjson.dumps(r) for r in records])):
        if out.kind != SINK:  # a note with an unscannable value: dead-lettered, never passed
            assert out.kind == "dead_letter"
            continue
        got = orjson.loads(out.value)
        assert got["name"][0] == rec["name"][0] and "*" in got["name"] and got["name"] != rec["name"]
        assert got["mobile"] != rec["mobile"] and got["mobile"][-4:] == rec["mobile"][-4:]
        assert got["email"] != rec["email"] and len(got["email"]) == len(rec["email"])
        assert not set(got) & {"address", "id_number", "bank_card", "birth_date", "consent"}


def test_marketing_gets_consenting_customers_only(cp, records):
    route = cp.route("crm-to-marketing")
    outs = _outcomes(route, [orjson.dumps(r) for r in records])
    passed = 0
    for rec, out in zip(records, outs):
        consent = rec.get("consent")
        consented = type(consent) is dict and consent.get("marketing") is True
        if not consented:
            assert (out.kind, out.reason) == (BLOCK, "consent-missing")
            continue
        passed += 1
        got = orjson.loads(out.value)
        assert got["email"] == rec["email"] and set(got) <= {"customer_id", "name", "email", "locale", "segment"}
    assert 0 < passed < len(records)


@pytest.mark.parametrize("consent, blocked", [
    ({"marketing": True}, False),
    ({"marketing": False}, True),
    ({"marketing": None}, True),
    ({"marketing": "true"}, True),
    ({"marketing": 1}, True),
    ({}, True),
    (None, True),
    ("granted", True),
    ("<absent>", True),
])
def test_not_equals_blocks_unless_the_value_is_stated(cp, consent, blocked):
    route = cp.route("crm-to-marketing")
    rec = {"customer_id": "C1", "email": "a@example.com"}
    if consent != "<absent>":
        rec["consent"] = consent
    outs = _outcomes(route, [orjson.dumps(rec)])
    assert (outs[0].kind == BLOCK) is blocked


POLICY = """version: 1
name: p
keys: {k: {source: env, name: K}}
routes:
  - name: r1
    purpose: {purpose}
    source: a
    sink: b
    dead_letter: c
    dead_letter_key: k
    block:
      - when: {when}
        reason: blocked-test
"""


@pytest.mark.parametrize("purpose, when, problem", [
    ("Analytics", "{field: x, equals: 1}", "routes[0].purpose"),
    ("'has space'", "{field: x, equals: 1}", "routes[0].purpose"),
    ("analytics", "{field: x, equals: 1, not_equals: 2}", "routes[0].block[0].when"),
    ("analytics", "{field: x}", "routes[0].block[0].when"),
])
def test_bad_purpose_or_condition_fails_at_load(purpose, when, problem):
    lines = load_error_lines(POLICY.replace("{purpose}", purpose).replace("{when}", when), "bad.yaml")
    assert any(line.startswith("bad.yaml:") and f": {problem}: " in line for line in lines), lines


def test_route_info_exports_each_purpose_and_none(cp):
    m = Metrics()
    m.register_policy(cp)
    for r in cp.routes:
        assert m.registry.get_sample_value("dpp_route_info", {"route": r.name, "purpose": r.purpose}) == 1
    plain = compile_policy(load_policy_text(POLICY.replace("    purpose: {purpose}\n", "").replace(
        "{when}", "{field: x, equals: 1}"), "p.yaml"), environ={"K": "33" * 32})
    m.register_policy(plain)  # a reload replaces the routes' series
    assert m.registry.get_sample_value("dpp_route_info", {"route": "r1", "purpose": ""}) == 1
    assert m.registry.get_sample_value("dpp_route_info", {"route": "crm-to-marketing", "purpose": "marketing"}) is None
