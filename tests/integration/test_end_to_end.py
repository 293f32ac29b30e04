"""End to end on the real broker: ``dpp run`` (a subprocess) with a copy of the example policy.

In: 10,000 generated customer records (key = ``record_id``, some with headers), 20 malformed
payloads (unique keys) and one tombstone. Out, read back with kafka-python: every record is in
the sink exactly once, in the dead-letter topic, or a counted block; the counts match the
proxy's metrics; no personal value is left in clear anywhere; masked and FPE fields keep their
format and FPE decrypts back; dead-letter payloads open to exactly the original bytes.
"""
from __future__ import annotations

import copy

import orjson
import pytest

from proxy.crypto.ff1 import FF1
from proxy.errors import Reason
from proxy.generator import malformed_cases
from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy
from proxy.stream.deadletter import open_envelope

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, check_fpe, check_masked, drain, generated_records,
                      metric, personal_values, produce, read_topic, route_setup)  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

N_RECORDS = 10_000
N_MALFORMED = 20
ROUTE = "crm-to-analytics"
DLQ_HEADERS = ("dpp.source.topic", "dpp.source.partition", "dpp.source.offset", "dpp.route", "dpp.stage",
               "dpp.reason", "dpp.error.class")
NOT_OBJECT_KINDS = {"array", "string", "phone_string", "number", "null", "boolean"}
# FF1 tweak of each fpe rule: its binding "field:<policy>:<field path>" (proxy.transforms.fpe).
TWEAKS = {"id_number": b"field:customer-pii:id_number", "bank_card": b"field:customer-pii:bank_card",
          "card_number": b"field:customer-pii:orders[*].card_number"}


def source_headers(i: int) -> list[tuple[str, bytes]] | None:
    """Headers of generated record ``i``: none, one, several, or a repeated name (order matters)."""
    if i % 4 == 0:
        return None
    hs = [("trace-id", f"tr-{i:06d}".encode())]
    if i % 4 >= 2:
        hs.append(("source-system", b"crm"))
    if i % 4 == 3:
        hs += [("x-dup", b"1"), ("x-dup", b"2")]
    return hs


def test_end_to_end(route_setup, demo_keys):
    rs = route_setup
    t = rs.topics
    records = generated_records(N_RECORDS)
    cases = malformed_cases(N_MALFORMED)
    src_by_key: dict[bytes, tuple] = {}   # key -> (kind, payload, headers, record|case)
    messages = []
    per_gap = N_RECORDS // N_MALFORMED
    for i, rec in enumerate(records):
        k, v, h = rec["record_id"].encode(), orjson.dumps(rec), source_headers(i)
        messages.append((k, v, h))
        src_by_key[k] = ("record", v, h, rec)
        if i % per_gap == per_gap - 1:
            j = i // per_gap
            mk, mh = f"malformed-{j:02d}".encode(), [("source-system", b"crm")]
            messages.append((mk, cases[j].payload, mh))
            src_by_key[mk] = ("malformed", cases[j].payload, mh, cases[j])
    tomb_key, tomb_headers = b"tombstone-0", [("trace-id", b"tombstone")]
    messages.append((tomb_key, None, tomb_headers))
    src_by_key[tomb_key] = ("tombstone", None, tomb_headers, None)
    total = len(messages)
    assert total == N_RECORDS + N_MALFORMED + 1 and len(src_by_key) == total
    produce(rs.bootstrap, t.source, messages)

    blocked_keys = {rec["record_id"].encode() for rec in records if rec["consent"]["analytics"] is False}
    malformed_keys = {k for k, s in src_by_key.items() if s[0] == "malformed"}
    sink_keys_expected = set(src_by_key) - blocked_keys - malformed_keys
    assert 0 < len(blocked_keys) < N_RECORDS  # the generator withdraws consent for ~5%

    with DppProcess(rs.policy, rs.bootstrap, rs.workdir) as dpp:
        dpp.wait_ready()
        m = drain(dpp, rs.bootstrap, t, total, timeout_s=240)
        assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr()

    source = read_topic(rs.bootstrap, t.source)
    sink = read_topic(rs.bootstrap, t.sink)
    dead = read_topic(rs.bootstrap, t.dead_letter)
    assert len(source) == total
    coords = {r.key: (r.partition, r.offset) for r in source}

    # -- counts: records and metrics ----------------------------------------------------------
    consumed = metric(m, "dpp_records_consumed_total", route=ROUTE)
    produced = metric(m, "dpp_records_produced_total", route=ROUTE)
    blocked_consent = metric(m, "dpp_records_blocked_total", route=ROUTE, reason="consent-withdrawn")
    blocked_all = metric(m, "dpp_records_blocked_total", route=ROUTE)
    dead_lettered = metric(m, "dpp_records_dead_lettered_total", route=ROUTE)
    print(f"\nend-to-end: consumed={consumed:.0f} sink={len(sink)} dead-letter={len(dead)} "
          f"blocked={blocked_all:.0f}")
    assert consumed == total
    assert blocked_all == blocked_consent == len(blocked_keys)
    assert len(sink) + len(dead) + blocked_all == total
    assert len(sink) == produced
    assert len(dead) == dead_lettered

    # -- where every source record went ----------------------------------------------------------
    sink_keys = [r.key for r in sink]
    assert len(sink_keys) == len(set(sink_keys)), "a record reached the sink more than once"
    assert set(sink_keys) == sink_keys_expected, (
        f"sink keys differ: missing {len(sink_keys_expected - set(sink_keys))}, "
        f"unexpected {len(set(sink_keys) - sink_keys_expected)}")
    dead_keys = [r.key for r in dead]
    assert len(dead_keys) == len(set(dead_keys)) and set(dead_keys) == malformed_keys
    assert not blocked_keys & (set(sink_keys) | set(dead_keys))

    # -- sink records ------------------------------------------------------------------------------
    provenance = load_policy(rs.policy).provenance
    assert provenance.startswith("customer-pii@") and len(provenance) > len("customer-pii@")
    prov_header = ("dpp-policy", provenance.encode())
    ff1 = FF1(bytes.fromhex(demo_keys["DPP_KEY_FPE"]), "0123456789")
    for r in sink:
        kind, _payload, src_headers, rec = src_by_key[r.key]
        # Source headers first, unchanged and in order; then the proxy's own (dpp-*) headers.
        n_src = len(src_headers or [])
        assert list(r.headers[:n_src]) == list(src_headers or []), f"source headers of {r.key!r} changed"
        added = r.headers[n_src:]
        assert all(k.startswith("dpp-") for k, _ in added), f"{r.key!r}: unexpected headers {added}"
        assert [h for h in added if h[0] == "dpp-policy"] == [prov_header], f"{r.key!r}: dpp-policy header"
        if kind == "tombstone":
            assert r.value is None, "a tombstone must stay a tombstone"
            continue
        assert r.value is not None
        raw_headers = b"".join(k.encode() + v for k, v in r.headers)
        for pv in personal_values(rec):
            assert pv.encode() not in r.value and pv.encode() not in raw_headers, (
                f"sink record {r.key!r} holds a personal value of its source in clear")
        check_sink_record(rec, orjson.loads(r.value), ff1, r.key)

    # Operator path: the compiled route (same policy, same keys) re-identifies the FPE fields.
    route = compile_policy(load_policy(rs.policy)).route(ROUTE)
    for r in sink[:: max(1, len(sink) // 50)]:
        if r.value is None:
            continue
        rec = src_by_key[r.key][3]
        revealed, labels = route.reveal(orjson.loads(r.value))
        assert revealed["id_number"] == rec["id_number"] and revealed["bank_card"] == rec["bank_card"]
        assert [o["card_number"] for o in revealed["orders"]] == [o["card_number"] for o in rec["orders"]]
        assert {"id_number", "bank_card"} <= set(labels)

    # -- dead-letter records -----------------------------------------------------------------------
    dlq_key = bytes.fromhex(demo_keys["DPP_KEY_DEAD_LETTER"])
    reasons = {x.value for x in Reason}
    for r in dead:
        kind, payload, src_headers, case = src_by_key[r.key]
        names = [k for k, _ in r.headers]
        for h in DLQ_HEADERS:
            assert names.count(h) == 1, f"dead-letter record {r.key!r}: header {h} missing or repeated"
        hd = {k: v.decode() for k, v in r.headers}
        assert hd["dpp.source.topic"] == t.source
        assert (int(hd["dpp.source.partition"]), int(hd["dpp.source.offset"])) == coords[r.key]
        assert hd["dpp.route"] == ROUTE
        assert hd["dpp.reason"] in reasons and hd["dpp.error.class"]
        if case.kind == "id_number_int_list":
            assert (hd["dpp.stage"], hd["dpp.reason"]) == ("transform", "unsupported-type"), case.kind
        elif case.kind in NOT_OBJECT_KINDS:
            assert (hd["dpp.stage"], hd["dpp.reason"]) == ("deserialize", "not-an-object"), case.kind
        elif case.kind == "deeply_nested":   # 5,000 levels: over limits.max_depth (default 128)
            assert (hd["dpp.stage"], hd["dpp.reason"]) == ("deserialize", "limit-depth"), case.kind
        else:
            assert (hd["dpp.stage"], hd["dpp.reason"]) == ("deserialize", "invalid-json"), case.kind
        assert r.value is not None and r.value != payload
        assert open_envelope(dlq_key, r.value, hd) == payload, f"dead-letter payload of {case.kind}"

    # -- no personal value in clear: dead-letter topic, sink topic, logs ------------------------
    malformed_pii = {p for c in cases for p in c.personal if p}
    assert malformed_pii, "malformed cases should carry personal values to look for"
    all_pii = malformed_pii | {p for rec in records for p in personal_values(rec)}
    dead_blob = b"\x00".join((r.value or b"") + b"\x00" + b"\x00".join(k.encode() + b"=" + v for k, v in r.headers)
                             for r in dead)
    leaked = [p for p in all_pii if p.encode() in dead_blob]
    assert not leaked, f"{len(leaked)} personal values in clear in the dead-letter topic"
    sink_blob = b"\x00".join((r.value or b"") + b"\x00" + b"\x00".join(v for _, v in r.headers) for r in sink)
    leaked = [p for p in malformed_pii if p.encode() in sink_blob]
    assert not leaked, f"{len(leaked)} personal values of malformed records in the sink"
    sample = {p for rec in records[::100] for p in personal_values(rec)}
    leaked = [p for p in sample if p.encode() in sink_blob]
    assert not leaked, f"{len(leaked)} personal values of sampled records somewhere in the sink"
    leaves: set[str] = set()
    for r in sink:
        if r.value is not None:
            _string_leaves(orjson.loads(r.value), leaves)
    assert not leaves & all_pii, "a sink value equals some record's personal value"
    leaked = [p for p in all_pii if p in logs]
    assert not leaked, f"{len(leaked)} personal values in the proxy's logs"


def check_sink_record(src: dict, out: dict, ff1: FF1, key: bytes) -> None:
    """Every rule of the example policy was applied to ``out`` (the protected ``src``), and
    nothing else changed."""
    w = key.decode()
    exp = copy.deepcopy(src)
    cid = out.get("customer_id")
    assert isinstance(cid, str) and cid.startswith("cus_") and len(cid) == 24 and cid != src["customer_id"], w
    em = out.get("email")
    assert isinstance(em, str) and em.startswith("em_") and len(em) == 27 and em != src["email"], w
    check_masked(src["name"], out.get("name"), 1, what=f"{w} name")
    check_masked(src["mobile"], out.get("mobile"), 3, 4, what=f"{w} mobile")
    check_masked(src["address"]["postcode"], out.get("address", {}).get("postcode"), 2, what=f"{w} postcode")
    check_masked(src["birth_date"], out.get("birth_date"), 4, char="0", what=f"{w} birth_date")
    check_fpe(src["id_number"], out.get("id_number"), ff1, TWEAKS["id_number"], f"{w} id_number")
    check_fpe(src["bank_card"], out.get("bank_card"), ff1, TWEAKS["bank_card"], f"{w} bank_card")
    assert len(out.get("orders", [])) == len(src["orders"]), w
    for j, (so, oo) in enumerate(zip(src["orders"], out["orders"])):
        check_fpe(so["card_number"], oo.get("card_number"), ff1, TWEAKS["card_number"], f"{w} orders[{j}]")
        exp["orders"][j]["card_number"] = oo["card_number"]
    assert "street" not in out["address"], f"{w}: address.street must be dropped"
    del exp["address"]["street"]
    exp["note"] = "[redacted]"
    for f in ("customer_id", "email", "name", "mobile", "birth_date", "id_number", "bank_card"):
        exp[f] = out[f]
    exp["address"]["postcode"] = out["address"]["postcode"]
    assert out == exp, f"{w}: fields outside the policy's rules changed"


def _string_leaves(node, acc: set) -> None:
    if isinstance(node, str):
        acc.add(node)
    elif isinstance(node, dict):
        for v in node.values():
            _string_leaves(v, acc)
    elif isinstance(node, list):
        for v in node:
            _string_leaves(v, acc)
