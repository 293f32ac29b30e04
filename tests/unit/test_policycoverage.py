"""``dpp coverage`` (proxy/policycoverage.py): detectors over the protected output of generated
customer records. The shipped example policy lets nothing out in clear; planted leaks (a kept
note, a phone in an unlisted free-text field, a removed array rule, a keep on an identifier)
are found with their paths, detectors and shares; ciphertext that validates by chance is not a leak."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.generator import generate_records
from proxy.policy.loader import load_policy_text
from proxy.policycoverage import coverage, general_path
from proxy.policytest import compile_for_tests
from proxy.scan import scan_records

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policies" / "examples" / "customer-pii.yaml"
TEXT = EXAMPLE.read_text(encoding="utf-8")
NOTE_RULE = '{field: note, action: redact, value: "[redacted]"}'


@pytest.fixture(scope="module")
def sample(customer_sample) -> Path:
    return customer_sample


def values(n=200, seed=7, plant=None):
    for r in generate_records(n, seed=seed):
        if plant:
            plant(r)
        yield orjson.dumps(r)


def route_of(text: str):
    return compile_for_tests(load_policy_text(text, "p.yaml")).route()


def run(args):
    return CliRunner().invoke(main, ["coverage", *args])


def test_shipped_example_lets_nothing_out(sample):
    res = run(["--policy", str(EXAMPLE), "--sample", str(sample), "--region", "CN", "--region", "US"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == "no personal value leaves in clear"


def test_kept_note_is_reported_with_its_detectors(sample, tmp_path):
    assert NOTE_RULE in TEXT
    pol = tmp_path / "keep-note.yaml"
    pol.write_text(TEXT.replace(NOTE_RULE, "{field: note, action: keep}"), encoding="utf-8")
    res = run(["--policy", str(pol), "--sample", str(sample), "--json"])
    assert res.exit_code == 1, res.output
    rep = json.loads(res.output)
    assert rep["clear"] is True and {lk["path"] for lk in rep["leaks"]} == {"note"}
    kinds = {lk["detector"]: lk for lk in rep["leaks"]}
    assert {"cn_mobile", "email"} <= set(kinds)
    lk = kinds["email"]
    assert 0 < lk["records"] <= rep["sink"] and lk["share"] == round(lk["records"] / rep["sink"], 4)
    # no value of the sample in the report
    assert "@" not in res.output
    allowed = run(["--policy", str(pol), "--sample", str(sample), "--allow", "note"])
    assert allowed.exit_code == 0, allowed.output
    assert "allowed note" in " ".join(allowed.output.split())


def test_phone_in_an_unlisted_kept_field_is_found():
    def plant(r):
        if r["customer_id"][-1] in "02468":
            r["comment"] = f"call back on +1 415-555-{r['customer_id'][-4:]} after 5pm"
    rep = coverage(route_of(TEXT), values(plant=plant))
    leaks = {(lk.path, lk.detector): lk for lk in rep.leaking}
    assert set(leaks) == {("comment", "phone")}
    lk = leaks[("comment", "phone")]
    assert 0.2 < lk.share < 0.8 and lk.records == lk.findings


def test_array_paths_are_generalised_and_a_removed_rule_leaks():
    text = TEXT.replace('      - {field: "orders[*].card_number", action: fpe, key: fpe, alphabet: digits, name: order-card}\n', "")
    assert text != TEXT
    rep = coverage(route_of(text), values())
    assert {(lk.path, lk.detector) for lk in rep.leaking} == {("orders[*].card_number", "bank_card")}
    assert general_path("orders[3].card_number") == "orders[*].card_number"


def test_a_keep_rule_on_an_identifier_leaks_and_a_mask_does_not():
    text = TEXT.replace('{field: email, action: pseudonymize, key: pseudonym, normalize: email, length: 24, prefix: "em_"}',
                        "{field: email, action: keep}")
    assert text != TEXT
    rep = coverage(route_of(text), values())
    assert {(lk.path, lk.detector) for lk in rep.leaking} == {("email", "email")}
    # masks always hide at least half of a value: even keep_first: 20 on a mobile is no leak
    masked = TEXT.replace("{field: mobile, action: mask, keep_first: 3, keep_last: 4}",
                          "{field: mobile, action: mask, keep_first: 20}")
    assert masked != TEXT and coverage(route_of(masked), values()).leaking == []


def test_ciphertext_that_validates_by_chance_is_not_a_leak():
    route = route_of(TEXT)
    outs = [orjson.loads(route.process_record(v).value) for v in values(n=300)
            if route.process_record(v).kind == "sink"]
    raw = scan_records(outs)
    # FF1 output of card numbers is Luhn-valid about one time in ten: the scanner alone finds it
    assert "bank_card" in raw.fields["bank_card"].kinds
    assert coverage(route, values(n=300)).leaking == []


def test_blocked_and_dead_lettered_records_are_counted():
    def plant(r):
        if r["customer_id"].endswith("1"):
            r["id_number"] = [1, 2]
    rep = coverage(route_of(TEXT), values(plant=plant))
    assert rep.records == 200 and rep.blocked > 0 and rep.dead_letter > 0
    assert rep.sink + rep.blocked + rep.dead_letter == rep.records


def test_bad_allow_path_is_a_usage_error(sample):
    res = run(["--policy", str(EXAMPLE), "--sample", str(sample), "--allow", "a[x"])
    assert res.exit_code == 2 and "--allow" in res.output


@pytest.mark.parametrize("extra,message", [
    ([], "give one of --sample FILE or --topic T"),
    (["--sample", "x.jsonl", "--topic", "t", "--bootstrap-servers", "h:1"], "give one of --sample FILE or --topic T"),
    (["--topic", "t"], "--topic needs --bootstrap-servers"),
])
def test_sample_or_topic(extra, message):
    res = run(["--policy", str(EXAMPLE), *extra])
    assert res.exit_code == 2 and message in res.output


def test_sample_from_stdin(sample):
    res = CliRunner().invoke(main, ["coverage", "--policy", str(EXAMPLE), "--sample", "-", "--json"],
                             input=sample.read_bytes())
    assert res.exit_code == 0 and json.loads(res.output)["records"] == 200


CDC = ROOT / "policies" / "examples" / "debezium-cdc.yaml"


def change_events(n=120, seed=7):
    """Generated customers as Debezium update events: the row before and after, a free-text note."""
    for r in generate_records(n, seed=seed):
        row = {k: r[k] for k in ("name", "email", "mobile", "id_number", "address") if k in r}
        row["note"] = r.get("note", "")
        yield orjson.dumps({"before": row, "after": row, "op": "u", "ts_ms": 1700000000000})


@pytest.mark.parametrize("allow,leaking", [
    ((), {"before.note", "after.note"}),
    (("*.note",), set()),
    (("{before,after}.note",), set()),
    (("**.note",), set()),
    (("after.note",), {"before.note"}),
])
def test_cdc_example_leaves_only_its_note_and_allow_takes_wildcards(allow, leaking):
    rep = coverage(route_of(CDC.read_text(encoding="utf-8")), change_events(), regions=("CN", "US"), allow=allow)
    assert rep.sink == 120
    assert {lk.path for lk in rep.leaks} == {"before.note", "after.note"}  # the example has no rule for note
    assert {lk.path for lk in rep.leaking} == leaking
