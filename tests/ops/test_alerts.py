"""The alert rules (deploy/prometheus/alerts.yml), checked by Prometheus' own tool.

* ``promtool check rules`` accepts the rules and ``promtool check config`` the compose Prometheus config;
* ``promtool test rules`` runs the unit tests in deploy/prometheus/alerts_test.yml (each alert fires on
  its condition and stays quiet on look-alikes, pending vs firing included);
* every alert has a firing and a non-firing case there, the annotations an operator needs, a runbook
  section in docs/operating.md, and selects only metrics dpp really exports (proxy/metrics.py);
* the unit tests can fail: a mutated copy of each alert's expression must make ``promtool test rules`` fail.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .tools import DEPLOY, ROOT, exported_metric_names, require_binary

PROM_DIR = DEPLOY / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
OPERATING = ROOT / "docs" / "operating.md"

EXPECTED_ALERTS = {"DppDeadLetters", "DppDeliveryFailures", "DppBlockedSpike", "DppConsumerLagGrowing", "DppNoThroughput",
                   "DppPolicyReloadFailed", "DppRouteHalted", "DppConsentSlow", "DppWorkerDown", "DppNoWorkerUp",
                   "DppKmsFailures"}


def _rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _promtool(*args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess:
    exe = require_binary("promtool")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_check_rules():
    r = _promtool("check", "rules", ALERTS.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in r.stdout + r.stderr


def test_promtool_check_config_of_compose_prometheus():
    r = _promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_unit_tests_pass():
    r = _promtool("test", "rules", ALERTS_TEST.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_every_required_alert_exists():
    names = [r["alert"] for r in _rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == EXPECTED_ALERTS


def test_every_alert_has_firing_and_quiet_cases():
    doc = yaml.safe_load(ALERTS_TEST.read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for t in doc["tests"]:
        for case in t.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in _rules()}
    assert names - fires == set(), "alerts without a firing test case"
    assert names - quiet == set(), "alerts without a not-firing test case"


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_alert_annotations_and_runbook(rule):
    assert rule["labels"]["severity"] in ("warning", "critical")
    ann = rule["annotations"]
    for key in ("summary", "description", "runbook", "runbook_url"):
        assert ann.get(key, "").strip(), f"{rule['alert']}: annotation {key} missing"
    anchor = ann["runbook_url"].split("#", 1)[1]
    headings = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+\s+(.*)$", OPERATING.read_text(), flags=re.M)}
    assert anchor in headings, f"docs/operating.md has no heading for #{anchor}"


def test_alerts_select_only_exported_metrics():
    exported = exported_metric_names() | {"up"}
    used: set[str] = set()
    for rule in _rules():
        used |= set(re.findall(r"\b(dpp_[a-z_]+|up)\b", rule["expr"]))
    assert used, "no metric found in the alert expressions"
    assert used - exported == set(), f"alerts use metrics dpp does not export: {sorted(used - exported)}"


# One mutation per alert (a second one keyed "Name/what") that a correct test file must catch (each weakens
# or breaks the condition).
MUTATIONS = {
    "DppDeadLetters": ("[5m])) > 0", "[5m])) > 5"),
    # exactly-once transaction aborts must alert like sink and dead-letter failures
    "DppDeliveryFailures": ("increase(dpp_delivery_failures_total[5m])",
                            'increase(dpp_delivery_failures_total{topic_kind!="transaction"}[5m])'),
    "DppDeliveryFailures/threshold": ("[5m])) > 0", "[5m])) > 2"),
    "DppKmsFailures": ('outcome!="success"', 'outcome="refused"'),
    "DppBlockedSpike": ("> 3 * (", "> 0 * ("),
    "DppConsumerLagGrowing": ("(deriv(dpp_consumer_lag[10m])) > 0", "(deriv(dpp_consumer_lag[10m])) > -1e9"),
    "DppNoThroughput": ("(dpp_consumer_lag) > 0", "(dpp_consumer_lag) >= 0"),
    "DppPolicyReloadFailed": ('result="error"', 'result=~".+"'),
    "DppRouteHalted": ("(dpp_route_halted) > 0", "(dpp_route_halted) > 1"),
    "DppConsentSlow": ("[10m]))) > 2", "[10m]))) > 10"),
    "DppWorkerDown": ('up{job="dpp"} == 0', 'up == 0'),
    "DppNoWorkerUp": ('absent(up{job="dpp"} == 1)', 'absent(up{job="dpp"})'),
}


@pytest.mark.parametrize("alert", sorted(MUTATIONS))
def test_unit_tests_catch_a_broken_rule(alert, tmp_path):
    require_binary("promtool")
    doc = yaml.safe_load(ALERTS.read_text())
    old, new = MUTATIONS[alert]
    alert = alert.split("/")[0]   # "Name/what": a second mutation of the same alert
    hit = 0
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("alert") == alert and old in r["expr"]:
                r["expr"] = r["expr"].replace(old, new)
                hit += 1
    assert hit == 1, f"mutation of {alert} does not apply: {old!r} not in its expression"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy(ALERTS_TEST, tmp_path / "alerts_test.yml")
    ok = _promtool("check", "rules", "alerts.yml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr     # the mutant is valid PromQL ...
    r = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert r.returncode != 0, f"promtool test rules still passes with a broken {alert}"   # ... and is caught
    assert alert in r.stdout + r.stderr
