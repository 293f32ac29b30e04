"""Properties of ``dpp diff`` (proxy/policydiff.py): output paths differ exactly when two JSON values
differ, and one policy compiled twice with test keys gives the same outcome for any record, so an
unchanged policy never shows a change (also crypto-shredding routes, whose subject keys are random)."""
from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.policy.loader import load_policy
from proxy.policydiff import differing_paths, sample_diff
from proxy.policytest import _same, compile_for_tests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "policies" / "examples"

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=12)
objects = st.dictionaries(st.text(max_size=4), json_values, max_size=4)


@given(objects, objects)
def test_paths_differ_exactly_when_the_values_differ(a, b):
    assert bool(differing_paths(a, b)) == (not _same(a, b))
    assert differing_paths(a, b) == differing_paths(b, a)
    assert not differing_paths(a, a)


FIELDS = ["customer_id", "name", "id_number", "mobile", "email", "bank_card", "note", "consent", "orders", "address"]
record_values = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(orjson.dumps)
raw_values = record_values | st.binary(max_size=20) | st.none()


def _routes(name: str):
    loaded = load_policy(EXAMPLES / name)
    a, b = compile_for_tests(loaded), compile_for_tests(loaded)
    return [(a.route(r.name), b.route(r.name)) for r in loaded.policy.routes]


PAIRS = {name: _routes(name) for name in ("customer-pii.yaml", "crypto-shredding.yaml", "support-minimum-necessary.yaml")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PAIRS)), st.lists(raw_values, min_size=1, max_size=5))
def test_an_unchanged_policy_shows_no_change_on_any_record(name, values):
    for old, new in PAIRS[name]:
        sd, counts = sample_diff(old, new, values, targets=[r.field for r in old.rules if r.field])
        assert sd.records == len(values) and sd.old == sd.new
        assert not sd.moves and not sd.changed and not sd.leaks and not any(counts.values())
