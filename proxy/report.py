"""``dpp report``: the processing-activity report (PIPL Art. 55-56) for a compliance officer.

Input: the audit topic's documents (:func:`aggregate` takes them as dicts, in any order):

* records of processing, ``{"type": "processing", ...}`` (:mod:`proxy.stream.processingrecords`);
* incident switches, ``{"action": "halt" | "resume", "ts", "route", "reason", "actor", ...}``
  (:mod:`proxy.stream.control`);
* re-identifications, ``{"ts", "actor", "reason", "route", "fields", "result": "revealed" | "failed", ...}``
  (:mod:`proxy.reveal`);
* erasures, ``{"action": "forget", "ts", "actor", "reason", "route", "subject_ref", ...}`` (``dpp forget``);
* subject look-ups, ``{"action": "subject", ...}`` (``dpp subject``).

A processing record belongs to the period when its window ends in ``[start, end)``; any other
document when its ``ts`` does. Output: :func:`render_html` (one self-contained page: inline CSS,
SVG charts drawn here, Chinese and/or English labels) and :func:`render_pdf` (headless
Chromium prints that page). No record value is ever in the audit topic, so none is in a report.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

LANGS = ("zh", "en", "both")

LABELS = {
    "title": ("个人信息处理活动报告", "Processing-activity report"),
    "period": ("报告期间", "Period"),
    "generated": ("生成时间", "Generated"),
    "summary": ("记录处理情况", "Records of processing"),
    "chart": ("受保护与被阻止的记录(按时间)", "Records protected and blocked over time"),
    "by_route": ("按路由统计", "By route"),
    "by_purpose": ("按处理目的统计", "By purpose"),
    "revisions": ("生效的策略版本", "Policy revisions in force"),
    "halts": ("处理暂停与恢复", "Halts and resumes"),
    "reveals": ("重新识别", "Re-identifications"),
    "erasures": ("删除(加密销毁)", "Erasures (crypto-shredding)"),
    "lookups": ("数据主体查询", "Data-subject look-ups"),
    "route": ("路由", "Route"),
    "purpose": ("目的", "Purpose"),
    "consumed": ("读取", "Consumed"),
    "produced": ("已保护输出", "Protected (produced)"),
    "blocked": ("阻止", "Blocked"),
    "dead_lettered": ("死信", "Dead-lettered"),
    "by_reason": ("原因", "by reason"),
    "transforms": ("字段处理次数", "Fields transformed"),
    "policy": ("策略", "Policy"),
    "rule": ("规则", "Rule"),
    "keys": ("密钥版本", "Key versions"),
    "first": ("首次", "First seen"),
    "last": ("最后", "Last seen"),
    "when": ("时间", "When"),
    "action": ("操作", "Action"),
    "actor": ("操作人", "Who"),
    "why": ("原因", "Why"),
    "records": ("记录数", "Records"),
    "count": ("次数", "Count"),
    "failed": ("失败", "Failed"),
    "fields": ("字段", "Fields"),
    "subject": ("主体引用", "Subject reference"),
    "workers": ("工作进程", "Workers"),
    "none": ("无", "None"),
    "total": ("合计", "Total"),
    "halt": ("暂停", "halt"),
    "resume": ("恢复", "resume"),
}


def label(key: str, lang: str) -> str:
    """The label ``key`` in ``lang`` (``zh``, ``en``, or ``both``: ``中文 / English``)."""
    zh, en = LABELS[key]
    return zh if lang == "zh" else en if lang == "en" else f"{zh} / {en}"


def parse_time(text: str, end: bool = False) -> _dt.datetime:
    """A UTC datetime from ISO 8601 (``2026-12-07``, ``2026-12-07T10:00``, with or without offset;
    no offset = UTC). A date alone with ``end`` means the end of that day (the next midnight).
    Raises ``ValueError``."""
    t = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    if end and len(text.strip()) == 10:
        t += _dt.timedelta(days=1)
    return t.astimezone(_dt.timezone.utc)


def _ts(doc: dict, key: str = "ts") -> _dt.datetime | None:
    try:
        return parse_time(str(doc[key]))
    except (KeyError, ValueError, TypeError):
        return None


def _add(into: dict, more: dict | None) -> None:
    for k, n in (more or {}).items():
        if n:
            into[k] = into.get(k, 0) + int(n)


@dataclass
class Totals:
    """Record counts of a route or purpose (over the period, or one window of a worker:
    :class:`proxy.stream.processingrecords.Window`). ``transforms``: ``(rule, action)`` → count."""

    consumed: int = 0
    produced: int = 0
    blocked: dict[str, int] = field(default_factory=dict)
    dead_lettered: dict[str, int] = field(default_factory=dict)
    transforms: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, records: dict, transforms: list = ()) -> None:
        """Add the ``records`` and ``transforms`` of a processing record (module doc)."""
        self.consumed += int(records.get("consumed", 0))
        self.produced += int(records.get("produced", 0))
        _add(self.blocked, records.get("blocked"))
        _add(self.dead_lettered, records.get("dead_lettered"))
        _add(self.transforms, {(t["rule"], t["action"]): t["count"] for t in transforms or ()})

    def merge(self, other: "Totals") -> None:
        """Add ``other``'s counts."""
        self.consumed += other.consumed
        self.produced += other.produced
        _add(self.blocked, other.blocked)
        _add(self.dead_lettered, other.dead_lettered)
        _add(self.transforms, other.transforms)

    @property
    def empty(self) -> bool:
        """Whether nothing was counted."""
        return not (self.consumed or self.produced or any(self.blocked.values()) or any(self.dead_lettered.values())
                    or any(self.transforms.values()))

    @property
    def blocked_total(self) -> int:
        return sum(self.blocked.values())

    @property
    def dead_lettered_total(self) -> int:
        return sum(self.dead_lettered.values())


@dataclass
class Report:
    """What :func:`aggregate` found for ``[start, end)``. ``series``: ``(bucket start, produced,
    blocked, dead-lettered)`` per ``bucket`` of time; ``revisions``: ``(route, provenance, keys,
    first window start, last window end)`` in order of first use."""

    start: _dt.datetime
    end: _dt.datetime
    routes: dict[str, Totals] = field(default_factory=dict)
    purposes: dict[str, Totals] = field(default_factory=dict)
    purpose_of: dict[str, str] = field(default_factory=dict)
    workers: set[str] = field(default_factory=set)
    series: list[tuple[_dt.datetime, int, int, int]] = field(default_factory=list)
    bucket: _dt.timedelta = _dt.timedelta(minutes=1)
    revisions: list[tuple[str, str, dict, str, str]] = field(default_factory=list)
    switches: list[dict] = field(default_factory=list)
    reveals: list[dict] = field(default_factory=list)
    """Grouped: ``{"actor", "reason", "route", "first", "last", "revealed", "failed", "fields"}``."""
    erasures: list[dict] = field(default_factory=list)
    lookups: list[dict] = field(default_factory=list)

    @property
    def total(self) -> Totals:
        t = Totals()
        for r in self.routes.values():
            t.merge(r)
        t.transforms = {}
        return t


_BUCKETS = [_dt.timedelta(seconds=s) for s in (1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)]


def _bucket_for(span: _dt.timedelta, window: _dt.timedelta, most: int = 60) -> _dt.timedelta:
    """The smallest bucket at least one ``window`` long giving at most ``most`` buckets over ``span``."""
    for b in _BUCKETS:
        if b >= window and span / b <= most:
            return b
    return _BUCKETS[-1]


def kind(doc: dict) -> str | None:
    """``processing``, ``switch``, ``reveal``, ``erasure``, ``lookup`` or ``None`` (not for the report)."""
    if doc.get("type") == "processing":
        return "processing"
    action = doc.get("action")
    if action in ("halt", "resume"):
        return "switch"
    if action == "forget":
        return "erasure"
    if action == "subject":
        return "lookup"
    if action is None and doc.get("result") in ("revealed", "failed") and "fields" in doc:
        return "reveal"
    return None


def aggregate(docs: Iterable[dict], start: _dt.datetime, end: _dt.datetime) -> Report:
    """Sum the audit documents of ``[start, end)`` (see module doc) into a :class:`Report`.
    ``docs`` is read once (a generator is fine); a processing record is not kept, only its counts."""
    rep = Report(start, end)
    windows, revs = [], {}
    reveals: dict[tuple, dict] = {}
    for d in docs:
        k = kind(d)
        when = _ts(d["window"], "end") if k == "processing" and isinstance(d.get("window"), dict) else _ts(d)
        if k is None or when is None or not start <= when < end:
            continue
        if k == "processing":
            route, purpose = d["route"], d.get("purpose") or ""
            rep.routes.setdefault(route, Totals()).add(d["records"], d.get("transforms"))
            rep.purposes.setdefault(purpose, Totals()).add(d["records"])
            rep.purpose_of[route] = purpose
            rep.workers.add(str(d.get("worker", "")))
            w_start, recs = _ts(d["window"], "start"), d["records"]
            windows.append((when, int(recs.get("produced", 0)), sum(int(n) for n in (recs.get("blocked") or {}).values()),
                            sum(int(n) for n in (recs.get("dead_lettered") or {}).values()),
                            when - w_start if w_start else _dt.timedelta(0)))
            prov = d.get("policy", {}).get("provenance", "")
            w0, w1 = d["window"].get("start", ""), d["window"]["end"]
            key = (route, prov)
            if key in revs:
                r = revs[key]
                revs[key] = (route, prov, r[2], min(r[3], w0), max(r[4], w1))
            else:
                revs[key] = (route, prov, d.get("keys", {}), w0, w1)
        elif k == "switch":
            rep.switches.append(d)
        elif k == "erasure":
            rep.erasures.append(d)
        elif k == "lookup":
            rep.lookups.append(d)
        else:
            g = reveals.setdefault((d.get("actor"), d.get("reason"), d.get("route")), {
                "actor": d.get("actor"), "reason": d.get("reason"), "route": d.get("route"), "first": d["ts"],
                "last": d["ts"], "revealed": 0, "failed": 0, "fields": set()})
            g["first"], g["last"] = min(g["first"], d["ts"]), max(g["last"], d["ts"])
            g["revealed" if d["result"] == "revealed" else "failed"] += 1
            g["fields"].update(d.get("fields") or ())
    rep.revisions = sorted(revs.values(), key=lambda r: (r[3], r[0]))
    for key in ("switches", "erasures", "lookups"):
        getattr(rep, key).sort(key=lambda d: d.get("ts", ""))
    rep.reveals = sorted(reveals.values(), key=lambda g: g["first"])
    if windows:
        lo = min(w[0] for w in windows)
        hi = max(w[0] for w in windows)
        typical = sorted(w[4] for w in windows)[len(windows) // 2]  # the median window length
        rep.bucket = b = _bucket_for(max(hi - lo, _dt.timedelta(seconds=1)), typical)
        base = _dt.datetime(lo.year, lo.month, lo.day, tzinfo=_dt.timezone.utc)
        slots: dict[int, list[int]] = {}
        for when, produced, blocked, dead, _ in windows:
            s = slots.setdefault((when - base) // b, [0, 0, 0])
            s[0] += produced
            s[1] += blocked
            s[2] += dead
        first, last = min(slots), max(slots)
        rep.series = [(base + i * b, *slots.get(i, [0, 0, 0])) for i in range(first, last + 1)]
    return rep


# --------------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","WenQuanYi Zen Hei","Microsoft YaHei","PingFang SC",sans-serif;
 color:#1d2733;margin:24px;font-size:12px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;border-bottom:2px solid #2b6cb0;padding-bottom:2px;margin-top:22px}
table{border-collapse:collapse;margin:6px 0;width:100%}th,td{border:1px solid #c9d3de;padding:3px 6px;text-align:left;
 vertical-align:top}th{background:#edf2f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#4a5568}.small{font-size:10px;color:#4a5568}svg{max-width:100%}
@page{size:A4;margin:14mm}@media print{h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
"""
_COLORS = ("#2b6cb0", "#dd6b20", "#c53030")


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _when(v) -> str:
    """An ISO 8601 time as ``2026-12-07 09:10:00`` (UTC), escaped; other text escaped as is."""
    try:
        return _e(parse_time(str(v)).strftime("%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return _e(v)


def _n(v: int) -> str:
    return f"{v:,}"


def _reasons(d: dict[str, int]) -> str:
    return "<br>".join(f"{_e(k)}: {_n(v)}" for k, v in sorted(d.items()) if v) or "–"


def chart_svg(rep: Report, lang: str, series: tuple[int, ...] = (0, 1, 2), width: int = 720, height: int = 200) -> str:
    """Grouped bars per time bucket of the ``series`` chosen among produced (protected, 0),
    blocked (1) and dead-lettered (2), on one scale; an SVG element."""
    names = [label(k, lang) for k in ("produced", "blocked", "dead_lettered")]
    if not rep.series:
        return f"<p>{_e(label('none', lang))}</p>"
    rows = [(t, *[vals[j] for j in series]) for t, *vals in rep.series]
    names, colors = [names[j] for j in series], [_COLORS[j] for j in series]
    left, right, top, bottom = 64, 12, 28, 40
    pw, ph = width - left - right, height - top - bottom
    top_v = max(max(vals) for _, *vals in rows) or 1
    n = len(rows)
    slot = pw / n
    bar = max(1.0, slot * 0.8 / len(series))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-size="10">']
    for i in range(5):  # grid and axis labels
        v = top_v * i / 4
        y = top + ph - ph * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{_n(round(v))}</text>')
    for i, (t, *vals) in enumerate(rows):
        x0 = left + i * slot + slot * 0.1
        for j, v in enumerate(vals):
            h = ph * v / top_v
            out.append(f'<rect x="{x0 + j * bar:.1f}" y="{top + ph - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                       f'fill="{colors[j]}"><title>{_e(t.isoformat())} {_e(names[j])}: {v}</title></rect>')
    step = max(1, n // 6)
    fmt = "%H:%M:%S" if rep.bucket < _dt.timedelta(minutes=1) else "%m-%d %H:%M" if rep.bucket < _dt.timedelta(days=1) \
        else "%Y-%m-%d"
    for i in range(0, n, step):
        x = left + i * slot + slot / 2
        out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle">{rep.series[i][0].strftime(fmt)}</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#4a5568"/>')
    out.append(f'<text x="{left}" y="{height - 6}" class="small">UTC, {_e(label("records", lang))} / '
               f'{_span(rep.bucket)}</text>')
    x = left
    for j, name in enumerate(names):  # legend
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{colors[j]}"/>'
                   f'<text x="{x + 14}" y="17">{_e(name)}</text>')
        x += 24 + 7 * len(name.encode("utf-8")) // 2 + 40
    out.append("</svg>")
    return "".join(out)


def _span(d: _dt.timedelta) -> str:
    """``30 s``, ``5 min``, ``6 h``, ``1 d``, ``7 d``."""
    n = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} s"


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), lang: str = "en") -> str:
    if not rows:
        return f"<p>{_e(label('none', lang))}</p>"
    h = "".join(f"<th>{_e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _totals_rows(items: dict[str, Totals], first: callable) -> list[list[str]]:
    return [[*first(name), _n(t.consumed), _n(t.produced), _n(t.blocked_total), _reasons(t.blocked),
             _n(t.dead_lettered_total), _reasons(t.dead_lettered)] for name, t in sorted(items.items())]


def render_html(rep: Report, lang: str = "both", generated: _dt.datetime | None = None) -> str:
    """The report as one self-contained HTML page (``lang``: ``zh``, ``en``, ``both``)."""
    L = lambda k: label(k, lang)  # noqa: E731
    gen = (generated or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds")
    counts = [L("consumed"), L("produced"), L("blocked"), L("blocked") + " – " + L("by_reason"),
              L("dead_lettered"), L("dead_lettered") + " – " + L("by_reason")]
    tot = rep.total
    parts = [f'<!DOCTYPE html><html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">'
             f"<title>{_e(L('title'))}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(L('title'))}</h1>",
             f'<p class="meta">{_e(L("period"))}: {_when(rep.start.isoformat())} – {_when(rep.end.isoformat())} (UTC) · '
             f'{_e(L("generated"))}: {_e(gen)} · {_e(L("workers"))}: {len(rep.workers)}</p>',
             f"<h2>{_e(L('summary'))}</h2>",
             _table([L("total"), *counts], [["", _n(tot.consumed), _n(tot.produced), _n(tot.blocked_total),
                                            _reasons(tot.blocked), _n(tot.dead_lettered_total),
                                            _reasons(tot.dead_lettered)]] if rep.routes else [], {1, 2, 3, 5}, lang),
             f"<h2>{_e(L('chart'))}</h2>", chart_svg(rep, lang, (0,)), chart_svg(rep, lang, (1, 2)),
             f"<h2>{_e(L('by_route'))}</h2>",
             _table([L("route"), L("purpose"), *counts],
                    _totals_rows(rep.routes, lambda n: [_e(n), _e(rep.purpose_of.get(n) or "–")]), {2, 3, 4, 6}, lang),
             f"<h2>{_e(L('by_purpose'))}</h2>",
             _table([L("purpose"), *counts], _totals_rows(rep.purposes, lambda n: [_e(n or "–")]), {1, 2, 3, 5}, lang),
             f"<h2>{_e(L('transforms'))}</h2>",
             _table([L("route"), L("rule"), L("action"), L("count")],
                    [[_e(r), _e(rule), _e(a), _n(n)] for r, t in sorted(rep.routes.items())
                     for (rule, a), n in sorted(t.transforms.items())], {3}, lang),
             f"<h2>{_e(L('revisions'))}</h2>",
             _table([L("route"), L("policy"), L("keys"), L("first"), L("last")],
                    [[_e(r), _e(p), _e(", ".join(f"{k} v{v}" for k, v in sorted(keys.items())) or "–"), _when(a), _when(b)]
                     for r, p, keys, a, b in rep.revisions], set(), lang),
             f"<h2>{_e(L('halts'))}</h2>",
             _table([L("when"), L("action"), L("route"), L("actor"), L("why")],
                    [[_when(d.get("ts")), _e(L(d["action"])), _e(d.get("route")), _e(d.get("actor")), _e(d.get("reason"))]
                     for d in rep.switches], set(), lang),
             f"<h2>{_e(L('reveals'))}</h2>",
             _table([L("first"), L("last"), L("route"), L("actor"), L("why"), L("records"), L("failed"), L("fields")],
                    [[_when(g["first"]), _when(g["last"]), _e(g["route"]), _e(g["actor"]), _e(g["reason"]),
                      _n(g["revealed"]), _n(g["failed"]), _e(", ".join(sorted(g["fields"])))] for g in rep.reveals],
                    {5, 6}, lang),
             f"<h2>{_e(L('erasures'))}</h2>",
             _table([L("when"), L("route"), L("actor"), L("why"), L("subject")],
                    [[_when(d.get("ts")), _e(d.get("route")), _e(d.get("actor")), _e(d.get("reason")),
                      _e(d.get("subject_ref"))] for d in rep.erasures], set(), lang),
             f"<h2>{_e(L('lookups'))}</h2>",
             _table([L("when"), L("actor"), L("why"), L("route")],
                    [[_when(d.get("ts")), _e(d.get("actor")), _e(d.get("reason")), _e(", ".join(d.get("routes") or ()))]
                     for d in rep.lookups], set(), lang),
             "</body></html>"]
    return "\n".join(parts)


# --------------------------------------------------------------------------------- PDF
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PdfUnavailable(RuntimeError):
    """No headless Chromium to print the PDF with (the message says how to install one)."""


def find_chromium() -> str | None:
    """Path of a Chromium binary (``DPP_CHROMIUM`` or one of :data:`CHROMIUM_NAMES` on ``PATH``)."""
    env = os.environ.get("DPP_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def render_pdf(html_file: Path, pdf_file: Path, timeout_s: float = 120.0) -> None:
    """Print ``html_file`` to ``pdf_file`` with headless Chromium (no network, a throw-away
    profile). Raises :class:`PdfUnavailable` without Chromium, ``RuntimeError`` when it fails."""
    exe = find_chromium()
    if exe is None:
        raise PdfUnavailable("the PDF needs headless Chromium: apt-get install -y chromium fonts-noto-cjk "
                             "(or set DPP_CHROMIUM); the HTML report was written")
    with tempfile.TemporaryDirectory(prefix="dpp-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf_file}",
               Path(html_file).resolve().as_uri()]
        res = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    if res.returncode != 0 or not Path(pdf_file).is_file() or Path(pdf_file).stat().st_size == 0:
        raise RuntimeError(f"chromium could not print the PDF (exit {res.returncode})")
