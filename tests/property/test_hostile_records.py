"""Hostile records (``tests/hostilekit.py``) through both record paths, compiled from the same
random valid policy (and from ``policies/examples/customer-pii.yaml``): no exception escapes, each
record ends as a sink output, a dead-letter outcome or a counted block, the reference path and the
batch paths (pure Python and the C accelerator) agree in bytes, outcomes and counters, and no
original string (>= 4 characters) of a field under mask/fpe/pseudonymize/tokenize/drop/redact is in
the output. The oracle is :class:`loadtests.fuzz.RecordOracle` (the atheris target's)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from loadtests.fuzz import EXAMPLE, RecordOracle, _counters  # noqa: E402

from hostilekit import hostile_values, json_text, policies  # noqa: E402
from proxy.errors import PolicyError  # noqa: E402
from proxy.formats import json as pjson  # noqa: E402

EXAMPLE_ORACLE = RecordOracle(EXAMPLE.read_text(), str(EXAMPLE))
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


def _batch_agrees(oracle: RecordOracle, values: list) -> None:
    """The whole list as one batch gives what the reference path gives record by record."""
    want = [oracle.ref.process(v) for v in values]
    want_counts = _counters(oracle.ref)
    for name, r in oracle.batches:
        assert r.process_batch(values) == want, name
        assert _counters(r) == want_counts, name


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
@given(text=policies(), values=st.lists(hostile_values(), min_size=1, max_size=4))
def test_hostile_records_under_random_policies(text, values):
    try:
        oracle = RecordOracle(text, "hostile.yaml")
    except PolicyError:
        assume(False)
    for v in values:
        assert oracle.check(v) == []
    _batch_agrees(oracle, values)


@settings(max_examples=120, deadline=None, suppress_health_check=SLOW)
@given(values=st.lists(hostile_values(), min_size=1, max_size=3))
def test_hostile_records_under_the_example_policy(values):
    for v in values:
        assert EXAMPLE_ORACLE.check(v) == []
    _batch_agrees(EXAMPLE_ORACLE, values)


CDC = EXAMPLE.parent / "debezium-cdc.yaml"
CDC_ORACLE = RecordOracle(CDC.read_text(), str(CDC))
TEXTS = st.text(max_size=12) | st.sampled_from(["13900001111", "zhang.wei@example.com", "6222021234567890128",
                                                 "11010519491231002X", "张伟"])
ANY = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | TEXTS, lambda kids: st.lists(kids, max_size=3)
                   | st.dictionaries(st.sampled_from(["name", "email", "payer", "card_number", "x"]), kids, max_size=3),
                   max_leaves=8)
ROW = st.fixed_dictionaries({}, optional={k: ANY | TEXTS for k in (
    "id", "name", "email", "mobile", "id_number", "address", "payer", "card_number", "segment")})
EVENT = st.fixed_dictionaries({"before": st.none() | ROW | ANY, "after": st.none() | ROW | ANY},
                              optional={"op": st.sampled_from(["c", "u", "d", "r"]), "ts_ms": st.integers(0, 2**41),
                                        "source": st.dictionaries(st.sampled_from(["db", "table"]), ANY, max_size=2),
                                        "card_number": TEXTS})


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW)
@given(events=st.lists(EVENT, min_size=1, max_size=4))
def test_change_events_under_the_cdc_example_policy(events):
    """Debezium-shaped events (rows, nulls, rows of the wrong shape) through the example's
    wildcard and rule-set rules: no ruled original leaks, and the batch paths agree."""
    values = [orjson.dumps(e) for e in events]
    for v in values:
        assert CDC_ORACLE.check(v) == []
    _batch_agrees(CDC_ORACLE, values)


# ------------------------------------------------------------------ the big-integer screen and parse
@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=80) | st.text(st.sampled_from("0123456789 -:,[]\"a\n\t"), max_size=80))
def test_big_int_screen_in_c_equals_the_python_screen(data):
    assert pjson.big_int_literal(data) == pjson.big_int_literal_py(data)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW)
@given(text=json_text())
def test_exact_parse_equals_orjson_where_orjson_is_exact(text):
    data = text.encode("utf-8", "surrogatepass")
    try:
        fast = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    exact = pjson.loads_exact(data)
    # same tree, same types; only floats that came from integers beyond 64 bits differ
    def same(a, b):
        if type(a) is float and type(b) is int:
            return not (-(2**63) <= b <= 2**64 - 1) and float(b) == a
        if type(a) is not type(b):
            return False
        if type(a) is dict:
            return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        if type(a) is list:
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b or (a != a and b != b)
    assert same(fast, exact)
    assert pjson.loads_record(data) == (exact if pjson.big_int_literal(data) else fast)
    if type(exact) in (dict, list):
        assert json.loads(pjson.dumps_record(exact)) == json.loads(json.dumps(exact))
