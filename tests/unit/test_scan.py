"""``dpp scan``: per-field report, no values in any output, the suggested policy (accepted by
``dpp check``, and protecting every personal field of the generated customer records when run
through ``dpp apply``), the CLI, and sampling a real topic."""
from __future__ import annotations

import json
import subprocess
import sys

import orjson
import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.generator import generate_records
from proxy.policy.loader import load_policy_text
from proxy.scan import field_hint, format_table, scan_records, suggest_policy, suggest_rules
from proxy.stream.sample import plan_quotas

RECORDS = list(generate_records(300, seed=11))


def personal_values(rec: dict) -> list[str]:
    """The original personal values of one generated record that must never reach the output."""
    vals = [rec["name"], rec["id_number"], rec["mobile"], rec["email"], rec["bank_card"], rec["address"]["street"]]
    vals += [o["card_number"] for o in rec["orders"]]
    return vals


@pytest.fixture(scope="module")
def report():
    return scan_records(RECORDS)


# --------------------------------------------------------------------------- report
def test_kinds_and_shares_per_field(report):
    f = report.fields
    assert report.records == 300 and report.invalid == 0
    assert f["id_number"].kinds["cn_resident_id"].records == 300
    assert f["id_number"].kinds["cn_resident_id"].whole_values == 300
    assert f["email"].kinds["email"].records == 300
    assert f["bank_card"].kinds["bank_card"].records == 300
    mobile = f["mobile"].kinds
    assert mobile["cn_mobile"].records + mobile["phone"].records == 300
    assert "bank_card" in f["orders[*].card_number"].kinds
    assert {"email", "cn_mobile"} <= set(f["note"].kinds)
    assert f["note"].kinds["email"].whole_values == 0
    assert not f["record_id"].kinds and not f["segment"].kinds and not f["created_at"].kinds
    assert f["name"].hint == "person_name" and f["address.street"].hint == "street_address"
    assert f["orders[*].amount"].types == {"number": f["orders[*].amount"].values}


def test_share_is_records_not_findings():
    recs = [{"note": "13900001111 13900002222"}, {"note": "nothing"}]
    r = scan_records(recs)
    ks = r.fields["note"].kinds["cn_mobile"]
    assert (ks.records, ks.findings) == (1, 2)
    assert r.fields["note"].share("cn_mobile", r.records) == 0.5


def test_reports_hold_no_values(report):
    text = json.dumps(report.to_dict(), ensure_ascii=False) + format_table(report, all_fields=True)
    for rec in RECORDS[:50]:
        for v in personal_values(rec):
            assert v not in text


def test_personal_data_in_keys_is_hidden_and_dropped():
    r = scan_records([{"contacts": {"zhang@163.com": {"since": 2020}}, "ok": 1}, "not an object"])
    assert r.invalid == 1
    paths = list(r.fields)
    assert "contacts.<EMAIL>.since" in paths
    assert all("zhang@163.com" not in p for p in paths)
    rules = {x["field"]: x for x in suggest_rules(r)}
    assert "contacts.<EMAIL>.since" not in rules and rules["ok"]["action"] == "keep"
    assert "zhang@163.com" not in json.dumps(r.to_dict())


def test_field_hints():
    assert field_hint(("customer", "full_name")) == "person_name"
    assert field_hint(("addr",)) == "street_address"
    assert field_hint(("shipping", "zip")) == "postcode"
    assert field_hint(("备注",)) == "free_text"
    assert field_hint(("orders", object(), "amount")) is None


def test_mixed_shapes_and_booleans_get_safe_rules():
    recs = [{"address": "北京市朝阳区某路1号", "flag": True, "dob": "1990-01-01"},
            {"address": {"street": "x"}, "flag": False, "dob": "1991-02-02"}]
    rules = {x["field"]: x for x in suggest_rules(scan_records(recs))}
    assert "address" not in rules                      # string here, object there: allow-list drops it
    assert rules["address.street"]["action"] == "drop"
    assert rules["flag"]["action"] == "keep"
    assert rules["dob"] == {"field": "dob", "action": "mask", "keep_first": 4, "mask_char": "0"}


# --------------------------------------------------------------------------- suggested policy
def test_suggested_policy_loads_and_protects_every_personal_field(report):
    text = suggest_policy(report, source="crm.customers")
    lp = load_policy_text(text, "suggested.yaml")
    rules = {r.field: r for r in lp.policy.routes[0].rules}
    assert lp.policy.routes[0].unlisted_fields == "drop"
    assert rules["id_number"].action == "pseudonymize"
    assert rules["email"].action == "pseudonymize" and rules["email"].normalize == "email"
    assert rules["bank_card"].action == "mask" and rules["orders[*].card_number"].action == "mask"
    assert rules["address.street"].action == "drop"
    assert rules["note"].action == "detect" and {"cn_mobile", "email", "phone"} <= set(rules["note"].detectors)
    assert rules["record_id"].action == "keep"


def test_cli_generate_scan_check_apply_leaves_no_personal_value(tmp_path, demo_keys):
    """`dpp generate --count 500 | dpp scan --suggest-policy` → `dpp check` → `dpp apply`."""
    dpp = [sys.executable, "-m", "proxy.cli"]
    gen = subprocess.run(dpp + ["generate", "--count", "500", "--seed", "3"], capture_output=True, check=True)
    data = tmp_path / "records.jsonl"
    data.write_bytes(gen.stdout)
    pol = tmp_path / "suggested.yaml"
    scan = subprocess.run(dpp + ["scan", "--file", str(data), "--sample", "500", "--suggest-policy", str(pol)],
                          capture_output=True, text=True)
    assert scan.returncode == 0, scan.stderr
    assert "id_number" in scan.stdout and "cn_resident_id" in scan.stdout
    check = subprocess.run(dpp + ["check", str(pol)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    applied = subprocess.run(dpp + ["apply", "--policy", str(pol)], input=gen.stdout, capture_output=True)
    assert applied.returncode == 0, applied.stderr.decode()
    lines = applied.stdout.decode().splitlines()
    originals = [orjson.loads(x) for x in gen.stdout.splitlines()]
    assert len(lines) == len(originals) == 500
    leaked = 0
    for src, out in zip(originals, lines):
        assert json.loads(out)["record_id"] == src["record_id"]
        for v in personal_values(src):
            if v in out:
                leaked += 1
    assert leaked == 0
    # the notes were searched, not dropped: free text survives around the placeholders
    assert any("<CN_MOBILE>" in x or "<EMAIL>" in x for x in lines)


# --------------------------------------------------------------------------- CLI details
def test_cli_json_output_and_usage_errors(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in RECORDS[:40]) + b"not json\n\n")
    res = CliRunner().invoke(main, ["scan", "--file", str(f), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["records"] == 41 and doc["invalid"] == 1
    by_path = {x["path"]: x for x in doc["fields"]}
    assert by_path["id_number"]["kinds"]["cn_resident_id"]["share"] == round(40 / 41, 4)
    assert by_path["note"]["suggested"] == "detect (placeholder)"
    assert CliRunner().invoke(main, ["scan"]).exit_code == 2
    assert CliRunner().invoke(main, ["scan", "--topic", "t"]).exit_code == 2
    assert CliRunner().invoke(main, ["scan", "--file", str(f), "--topic", "t"]).exit_code == 2
    bad = CliRunner().invoke(main, ["scan", "--file", str(f), "--region", "XX"])
    assert bad.exit_code == 2 and "XX" in bad.output


def test_cli_sample_limits_records(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in RECORDS[:30]))
    res = CliRunner().invoke(main, ["scan", "--file", str(f), "--sample", "7", "--json"])
    assert json.loads(res.stdout)["records"] == 7


def test_plan_quotas():
    assert plan_quotas({0: 5, 1: 5}, 100) == {0: 5, 1: 5}
    q = plan_quotas({0: 100, 1: 300, 2: 0}, 40)
    assert q == {0: 10, 1: 30, 2: 0}
    q = plan_quotas({0: 1, 1: 1, 2: 1}, 2)
    assert sum(q.values()) == 2 and all(v <= 1 for v in q.values())


# --------------------------------------------------------------------------- a real topic
@pytest.mark.integration
def test_scan_samples_a_topic(kafka_bootstrap, topic_prefix, tmp_path):
    from confluent_kafka import Producer

    from proxy.stream.admin import ensure_topics
    topic = f"{topic_prefix}.scan.src"
    ensure_topics(kafka_bootstrap, {topic: 3})
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, rec in enumerate(RECORDS[:120]):
        p.produce(topic, orjson.dumps(rec), key=str(i).encode())
    p.produce(topic, b"{broken", key=b"x")
    assert p.flush(30) == 0
    pol = tmp_path / "s.yaml"
    res = CliRunner().invoke(main, ["scan", "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
                                    "--sample", "100", "--json", "--suggest-policy", str(pol)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["records"] == 100
    by_path = {x["path"]: x for x in doc["fields"]}
    assert by_path["id_number"]["kinds"]["cn_resident_id"]["records"] >= 99
    lp = load_policy_text(pol.read_text(), str(pol))
    assert lp.policy.routes[0].source == topic
    missing = CliRunner().invoke(main, ["scan", "--topic", f"{topic_prefix}.absent", "--bootstrap-servers",
                                        kafka_bootstrap, "--sample", "5", "--timeout", "5"])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_schema_tags_are_reported_by_field_path():
    from proxy.formats.base import EVERY_ITEM, EVERY_VALUE
    from proxy.scan import Tagged, format_table, scan_records
    tags = {"PII": [("email",), ("orders", EVERY_ITEM, "card"), ("notes", EVERY_VALUE, "text")]}
    rec = {"email": "nobody", "orders": [{"card": "x", "sku": "y"}], "notes": {"n1": {"text": "hello"}}, "id": 1}
    report = scan_records([Tagged((rec, tags)), None])
    fields = {f.path: f for f in report.fields.values()}
    assert fields["email"].tags == {"PII"} and fields["orders[*].card"].tags == {"PII"}
    assert fields["notes.n1.text"].tags == {"PII"} and not fields["orders[*].sku"].tags
    assert report.invalid == 1
    table = format_table(report)
    assert table.splitlines()[0].split()[:3] == ["FIELD", "PRESENT", "TAGS"]
    assert "(tagged in the schema)" in table and "hello" not in table
    assert report.to_dict()["fields"][0]["tags"] == ["PII"]
