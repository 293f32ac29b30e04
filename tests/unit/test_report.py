"""proxy.report and ``dpp report --audit-file``: aggregation of a fixed list of audit documents
(totals per route and purpose, revisions, halts, reveals, erasures, the period's bounds) and the
HTML (bilingual headings, the numbers, escaped operator text)."""
from __future__ import annotations

import datetime as dt

import orjson
import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.report import aggregate, label, parse_time, render_html

UTC = dt.timezone.utc


def processing(route, purpose, start, minutes, consumed, produced, blocked=None, dead=None, rev="r1",
               keys=None, transforms=()):
    s = dt.datetime(2026, 12, 7, 9, 0, tzinfo=UTC) + dt.timedelta(minutes=start)
    e = s + dt.timedelta(minutes=minutes)
    return {"type": "processing", "version": 1, "window": {"start": s.isoformat(), "end": e.isoformat()},
            "worker": "w1", "route": route, "purpose": purpose,
            "policy": {"name": "p", "revision": rev, "sha256": "0" * 64, "provenance": f"p@{rev}"},
            "keys": keys or {"fpe": 1}, "final": False,
            "records": {"consumed": consumed, "produced": produced, "blocked": blocked or {}, "dead_lettered": dead or {}},
            "transforms": [{"rule": r, "action": a, "count": n} for r, a, n in transforms]}


DOCS = [
    processing("a", "analytics", 0, 1, 100, 90, {"consent-withdrawn": 6}, {"invalid-json": 4},
               transforms=[("email", "pseudonymize", 90)]),
    processing("a", "analytics", 1, 1, 50, 50, transforms=[("email", "pseudonymize", 48)]),
    processing("a", "analytics", 2, 1, 10, 7, {"retention-expired": 3}, rev="r2", keys={"fpe": 2}),
    processing("b", "support", 0, 1, 20, 19, None, {"invalid-json": 1}),
    processing("c", "", 0, 1, 5, 5),
    processing("a", "analytics", 60 * 24, 1, 999, 999),          # the next day: outside the period
    {"ts": "2026-12-07T09:01:30.000+00:00", "action": "halt", "route": "b", "reason": "INC-7 <script>",
     "actor": "王芳", "policy": "p@r1", "control_topic": "dpp.control"},
    {"ts": "2026-12-07T09:02:30.000+00:00", "action": "resume", "route": "b", "reason": "INC-7 closed",
     "actor": "王芳", "policy": "p@r1", "control_topic": "dpp.control"},
    *[{"ts": f"2026-12-07T09:0{i}:00.000+00:00", "actor": "li", "reason": "fraud case 9", "policy": "p@r1",
       "route": "a", "record": {"line": i}, "fields": ["card"], "result": "revealed" if i < 3 else "failed",
       **({"error": "subject-forgotten"} if i >= 3 else {})} for i in range(4)],
    {"ts": "2026-12-07T09:05:00.000+00:00", "action": "forget", "actor": "dpo", "reason": "ER-12", "policy": "p@r1",
     "route": "a", "subject_ref": "ref-xyz", "had_key": True},
    {"ts": "2026-12-07T09:06:00.000+00:00", "action": "subject", "actor": "dpo", "reason": "ER-12", "policy": "p@r1",
     "routes": ["a"], "rules": ["email"], "inputs": ["email"]},
    {"ts": "2026-12-07T09:07:00.000+00:00", "action": "dead-letter-open", "actor": "ops", "reason": "x"},  # not reported
    {"unrelated": True},
]
DAY = (parse_time("2026-12-07"), parse_time("2026-12-07", end=True))


def test_totals_per_route_and_purpose():
    rep = aggregate(DOCS, *DAY)
    a, b, c = rep.routes["a"], rep.routes["b"], rep.routes["c"]
    assert (a.consumed, a.produced, a.blocked, a.dead_lettered) == (
        160, 147, {"consent-withdrawn": 6, "retention-expired": 3}, {"invalid-json": 4})
    assert (b.consumed, b.produced, b.blocked_total, b.dead_lettered) == (20, 19, 0, {"invalid-json": 1})
    assert (c.consumed, c.produced) == (5, 5)
    assert a.transforms == {("email", "pseudonymize"): 138}
    assert set(rep.purposes) == {"analytics", "support", ""}
    assert rep.purposes["analytics"].consumed == 160 and rep.purposes["support"].dead_lettered_total == 1
    t = rep.total
    assert (t.consumed, t.produced, t.blocked_total, t.dead_lettered_total) == (185, 171, 9, 5)
    # every consumed record is produced, blocked or dead-lettered: the fixture keeps that balance
    assert t.consumed == t.produced + t.blocked_total + t.dead_lettered_total


@pytest.mark.parametrize("start, end, consumed", [
    ("2026-12-07", "2026-12-07", 185),                         # a date alone: the whole day
    ("2026-12-07T09:00", "2026-12-07T09:02", 100 + 20 + 5),   # [09:00, 09:02): the windows ending 09:01
    ("2026-12-07T09:02:30", "2026-12-08", 10 + 999),
    ("2026-12-08T00:00+08:00", "2026-12-08T09:00+08:00", 0),    # an offset: 16:00-01:00 UTC, nothing ended there
])
def test_the_period_selects_windows_by_their_end(start, end, consumed):
    rep = aggregate(DOCS, parse_time(start), parse_time(end, end=True))
    assert sum(t.consumed for t in rep.routes.values()) == consumed


def test_revisions_halts_reveals_erasures():
    rep = aggregate(DOCS, *DAY)
    assert [(r, p, keys) for r, p, keys, _, _ in rep.revisions] == [
        ("a", "p@r1", {"fpe": 1}), ("b", "p@r1", {"fpe": 1}), ("c", "p@r1", {"fpe": 1}), ("a", "p@r2", {"fpe": 2})]
    first_a = rep.revisions[0]
    assert first_a[3].startswith("2026-12-07T09:00") and first_a[4].startswith("2026-12-07T09:02")
    assert [(d["action"], d["actor"]) for d in rep.switches] == [("halt", "王芳"), ("resume", "王芳")]
    (g,) = rep.reveals
    assert (g["actor"], g["reason"], g["route"], g["revealed"], g["failed"], g["fields"]) == (
        "li", "fraud case 9", "a", 3, 1, {"card"})
    assert [d["subject_ref"] for d in rep.erasures] == ["ref-xyz"]
    assert [d["reason"] for d in rep.lookups] == ["ER-12"]
    assert rep.series and sum(p for _, p, _, _ in rep.series) == 171
    assert sum(b for _, _, b, _ in rep.series) == 9 and sum(d for _, _, _, d in rep.series) == 5


@pytest.mark.parametrize("lang", ["zh", "en", "both"])
def test_html_has_the_headings_numbers_and_escapes_text(lang):
    page = render_html(aggregate(DOCS, *DAY), lang)
    for key in ("summary", "by_route", "by_purpose", "revisions", "halts", "reveals", "erasures", "chart"):
        assert label(key, lang) in page
    if lang == "both":
        assert "记录处理情况 / Records of processing" in page
    assert "185" in page and "171" in page and "consent-withdrawn: 6" in page
    assert "<script>" not in page and "INC-7 &lt;script&gt;" in page
    assert page.count("<svg") == 2


def test_cli_report_from_audit_files(tmp_path):
    f = tmp_path / "audit.jsonl"
    f.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in DOCS) + b"not json\n")
    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "--audit-file", str(f), "--from", "2026-12-07", "--to", "2026-12-07",
                                    "--out", str(out), "--lang", "en", "--no-pdf", "--json"])
    assert res.exit_code == 0, res.output
    totals = orjson.loads(res.stdout.strip().splitlines()[-1])
    assert totals["a"]["consumed"] == 160 and totals["b"]["dead_lettered"] == {"invalid-json": 1}
    assert "Records of processing" in out.read_text(encoding="utf-8")


def test_cli_report_pdf_without_chromium_says_so(tmp_path, monkeypatch):
    f = tmp_path / "audit.jsonl"
    f.write_bytes(orjson.dumps(DOCS[0]) + b"\n")
    monkeypatch.setenv("DPP_CHROMIUM", "no-such-chromium-binary")
    res = CliRunner().invoke(main, ["report", "--audit-file", str(f), "--from", "2026-12-07", "--to", "2026-12-08",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 1
    assert "needs headless Chromium" in res.output and (tmp_path / "report.html").is_file()


@pytest.mark.parametrize("args", [["--from", "yesterday", "--to", "2026-12-07"],
                                  ["--from", "2026-12-08", "--to", "2026-12-07"]])
def test_cli_report_bad_period(tmp_path, args):
    f = tmp_path / "audit.jsonl"
    f.write_bytes(b"")
    res = CliRunner().invoke(main, ["report", "--audit-file", str(f), "--out", str(tmp_path), *args])
    assert res.exit_code == 2
