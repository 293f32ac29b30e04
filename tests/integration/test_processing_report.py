"""Records of processing and ``dpp report`` on the real broker: a short ``dpp run`` of generated
records (and a few that are not JSON) through the example policy writes a processing record per
window (1 s) and one at shutdown to the audit topic, under two policy revisions (a hot reload halfway); ``dpp report`` over that topic gives totals
per route (consumed, produced, blocked and dead-lettered by reason) equal to the metrics scraped
from ``/metrics`` of the same run, to the audit topic read back with kafka-python, and to the
records read back from the sink and the dead-letter topic; the halt, resume, re-identification and
subject look-up written to the same topic by ``dpp halt``/``resume``/``reveal``/``subject`` are in it. With Chromium installed the PDF is
made and read back with pdftotext / pdftoppm (else that part is skipped, unless DPP_REQUIRE_PDF)."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, account_for, drain, generated_records,
                      produce, read_topic, route_setup, run_dpp)  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

ROUTE = "crm-to-analytics"
N = 3000
BAD = 25


def _by_label(samples, name: str, label: str) -> dict[str, int]:
    """Non-zero values of metric ``name`` for the route, by ``label``."""
    out = {}
    for labels, v in samples.get(name, []):
        if labels.get("route") == ROUTE and v:
            out[labels[label]] = int(v)
    return out


def _metric_route(samples, name: str) -> int:
    return int(sum(v for labels, v in samples.get(name, []) if labels.get("route") == ROUTE))


def test_report_totals_equal_the_metrics_and_the_topics(route_setup, topic_prefix, tmp_path):
    rs = route_setup
    t = rs.topics
    audit, control = f"{topic_prefix}.audit", f"{topic_prefix}.control"
    records = generated_records(N)
    blocked = {r["record_id"].encode() for r in records if r["consent"]["analytics"] is False}
    malformed = {f"bad-{i}".encode() for i in range(BAD)}
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    with DppProcess(rs.policy, rs.bootstrap, rs.workdir, name="dpp-records", extra=[
            "--batch-size", "200", "--audit-topic", audit, "--processing-record-interval", "1s",
            "--control-topic", control]) as dpp:
        dpp.wait_ready()
        half = N // 2
        produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in records[:half]))
        produce(rs.bootstrap, t.source, ((k, b'{"customer_id": "C-1", "email": ', None) for k in sorted(malformed)))
        dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= half + BAD, 120, "the first half consumed")
        time.sleep(1.5)  # more than a window apart
        # a new policy revision in force for the second half (hot reload: the text changes, so its sha256)
        rs.policy.write_text(rs.policy.read_text() + "\n# revised for the second half\n")
        dpp.wait_metric("dpp_policy_reloads_total", lambda v: v >= 1, 30, "the policy reloaded", result="success")
        produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in records[half:]))
        samples = drain(dpp, rs.bootstrap, t, N + BAD, timeout_s=180)
        assert dpp.stop() == 0, dpp.stderr_tail()

    consumed = _metric_route(samples, "dpp_records_consumed_total")
    produced = _metric_route(samples, "dpp_records_produced_total")
    m_blocked = _by_label(samples, "dpp_records_blocked_total", "reason")
    m_dead = _by_label(samples, "dpp_records_dead_lettered_total", "reason")
    assert consumed == N + BAD and m_dead == {"invalid-json": BAD} and m_blocked == {"consent-withdrawn": len(blocked)}

    # the records read back (kafka-python): every one where the metrics say
    sink, dead = read_topic(rs.bootstrap, t.sink), read_topic(rs.bootstrap, t.dead_letter)
    acc = account_for(read_topic(rs.bootstrap, t.source), sink, dead, blocked, malformed)
    acc.check(duplicates_allowed=False)
    assert (acc.in_sink, acc.dead_lettered, acc.blocked) == (produced, BAD, len(blocked))

    # the audit topic read back: windows of 1 s, the last one written at shutdown
    docs = [orjson.loads(r.value) for r in read_topic(rs.bootstrap, audit)]
    proc = [d for d in docs if d.get("type") == "processing" and d["route"] == ROUTE]
    assert len(proc) >= 3 and proc[-1]["final"] is True and not any(d["final"] for d in proc[:-1])
    assert sum(1 for d in proc if d["records"]["consumed"]) >= 2, "the records came in one window only"
    assert sum(d["records"]["consumed"] for d in proc) == consumed
    assert all(d["policy"]["provenance"].startswith("customer-pii@") and d["keys"] for d in proc)
    revisions = list(dict.fromkeys(d["policy"]["provenance"] for d in proc))
    assert len(revisions) == 2, revisions  # the reload: later windows under the new revision
    by_rev = {rev: sum(d["records"]["consumed"] for d in proc if d["policy"]["provenance"] == rev) for rev in revisions}
    assert by_rev[revisions[0]] >= half + BAD and by_rev[revisions[1]] > 0, by_rev
    assert all(d["window"]["start"] < d["window"]["end"] for d in proc)
    transforms: dict[str, int] = {}
    for d in proc:
        for x in d["transforms"]:
            transforms[x["rule"]] = transforms.get(x["rule"], 0) + x["count"]
    assert transforms == _by_label(samples, "dpp_field_transforms_total", "rule")
    text = orjson.dumps(docs).decode()
    assert not any(r["email"] in text or r["name"] in text for r in records[:200]), "personal data in the audit"

    # the operator commands write to the same audit topic: a halt and resume, a re-identification, a look-up
    def dpp(*args):
        res = run_dpp([*args, "--policy", str(rs.policy), "--bootstrap-servers", rs.bootstrap], timeout_s=120)
        assert res.returncode == 0, res.stderr
        return res
    for what, why in (("halt", "INC-9 complaint"), ("resume", "INC-9 closed")):
        dpp(what, ROUTE, "--reason", why, "--actor", "oncall-3", "--control-topic", control, "--audit-topic", audit)
    dpp("reveal", "--reason", "fraud case 17", "--actor", "analyst-1", "--audit-topic", audit, "--topic", t.sink,
        "--partition", str(sink[0].partition), "--offset", str(sink[0].offset), str(sink[0].offset),
        "--field", "id_number")
    dpp("subject", records[0]["customer_id"], "--subject-field", "customer_id", "--reason", "ER-5",
        "--actor", "dpo-1", "--audit-topic", audit)
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)

    # dpp report over the audit topic
    out = tmp_path / "report"
    want_pdf = shutil.which("chromium") is not None or bool(os.environ.get("DPP_REQUIRE_PDF"))
    res = run_dpp(["report", "--bootstrap-servers", rs.bootstrap, "--audit-topic", audit,
                   "--from", start.isoformat(), "--to", end.isoformat(), "--out", str(out), "--json",
                   "--pdf" if want_pdf else "--no-pdf"], timeout_s=180)
    assert res.returncode == 0, res.stderr
    totals = orjson.loads(res.stdout.strip().splitlines()[-1])[ROUTE]
    assert totals == {"purpose": "", "consumed": consumed, "produced": produced, "blocked": m_blocked,
                      "dead_lettered": m_dead}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "记录处理情况 / Records of processing" in html and f"{consumed:,}" in html and f"{produced:,}" in html
    for shown in (*revisions, "INC-9 complaint", "INC-9 closed", "oncall-3", "fraud case 17", "analyst-1", "id_number", "ER-5",
                  "dpo-1"):
        assert shown in html, shown

    if not want_pdf:
        pytest.skip("Chromium is not installed (apt-get install -y chromium): the PDF part is not checked")
    pdf = out / "report.pdf"
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Records of processing" in text and "记录处理情况" in text and f"{consumed:,}" in text
    assert all(word in text.split() for word in ("INC-9", "oncall-3", "analyst-1", "dpo-1"))  # cells wrap words
    png = tmp_path / "page"
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(pdf), str(png)], check=True)
    (page,) = list(tmp_path.glob("page*.png"))
    assert page.stat().st_size > 5000  # a page with text and charts, not a blank one
