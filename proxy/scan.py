"""``dpp scan``: what personal data does a sample of records hold, field by field, and a starter
policy that protects it.

:func:`scan_records` walks every leaf of every sampled JSON record (arrays as ``[*]``), runs all
detectors (:mod:`proxy.detectors`) on strings and numbers, and counts per field path and detector
in how many records the kind occurs and whether it fills the whole value. Field names add what
patterns cannot find (person names, street addresses, postcodes, birth dates, customer ids,
free-text notes): :func:`field_hint`. :func:`suggest_policy` turns a :class:`ScanReport` into
policy YAML that ``dpp check`` accepts, with minimum-necessary defaults:

* ``unlisted_fields: drop`` (allow-list): every field seen without personal data gets a ``keep``
  rule, so fields that appear later are withheld until someone reviews them;
* a field whose values *are* identifiers gets a structured rule: e-mail → ``pseudonymize``
  (``normalize: email``), card numbers → ``mask`` keeping the last 4 digits, any other kind →
  ``pseudonymize`` (keyed HMAC, joinable, not reversible);
* a field where identifiers sit inside other text, and every free-text field, gets ``detect``
  with ``replace: placeholder``;
* name hints → ``mask`` keeping the first character; street/address → ``drop``; postcode →
  ``mask`` keeping 2; birth date → year only; customer/user ids → ``pseudonymize``.

Nothing here reads Kafka (topic sampling is :mod:`proxy.stream.sample`) and nothing returned or
printed holds a record value: reports carry paths, kinds and counts only. An object key that
itself holds personal data (a map keyed by e-mail address) is shown as ``<KIND>`` in the path and
gets no rule, so the allow-list drops it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson
import yaml

from .detectors import build_detectors, find_all
from .detectors.base import Detector
from .detectors.registry import DETECTOR_CLASSES
from .policy.paths import WILDCARD, format_path

MAX_PATHS = 2000
"""Distinct field paths tracked; further paths are counted in ``ScanReport.overflow_paths``."""

FREE_TEXT_CORE = ("cn_resident_id", "cn_mobile", "cn_uscc", "bank_card", "email", "phone", "iban",
                  "cn_passport", "hk_id")
"""Detectors a suggested ``detect`` rule always runs on free text, besides those found."""

_HINTS: tuple[tuple[str, re.Pattern], ...] = tuple((k, re.compile(p, re.IGNORECASE)) for k, p in (
    ("street_address", r"^(?:street|street_?address|address|addr|address_?line_?\d*|line_?[12]|home_?address|"
                       r"mailing_?address|shipping_?address|billing_?address|地址|住址|详细地址|街道)$"),
    ("postcode", r"^(?:post_?code|postal_?code|zip|zip_?code|邮编|邮政编码)$"),
    ("birth_date", r"^(?:birth_?date|date_?of_?birth|dob|birthday|birth|出生日期|生日)$"),
    ("person_name", r"^(?:name|full_?name|first_?name|last_?name|given_?name|family_?name|surname|"
                    r"middle_?name|nick_?name|display_?name|contact_?name|customer_?name|user_?name|"
                    r"real_?name|姓名|名字|联系人|真实姓名)$"),
    ("personal_id", r"^(?:customer_?id|user_?id|uid|account_?id|member_?id|client_?id|person_?id|"
                    r"subject_?id|用户id|客户id|会员号)$"),
    ("free_text", r"^(?:note|notes|comment|comments|remark|remarks|message|description|memo|"
                  r"body|content|text|feedback|备注|留言|描述|说明)$"),
))


def field_hint(path: tuple) -> str | None:
    """Kind of personal data suggested by the last key of ``path`` (a parsed path), or ``None``.

    One of ``street_address``, ``postcode``, ``birth_date``, ``person_name``, ``personal_id``,
    ``free_text``. Names and street addresses cannot be found by patterns; their field names can.
    """
    last = next((s for s in reversed(path) if isinstance(s, str)), None)
    if last is None:
        return None
    for kind, rx in _HINTS:
        if rx.match(last):
            return kind
    return None


@dataclass
class KindStats:
    """One detector in one field: ``records`` holding it, ``findings`` in all, ``whole_values``
    (values that are exactly one finding, surrounding blanks aside)."""

    records: int = 0
    findings: int = 0
    whole_values: int = 0


@dataclass
class FieldReport:
    """One field path (``format_path`` spelling): ``present`` = records where it occurs,
    ``values`` = leaf values seen, ``values_with_findings``, ``types`` (JSON type → count),
    ``kinds`` (detector → :class:`KindStats`), ``hint`` (:func:`field_hint`), ``personal_key``
    (a key on the path holds personal data)."""

    path: str
    segments: tuple
    present: int = 0
    values: int = 0
    values_with_findings: int = 0
    types: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, KindStats] = field(default_factory=dict)
    hint: str | None = None
    personal_key: bool = False
    container: bool = False  # also seen as an object/array (values of both shapes)
    tags: set = field(default_factory=set)
    """Schema tags (Avro ``confluent:tags``) the writer schemas give this field."""

    def share(self, kind: str, records: int) -> float:
        """Share of scanned records in which ``kind`` occurs in this field (0..1)."""
        ks = self.kinds.get(kind)
        return ks.records / records if ks and records else 0.0


@dataclass
class ScanReport:
    """Result of :func:`scan_records`: ``records`` scanned, ``invalid`` (not a JSON object),
    ``fields`` by path (first-seen order), ``detectors`` run, ``overflow_paths``."""

    records: int = 0
    invalid: int = 0
    fields: dict[str, FieldReport] = field(default_factory=dict)
    detectors: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    overflow_paths: int = 0

    def personal_fields(self) -> list[FieldReport]:
        """Fields with a detector finding or a name hint."""
        return [f for f in self.fields.values() if f.kinds or f.hint or f.tags]

    def to_dict(self) -> dict:
        """JSON-ready summary (paths, kinds, counts, shares and the suggested action; no values)."""
        rules = {r["field"]: r for r in suggest_rules(self)}
        out = []
        for f in self.fields.values():
            out.append({
                "path": f.path,
                "present": f.present,
                "present_share": round(f.present / self.records, 4) if self.records else 0.0,
                "types": dict(sorted(f.types.items())),
                "hint": f.hint,
                "personal_key": f.personal_key,
                "tags": sorted(f.tags),
                "kinds": {k: {"records": s.records, "share": round(s.records / self.records, 4) if self.records else 0.0,
                              "findings": s.findings, "whole_values": s.whole_values}
                          for k, s in sorted(f.kinds.items(), key=lambda kv: -kv[1].records)},
                "suggested": _describe(rules.get(f.path)),
            })
        return {"records": self.records, "invalid": self.invalid, "detectors": self.detectors,
                "regions": self.regions, "overflow_paths": self.overflow_paths, "fields": out}


def _describe(rule: dict | None) -> str | None:
    if rule is None:
        return None
    a = rule["action"]
    if a == "detect":
        return f"detect ({rule.get('replace', 'placeholder')})"
    if a == "mask":
        return "mask" + "".join(f" {k}={rule[k]}" for k in ("keep_first", "keep_last") if rule.get(k))
    return a


_TYPE = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null", dict: "object",
         list: "array"}


class _Scanner:
    def __init__(self, detectors: tuple[Detector, ...]):
        self.detectors = detectors
        self.report = ScanReport(detectors=[d.name for d in detectors])
        self.containers: set[str] = set()

    def _field(self, segs: tuple) -> FieldReport | None:
        path = format_path(segs)
        fr = self.report.fields.get(path)
        if fr is None:
            if len(self.report.fields) >= MAX_PATHS:
                self.report.overflow_paths += 1
                return None
            fr = self.report.fields[path] = FieldReport(path, segs, hint=field_hint(segs))
        return fr

    def record(self, obj: dict, tags: dict[str, list[tuple]] | None = None) -> None:
        self.report.records += 1
        seen: dict[str, set] = {}  # path -> kinds seen in this record
        self._tags = tags
        self._walk(obj, (), False, seen)
        for path, kinds in seen.items():
            fr = self.report.fields[path]
            fr.present += 1
            for k in kinds:
                fr.kinds.setdefault(k, KindStats()).records += 1

    def _key(self, key: str) -> tuple[str, bool]:
        fs = find_all(key, self.detectors)
        if fs:
            return f"<{DETECTOR_CLASSES[fs[0].detector].placeholder}>", True
        return key, False

    def _walk(self, node: Any, segs: tuple, personal_key: bool, seen: dict) -> None:
        t = type(node)
        if t is dict:
            if segs:
                self._mark_container(segs, seen)
            for k, v in node.items():
                k2, pk = self._key(k) if k else (k, False)
                if not k2:
                    continue  # an empty key cannot be named by a policy path; the allow-list drops it
                self._walk(v, segs + (k2,), personal_key or pk, seen)
            return
        if t is list:
            if segs:
                self._mark_container(segs, seen)
            for v in node:
                self._walk(v, segs + (WILDCARD,), personal_key, seen)
            return
        if not segs:
            return
        fr = self._field(segs)
        if fr is None:
            return
        kinds = seen.setdefault(fr.path, set())
        fr.personal_key = fr.personal_key or personal_key
        if self._tags:
            fr.tags.update(_tags_at(segs, self._tags))
        tn = _TYPE.get(t, "other")
        fr.types[tn] = fr.types.get(tn, 0) + 1
        fr.values += 1
        if t is str:
            text = node
        elif (t is int or t is float) and abs(node) >= 100000:
            text = orjson.dumps(node).decode()  # a mobile or card number stored as a JSON number
        else:
            return
        findings = find_all(text, self.detectors)
        if not findings:
            return
        fr.values_with_findings += 1
        stripped = text.strip()
        lead = len(text) - len(text.lstrip())
        whole = len(findings) == 1 and findings[0].start == lead and findings[0].end == lead + len(stripped)
        for f in findings:
            ks = fr.kinds.setdefault(f.detector, KindStats())
            ks.findings += 1
            if whole:
                ks.whole_values += 1
            kinds.add(f.detector)

    _tags: dict | None = None

    def _mark_container(self, segs: tuple, seen: dict) -> None:
        if len(self.containers) < MAX_PATHS:
            self.containers.add(format_path(segs))

    def finish(self) -> ScanReport:
        for path in self.containers:
            fr = self.report.fields.get(path)
            if fr is not None:
                fr.container = True
        return self.report


def _tags_at(segs: tuple, tags: dict[str, list[tuple]]) -> set[str]:
    """Tags whose schema paths (``str``, ``EVERY_ITEM``, ``EVERY_VALUE`` segments) name ``segs``
    (a scanned path: keys, and :data:`WILDCARD` for array elements; a map's keys are literal)."""
    from .formats.base import EVERY_ITEM, EVERY_VALUE
    out = set()
    for tag, paths in tags.items():
        for p in paths:
            if len(p) == len(segs) and all(
                    (a is EVERY_ITEM and b is WILDCARD) or (a is EVERY_VALUE and isinstance(b, str)) or a == b
                    for a, b in zip(p, segs)):
                out.add(tag)
                break
    return out


class Tagged(tuple):
    """``(record, {tag: [schema paths]})``: a decoded record with its writer schema's tags."""


def scan_records(records: Iterable[Any], detectors: Iterable[str] | None = None, *,
                 regions: Iterable[str] = ()) -> ScanReport:
    """Scan parsed records (anything but a JSON object counts as ``invalid``).

    ``detectors``: registry names (default: all); ``regions``: for the ``phone`` detector
    (default none: only numbers written with ``+`` and a country code). Raises ``KeyError`` /
    ``ValueError`` for an unknown detector / region.
    """
    scan = RecordScan(detectors, regions=regions)
    for rec in records:
        scan.add(rec)
    return scan.finish()


class RecordScan:
    """:func:`scan_records` one record at a time (same arguments and errors): :meth:`add` each
    parsed record, then :meth:`finish` for the report. For a caller that scans several streams
    side by side without holding them."""

    def __init__(self, detectors: Iterable[str] | None = None, *, regions: Iterable[str] = ()):
        regions = tuple(regions)
        self._sc = _Scanner(build_detectors(detectors, regions=regions))
        self._sc.report.regions = list(regions)

    def add(self, rec: Any) -> None:
        """Scan one parsed record (anything but a JSON object, or a tagged one, counts as invalid)."""
        sc = self._sc
        if type(rec) is dict:
            sc.record(rec)
        elif type(rec) is Tagged and type(rec[0]) is dict:
            sc.record(rec[0], rec[1])
        else:
            sc.report.records += 1
            sc.report.invalid += 1

    def finish(self) -> ScanReport:
        """The report of the records added."""
        return self._sc.finish()


def parse_values(values: Iterable[bytes | str | None]) -> Iterator[Any]:
    """Decode raw record values (JSON text); undecodable ones come out as ``None`` (counted as
    invalid by :func:`scan_records`). Never raises for bad input, never echoes it."""
    for v in values:
        if v is None:
            yield None
            continue
        try:
            yield orjson.loads(v)
        except orjson.JSONDecodeError:
            yield None


def parse_avro(values: Iterable[bytes | None], reader: Any) -> Iterator[Any]:
    """Decode Confluent-framed Avro values with ``reader`` (:class:`proxy.formats.avro.AvroReader`)
    into :class:`Tagged` records; undecodable ones (no frame, unknown id, bad bytes) come out as
    ``None``. A registry that cannot be reached raises ``DependencyUnavailable``."""
    from .errors import FormatError
    for v in values:
        if v is None:
            yield None
            continue
        try:
            tree, tags = reader.decode(v)
        except FormatError:
            yield None
            continue
        yield Tagged((_jsonable(tree), tags))


def _jsonable(node: Any) -> Any:
    """Avro logical-type values (dates, decimals, UUIDs) and bytes as text, as rules see them."""
    t = type(node)
    if t is dict:
        return {k: _jsonable(v) for k, v in node.items()}
    if t is list:
        return [_jsonable(v) for v in node]
    if t in (str, int, float, bool) or node is None:
        return node
    if t is bytes:
        return node.hex()
    return node.isoformat() if hasattr(node, "isoformat") else str(node)


def read_jsonl(path: str | Path, sample: int) -> Iterator[bytes]:
    """The first ``sample`` non-blank lines of a JSON-lines file, as bytes (``-`` = stdin)."""
    import sys
    fh = sys.stdin.buffer if str(path) == "-" else open(path, "rb")
    try:
        n = 0
        for line in fh:
            if n >= sample:
                break
            line = line.strip()
            if not line:
                continue
            n += 1
            yield line
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


# --------------------------------------------------------------------------- suggestions
_WHOLE_SHARE = 0.8


def _structured(fr: FieldReport) -> dict | None:
    """A structured rule when the field's values are identifiers themselves, else ``None``."""
    if not fr.values_with_findings:
        return None
    whole = sum(k.whole_values for k in fr.kinds.values())
    if whole < _WHOLE_SHARE * fr.values_with_findings or fr.types.get("object") or fr.types.get("array"):
        return None
    kinds = set(fr.kinds)
    if kinds == {"email"}:
        return {"action": "pseudonymize", "key": "pseudonym", "normalize": "email", "encoding": "base32",
                "length": 20, "prefix": "em_"}
    if kinds == {"bank_card"}:
        return {"action": "mask", "keep_last": 4}
    return {"action": "pseudonymize", "key": "pseudonym", "normalize": "string", "encoding": "base32", "length": 20}


def _detect_rule(fr: FieldReport, report: ScanReport) -> dict:
    found = [k for k in DETECTOR_CLASSES if k in fr.kinds]
    names = found + [k for k in FREE_TEXT_CORE if k not in found and k in report.detectors]
    rule = {"action": "detect", "detectors": names, "replace": "placeholder"}
    if report.regions and "phone" in names:
        rule["regions"] = list(report.regions)
    return rule


_HINT_RULES = {
    "street_address": {"action": "drop"},
    "postcode": {"action": "mask", "keep_first": 2},
    "birth_date": {"action": "mask", "keep_first": 4, "mask_char": "0"},
    "person_name": {"action": "mask", "keep_first": 1},
    "personal_id": {"action": "pseudonymize", "key": "pseudonym", "normalize": "string", "encoding": "base32",
                    "length": 20},
}


def suggest_rules(report: ScanReport) -> list[dict]:
    """One rule per scanned leaf field (see module doc), as plain dicts in first-seen order.

    Paths that are also containers (an object in some records, a string in others), paths under
    a personal key and paths with unsupported shapes get no rule (the allow-list drops them).
    """
    rules: list[dict] = []
    containers = {f.path for f in report.fields.values() if f.container}
    for fr in report.fields.values():
        if fr.personal_key or fr.path in containers:
            continue
        only_scalar = not (fr.types.get("object") or fr.types.get("array"))
        rule: dict | None = None
        hint = fr.hint
        if hint == "street_address":
            rule = dict(_HINT_RULES[hint])
        elif fr.kinds:
            rule = _structured(fr) or (_detect_rule(fr, report) if only_scalar else None)
        elif hint == "free_text" and only_scalar:
            rule = _detect_rule(fr, report)
        elif hint in _HINT_RULES:
            rule = dict(_HINT_RULES[hint])
            if rule["action"] in ("mask", "pseudonymize") and (fr.types.get("boolean")):
                rule = {"action": "redact"}
        if rule is None:
            if fr.container:
                continue
            rule = {"action": "keep"}
        if rule["action"] not in ("keep", "drop", "redact") and fr.types.get("boolean"):
            rule = {"action": "redact"}  # booleans cannot be masked/pseudonymized value-wise
        rules.append({"field": fr.path, **rule})
    return rules


def _slug(text: str, default: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return (s or default)[:48]


def _topic(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")
    return (s or "records")[:200]


def suggest_policy(report: ScanReport, *, source: str, name: str | None = None) -> str:
    """Starter policy YAML for one route reading ``source`` (a topic name; the sink is
    ``<source>.protected``, the dead-letter topic ``<source>.dlq``). Keys come from the
    environment variables ``DPP_KEY_PSEUDONYM`` (HMAC) and ``DPP_KEY_DEAD_LETTER`` (AES).

    The result passes ``dpp check`` (loaded and validated by the tests).
    """
    topic = _topic(source)
    pname = _slug(name or topic, "scanned")
    rules = suggest_rules(report)
    keys: dict[str, dict] = {"dead-letter": {"source": "env", "name": "DPP_KEY_DEAD_LETTER"}}
    if any(r.get("key") == "pseudonym" for r in rules):
        keys["pseudonym"] = {"source": "env", "name": "DPP_KEY_PSEUDONYM"}
    named, used = [], {r["field"] for r in rules}
    for i, r in enumerate(rules):
        r = dict(r)
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", r["field"]):
            # metric label: a readable slug of the path (orders[*].card_number -> orders.card_number)
            slug = re.sub(r"[^a-z0-9._-]+", "-", r["field"].lower().replace("[*]", "")).strip("-._")[:56]
            if not slug or not slug[0].isalnum() or slug in used:
                slug = f"{slug or 'field'}-{i}".lstrip("-._") or f"field-{i}"
            used.add(slug)
            r["name"] = slug
        named.append(r)
    routes = [{
        "name": "protect",
        "source": topic,
        "sink": f"{topic}.protected"[:249],
        "dead_letter": f"{topic}.dlq"[:249],
        "dead_letter_key": "dead-letter",
        "unlisted_fields": "drop",
        "rules": named,
    }]
    if not named:
        routes[0]["unlisted_fields"] = "keep"
    doc = {"version": 1, "name": pname,
           "description": f"Starter policy from dpp scan of {report.records} records; review before use.",
           "keys": keys, "routes": routes}
    header = (
        "# Starter policy written by `dpp scan --suggest-policy` (minimum-necessary defaults).\n"
        f"# Sampled {report.records} records; fields not seen in the sample are dropped (unlisted_fields: drop).\n"
        "# Review every rule, then validate with `dpp check`.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


# --------------------------------------------------------------------------- terminal table
def format_table(report: ScanReport, *, all_fields: bool = False) -> str:
    """Plain-text table: one line per (field, kind), personal fields first; then a summary."""
    rules = {r["field"]: r for r in suggest_rules(report)}
    tagged = any(fr.tags for fr in report.fields.values())
    rows = [("FIELD", "PRESENT", "KIND", "RECORDS", "SHARE", "WHOLE", "SUGGESTED")]
    n = report.records or 1
    for fr in report.fields.values():
        sug = _describe(rules.get(fr.path)) or "-"
        if fr.kinds:
            for i, (k, ks) in enumerate(sorted(fr.kinds.items(), key=lambda kv: -kv[1].records)):
                rows.append((fr.path if i == 0 else "", str(fr.present) if i == 0 else "", k, str(ks.records),
                             f"{ks.records / n:.1%}", f"{ks.whole_values}/{fr.values}", sug if i == 0 else ""))
        elif fr.hint:
            rows.append((fr.path, str(fr.present), f"({fr.hint}, by name)", "-", "-", "-", sug))
        elif fr.personal_key:
            rows.append((fr.path, str(fr.present), "(personal data in key)", "-", "-", "-", "dropped"))
        elif fr.tags:
            rows.append((fr.path, str(fr.present), "(tagged in the schema)", "-", "-", "-", sug))
        elif all_fields:
            rows.append((fr.path, str(fr.present), "-", "-", "-", "-", sug))
    if tagged:  # a TAGS column: the schema tags of each field (first row of the field)
        by_path = {fr.path: fr for fr in report.fields.values()}
        rows = [rows[0][:2] + ("TAGS",) + rows[0][2:]] + [
            r[:2] + ((",".join(sorted(by_path[r[0]].tags)) or "-") if r[0] in by_path else "",) + r[2:]
            for r in rows[1:]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    personal = len(report.personal_fields())
    lines.append("")
    lines.append(f"{report.records} records scanned ({report.invalid} not JSON objects), {len(report.fields)} fields, "
                 f"{personal} with personal data" + (f", {report.overflow_paths} paths over the limit"
                                                      if report.overflow_paths else ""))
    return "\n".join(lines)
