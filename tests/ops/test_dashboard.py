"""The Grafana dashboard (deploy/grafana/dashboards/dpp.json) against a real Prometheus and a real worker.

Offline checks: the dashboard is well-formed, has every panel the operators need, and uses only metrics
dpp exports.

Live check (module fixture): a real ``dpp run`` subprocess on the local broker, with the example policy
(topics and consumer group made unique; the free-text ``note`` rule turned into a ``detect`` rule so PII
detections have data), and a real Prometheus (Debian package) on a free localhost port that scrapes it
every second and evaluates deploy/prometheus/alerts.yml. While it runs: three waves of generated records
(about 5 % consent-withdrawn, so blocked) plus malformed payloads (dead-lettered), a valid policy edit
(hot reload, new revision) and a broken one (reload error). Then EVERY panel target's PromQL is sent to
Prometheus' HTTP API (/api/v1/query) with Grafana's variables filled in: each must parse and return data,
and the panels must show what happened in the run (values, not just series).
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .tools import DEPLOY, ROOT, exported_metric_names, require_binary

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "dpp.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
EXAMPLE_POLICY = ROOT / "policies" / "examples" / "customer-pii.yaml"
KEY_VARS = ("DPP_KEY_PSEUDONYM", "DPP_KEY_FPE", "DPP_KEY_DEAD_LETTER")

RECORDS_PER_WAVE = 1000
WAVES = 3
MALFORMED_PER_WAVE = 10


def _panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside collapsed rows
    return out


def _targets() -> list[tuple[str, str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["refId"], t["expr"]) for p in _panels(dash) if p["type"] != "row" for t in p["targets"]]


TARGETS = _targets()


def render(expr: str, window: str) -> str:
    """Fill in the Grafana variables a panel query uses, as Grafana would for "All routes"."""
    out = (expr.replace("$__rate_interval", window).replace("${__rate_interval}", window)
           .replace("$__range", window).replace("$__interval", "1s")
           .replace("${route}", ".*").replace("$route", ".*"))
    assert "$" not in out, f"unknown Grafana variable left in {out!r}"
    return out


# ----------------------------------------------------------------------------------------- offline
def test_dashboard_is_well_formed():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in _panels(dash)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    ds_var = {v["name"]: v for v in dash["templating"]["list"]}["datasource"]
    assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus"
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert ds_var["current"]["value"] == provisioned["uid"], "default data source is not the provisioned one"
    for p in _panels(dash):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}"


def test_dashboard_has_every_required_panel():
    exprs = "\n".join(e for _, _, e in TARGETS)
    required = {
        "records in per route": r"sum by \(route\) \(rate\(dpp_records_consumed_total",
        "records out per route": r"sum by \(route\) \(rate\(dpp_records_produced_total",
        "blocked by reason": r"by \(route, reason\) \(rate\(dpp_records_blocked_total",
        "dead-lettered by reason": r"by \(route, reason\) \(rate\(dpp_records_dead_lettered_total",
        "field transforms by action": r"by \(action\) \(rate\(dpp_field_transforms_total",
        "unmatched rules": r"by \(route, rule\) \(rate\(dpp_rule_unmatched_total",
        "PII detections by detector": r"by \(detector\) \(rate\(dpp_pii_detections_total",
        "latency p50": r"histogram_quantile\(0\.5, sum by \(route, le\) \(rate\(dpp_record_processing_seconds_bucket",
        "latency p99": r"histogram_quantile\(0\.99, sum by \(route, le\) \(rate\(dpp_record_processing_seconds_bucket",
        "lag per partition": r"by \(route, partition\) \(dpp_consumer_lag",
        "active policy version": r"by \(policy, version, sha256\) \(dpp_policy_info\)",
        "reloads": r"by \(result\) \(increase\(dpp_policy_reloads_total",
    }
    missing = [name for name, pattern in required.items() if not re.search(pattern, exprs)]
    assert not missing, f"dashboard lacks: {missing}"


def test_dashboard_uses_only_exported_metrics():
    exported = exported_metric_names() | {"up"}
    used = {m for _, _, e in TARGETS for m in re.findall(r"\b(dpp_[a-z_]+|up)\b", e)}
    assert used - exported == set(), f"panels query metrics dpp does not export: {sorted(used - exported)}"


# ----------------------------------------------------------------------------------------- live
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _wait(what: str, cond, timeout_s: float, interval_s: float = 0.25, diag=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{diag()}", pytrace=False)


@dataclass
class Live:
    """The running stack: ``query(promql)`` asks the test Prometheus; ``window`` covers the whole run."""

    prom_url: str
    metrics_port: int
    route: str
    sink: str
    window: str
    revision_before: str
    revision_after: str
    expected_records: int

    def query(self, promql: str) -> dict:
        url = f"{self.prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            return _http_json(url)
        except urllib.error.HTTPError as e:  # 400 = PromQL did not parse; the body says why
            return json.loads(e.read() or b"{}") | {"http_status": e.code}

    def vector(self, promql: str) -> list[tuple[dict, float]]:
        doc = self.query(promql)
        assert doc.get("status") == "success", f"{promql}: {doc}"
        return [(r["metric"], float(r["value"][1])) for r in doc["data"]["result"]]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples ``name`` whose labels include ``labels`` in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    """Path of the prometheus server binary (skip, or fail under CI, when missing)."""
    return require_binary("prometheus")


@pytest.fixture(scope="module")
def live(prometheus_bin, kafka_bootstrap, tmp_path_factory):
    prometheus = prometheus_bin
    from confluent_kafka import Producer

    from proxy.generator import generate_records, malformed_payloads
    from proxy.stream.admin import ensure_topics

    tmp = tmp_path_factory.mktemp("dashboard")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    route = doc["routes"][0]
    route["source"], route["sink"], route["dead_letter"] = (
        f"{prefix}.crm.customers", f"{prefix}.analytics.customers", f"{prefix}.crm.customers.dlq")
    route["consumer_group"] = f"{prefix}.dpp"
    route["rules"] = [r for r in route["rules"] if r["field"] != "note"] + [
        {"field": "note", "action": "detect", "detectors": ["cn_mobile", "email"], "replace": "placeholder",
         "name": "note-pii"}]
    before, after = f"{prefix}-r1", f"{prefix}-r2"
    doc["revision"] = before
    policy = tmp / "policy.yaml"
    _write_atomic(policy, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    ensure_topics(kafka_bootstrap, {route["source"]: 3, route["sink"]: 3, route["dead_letter"]: 3})

    env = dict(os.environ, **{v: secrets.token_hex(32) for v in KEY_VARS})
    dpp_exe = shutil.which("dpp", path=str(Path(sys.executable).parent)) or shutil.which("dpp")
    cmd = [dpp_exe] if dpp_exe else [sys.executable, "-m", "proxy"]
    log_path = tmp / "dpp.log"
    procs: list[subprocess.Popen] = []
    with open(log_path, "wb") as log:
        t_start = time.monotonic()
        dpp = subprocess.Popen(cmd + ["run", "--policy", str(policy), "--bootstrap-servers", kafka_bootstrap,
                                      "--metrics-port", "0", "--batch-size", "500", "--reload-interval", "0.5",
                                      "--log-level", "WARNING"],
                               stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=tmp)
        procs.append(dpp)
    diag = lambda: "dpp log tail:\n" + "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])  # noqa: E731

    try:
        def metrics_port():
            if dpp.poll() is not None:
                pytest.fail(f"dpp exited with {dpp.returncode}\n{diag()}", pytrace=False)
            for line in log_path.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"dpp running"' in line:
                    return json.loads(line)["metrics_port"]
            return None
        port = _wait("dpp to start", metrics_port, 60, diag=diag)

        prom_port = _free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "dpp", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        }))
        prom_log = open(tmp / "prometheus.log", "wb")
        prom = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                stdout=prom_log, stderr=prom_log)
        procs.append(prom)
        prom_url = f"http://127.0.0.1:{prom_port}"

        def prom_ready():
            if prom.poll() is not None:
                pytest.fail(f"prometheus exited with {prom.returncode}: "
                            f"{(tmp / 'prometheus.log').read_text(errors='replace')[-2000:]}", pytrace=False)
            try:
                return urllib.request.urlopen(f"{prom_url}/-/ready", timeout=2).status == 200
            except OSError:
                return False
        _wait("prometheus to be ready", prom_ready, 60)

        def dpp_ready():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
            except OSError:
                return False
        _wait("dpp /readyz (partitions assigned)", dpp_ready, 60, diag=diag)

        # Prometheus applies discovered targets on a 5 s tick: wait for its first scrape of dpp, so the
        # series start at zero before any record is produced.
        def prom_scraped_dpp():
            doc_ = _http_json(f"{prom_url}/api/v1/query?" + urllib.parse.urlencode(
                {"query": 'up{job="dpp"} == 1 and on() count_over_time(dpp_records_consumed_total[1m]) > 0'}))
            return bool(doc_["data"]["result"])
        _wait("prometheus' first scrape of dpp", prom_scraped_dpp, 30)

        # Load: three waves of generated records and malformed payloads, policy edits in between.
        seed = int(prefix[1:7], 16)
        records = list(generate_records(RECORDS_PER_WAVE * WAVES, seed=seed))
        bad = malformed_payloads(MALFORMED_PER_WAVE * WAVES, seed=seed)
        p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 10, "enable.idempotence": True})
        import orjson

        def wave(i: int) -> None:
            for rec in records[i * RECORDS_PER_WAVE:(i + 1) * RECORDS_PER_WAVE]:
                p.produce(route["source"], orjson.dumps(rec), rec["record_id"].encode())
                p.poll(0)
            for payload in bad[i * MALFORMED_PER_WAVE:(i + 1) * MALFORMED_PER_WAVE]:
                p.produce(route["source"], payload, None)
            assert p.flush(30) == 0

        def reloads(result: str) -> float:
            return _sample(_scrape(port), "dpp_policy_reloads_total", result=result)

        wave(0)
        time.sleep(1.5)
        doc["revision"] = after                                   # a valid edit: hot reload
        _write_atomic(policy, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        _wait("a successful policy reload", lambda: reloads("success") >= 1, 30, diag=diag)
        wave(1)
        time.sleep(1.5)
        broken = dict(doc, unknown_setting=True)                  # a bad edit: rejected, r2 stays
        _write_atomic(policy, yaml.safe_dump(broken, sort_keys=False, allow_unicode=True))
        _wait("a failed policy reload", lambda: reloads("error") >= 1, 30, diag=diag)
        wave(2)

        expected = (RECORDS_PER_WAVE + MALFORMED_PER_WAVE) * WAVES
        _wait("dpp to consume every record",
              lambda: _sample(_scrape(port), "dpp_records_consumed_total") >= expected, 90, diag=diag)

        def prom_has_all():
            doc_ = _http_json(f"{prom_url}/api/v1/query?" + urllib.parse.urlencode(
                {"query": 'sum(dpp_records_consumed_total{job="dpp"})'}))
            res = doc_["data"]["result"]
            return bool(res) and float(res[0]["value"][1]) >= expected
        _wait("prometheus to scrape the final counts", prom_has_all, 30)
        time.sleep(3)  # a few more scrapes and rule evaluations on the final values
        window = f"{int(time.monotonic() - t_start) + 15}s"
        yield Live(prom_url, port, route["name"], route["sink"], window, before, after, expected)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.mark.integration
@pytest.mark.parametrize("title,ref,expr", TARGETS, ids=[f"{t}[{r}]" for t, r, _ in TARGETS])
def test_panel_query_parses_and_returns_data(live, title, ref, expr):
    promql = render(expr, live.window)
    doc = live.query(promql)
    assert doc.get("status") == "success", f"panel {title!r} ({ref}): {promql}\n-> {doc}"
    assert doc["data"]["result"], f"panel {title!r} ({ref}) returned no data: {promql}"


def _panel_vector(live: Live, title: str, ref: str = "A") -> list[tuple[dict, float]]:
    expr = next(e for t, r, e in TARGETS if t == title and r == ref)
    return live.vector(render(expr, live.window))


@pytest.mark.integration
def test_panels_show_the_run(live):
    """The panels' numbers follow what the run did (rates over a window that covers all of it)."""
    secs = float(live.window[:-1])
    rate_in = {m["route"]: v for m, v in _panel_vector(live, "Records in / out per route", "A")}
    rate_out = {m["route"]: v for m, v in _panel_vector(live, "Records in / out per route", "B")}
    # in: every record consumed within the window (rate * window ~ count; rate() extrapolates a little)
    assert rate_in[live.route] * secs == pytest.approx(live.expected_records, rel=0.35)
    assert 0 < rate_out[live.route] < rate_in[live.route]          # blocked and dead-lettered never went out

    blocked = {(m["route"], m["reason"]): v for m, v in _panel_vector(live, "Blocked by reason")}
    assert blocked[(live.route, "consent-withdrawn")] > 0
    dead = {(m["route"], m["reason"]): v for m, v in _panel_vector(live, "Dead-lettered by reason")}
    assert dead[(live.route, "invalid-json")] > 0 and dead[(live.route, "not-an-object")] > 0

    actions = {m["action"]: v for m, v in _panel_vector(live, "Field transforms by action")}
    for action in ("mask", "fpe", "pseudonymize", "drop", "detect"):
        assert actions.get(action, 0) > 0, f"no {action} transforms on the panel: {actions}"
    unmatched = {m["rule"]: v for m, v in _panel_vector(live, "Unmatched rules")}
    assert unmatched.get("order-card", 0) > 0          # records without orders
    detectors = {m["detector"]: v for m, v in _panel_vector(live, "PII detections by detector")}
    assert detectors.get("cn_mobile", 0) > 0 or detectors.get("email", 0) > 0, detectors

    p50 = {m["route"]: v for m, v in _panel_vector(live, "Processing latency p50 / p99", "A")}[live.route]
    p99 = {m["route"]: v for m, v in _panel_vector(live, "Processing latency p50 / p99", "B")}[live.route]
    assert math.isfinite(p50) and math.isfinite(p99) and 0 < p50 <= p99 < 1.0

    lag = {(m["route"], m["partition"]) for m, _ in _panel_vector(live, "Consumer lag per partition")}
    assert lag == {(live.route, "0"), (live.route, "1"), (live.route, "2")}

    policies = [m for m, _ in _panel_vector(live, "Active policy version")]
    assert [(m["policy"], m["version"]) for m in policies] == [("customer-pii", live.revision_after)]
    reloads = {m["result"]: v for m, v in _panel_vector(live, "Policy reloads")}
    assert reloads.get("success", 0) > 0 and reloads.get("error", 0) > 0
    assert [v for _, v in _panel_vector(live, "Workers up")] == [1.0]


@pytest.mark.integration
def test_alert_rules_evaluate_on_real_data(live):
    """Prometheus loaded deploy/prometheus/alerts.yml, evaluates every rule without error, and the
    run's dead letters and bad policy edit raised DppDeadLetters and DppPolicyReloadFailed."""
    groups = _http_json(f"{live.prom_url}/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    for name, r in rules.items():
        assert r["health"] == "ok" and not r.get("lastError"), f"{name}: {r.get('lastError')}"
    firing = {(a["labels"]["alertname"], a["labels"].get("route", ""), a["labels"].get("reason", ""))
              for a in _http_json(f"{live.prom_url}/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"}
    assert ("DppDeadLetters", live.route, "invalid-json") in firing, firing
    assert ("DppPolicyReloadFailed", "", "") in firing, firing
    assert not {f for f in firing if f[0] in ("DppWorkerDown", "DppNoWorkerUp", "DppNoThroughput")}, firing
