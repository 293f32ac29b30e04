"""``dpp diff OLD NEW``: what a policy change does, in words a reviewer reads in a pull request.

Two comparisons, per route (routes are matched by name):

* **the rules** (no data needed). Every rule target (a value field path, ``tag:T``, ``@key``,
  ``@key.FIELD``, ``@headers.NAME``) has an *effect* under each policy: ``clear`` (a ``keep`` rule,
  or no rule with ``unlisted_fields: keep``), ``drop`` (a ``drop`` rule, or no rule with
  ``unlisted_fields: drop``) or ``protect`` (any other action, with its parameters). A target whose
  effect differs is a :class:`FieldChange`: ``clear`` (protected before, leaves in clear now),
  ``kept`` (dropped before, leaves in clear now), ``changed`` (protected differently: action,
  parameters or the current version of its key), ``dropped``, ``protected`` (left in clear
  before). Block rules added/removed and route settings changed (``unlisted_fields``, topics,
  ``retention`` ...) are listed too, as are keys added, removed, with another source or current
  version (:func:`proxy.policytest.key_versions`).
* **a sample** (JSON-lines source values, optional): each json route of both policies runs every
  sample record on the reference path (:meth:`CompiledRoute.process_record`) with **test keys**
  (:func:`proxy.policytest.compile_for_tests`: key sources are never read; a key keeps its test
  material while its name and version stay, so an unchanged rule gives the same output). Reported:
  outcome moves (``sink → blocked consent-withdrawn`` with counts), records whose protected output
  differs and the output paths that differ (array indexes as ``[*]``), and, by running the detectors
  over both protected outputs (:class:`proxy.policycoverage.CoverageScan`), every (path, detector)
  through which more records leave in clear than before.

Warnings (:class:`DiffWarning`, written in capitals) are the dangerous changes: ``clear`` (a target
becomes clear or newly kept, ``unlisted_fields``/``unlisted_headers`` turned to ``keep``, or the
detectors find a personal value leaving in clear that did not before, including on an added
route) and ``joins`` (the output of an existing deterministic rule changes: a ``pseudonymize``,
``fpe`` or ``tokenize`` rule, or a ``detect`` rule replacing by ``pseudonymize``/``fpe``, whose
action, parameters or key version changed, or whose sample output differs: downstream joins on it
break). Reports carry paths, rule parameters, reasons and counts, never a record value or key
material. No Kafka here.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import orjson

from .errors import PolicyError
from .policy.compiler import BLOCK, SINK, CompiledRoute, Outcome
from .policy.loader import LoadedPolicy
from .policy.models import Policy, Route
from .policy.paths import WILDCARD, format_path, overlap, parse_path
from .policycoverage import CoverageScan
from .policytest import _same, compile_for_tests, key_versions

CLEAR, DROP, PROTECT = "clear", "drop", "protect"
WEAKER = "weaker"
"""Warning kind: a mask that now leaves more characters in clear (exit 1 under --fail-on warning)."""
"""Effects of a policy on one rule target."""

CHANGES = {
    "clear": "becomes clear",
    "kept": "newly kept in clear",
    "changed": "protected differently",
    "dropped": "dropped",
    "protected": "newly protected",
}
"""Kinds of :class:`FieldChange`, with the words the reports use."""

DETERMINISTIC_ACTIONS = ("pseudonymize", "fpe", "tokenize")
"""Actions whose output is a function of the input and the key: joins downstream rely on it."""

FAIL_ON = ("warning", "clear", "never")
"""``--fail-on``: exit 1 on any warning (default), only on data leaving in clear, or never."""

PATHS_SHOWN = 10
"""Differing output paths the text and markdown reports name (the JSON report has all)."""

_PARAMS_SKIPPED = {"field", "header", "select", "name"}  # the target, and the metric label


@dataclass
class Effect:
    """What one policy does to one target: ``kind`` (:data:`CLEAR`, :data:`DROP`, :data:`PROTECT`),
    ``text`` (e.g. ``mask keep_first=1``, ``no rule (unlisted_fields: keep)``), ``params`` (the
    rule's parameters, ``None`` without a rule), ``deterministic`` and the ``key_version``
    (``NAME vN``) of its key, if any."""

    kind: str
    text: str
    params: dict | None = None
    deterministic: bool = False
    key_version: str | None = None

    def same(self, other: "Effect") -> bool:
        return (self.kind, self.params, self.key_version) == (other.kind, other.params, other.key_version) and (
            self.params is not None or self.text == other.text)


@dataclass
class FieldChange:
    """One rule target whose effect changes: ``change`` (a key of :data:`CHANGES`), ``old`` and
    ``new`` (effect texts), ``records`` (sample records whose protected output differs under the
    target; ``None`` without a sample or for key/header/tag targets), ``leak`` (it now leaves in
    clear), ``breaks_joins`` (an existing deterministic rule's output changes)."""

    target: str
    change: str
    old: str
    new: str
    records: int | None = None
    leak: bool = False
    breaks_joins: bool = False
    weaker: bool = False
    """A mask that now leaves more characters in clear (``keep_first + keep_last`` grew)."""


@dataclass
class NewLeak:
    """A detector finding personal values in clear at ``path`` of the new protected output in
    ``records`` sample records, against ``before`` records under the old policy."""

    path: str
    detector: str
    records: int
    before: int


@dataclass
class SampleDiff:
    """The sample through one route under both policies: ``records`` run; ``old``/``new`` counts
    by outcome (``sink``, ``blocked REASON``, ``dead-lettered REASON``); ``moves`` (``[old, new,
    records]`` for records whose outcome changes); ``changed`` (records at the sink under both
    whose protected value differs) and ``paths`` (``[path, records]`` of the differing output
    paths); ``leaks`` (:class:`NewLeak`)."""

    records: int = 0
    old: dict[str, int] = field(default_factory=dict)
    new: dict[str, int] = field(default_factory=dict)
    moves: list[list] = field(default_factory=list)
    changed: int = 0
    paths: list[list] = field(default_factory=list)
    leaks: list[NewLeak] = field(default_factory=list)


@dataclass
class DiffWarning:
    """A dangerous change: ``kind`` ``clear`` (something leaves in clear that did not) or ``joins``
    (a deterministic rule's output changes); ``route``; ``text`` (what and where, no value)."""

    kind: str
    route: str
    text: str

    def line(self) -> str:
        head = ("WARNING: PERSONAL DATA LEAVES IN CLEAR" if self.kind == CLEAR
                else "WARNING: PROTECTION WEAKENED" if self.kind == WEAKER
                else "WARNING: DETERMINISTIC OUTPUT CHANGES, JOINS DOWNSTREAM BREAK")
        return f"{head}: route {self.route}: {self.text}"


@dataclass
class RouteDiff:
    """One route: ``status`` (``added``, ``removed``, ``changed``, ``unchanged``), ``settings``
    (``[setting, old, new]``), ``fields`` (:class:`FieldChange`), ``blocks`` (``[added|removed,
    description]``), ``sample`` (:class:`SampleDiff`; ``None`` without a sample or for a route
    that is not json or was removed), ``skipped`` (why the sample did not run), ``warnings``."""

    route: str
    status: str = "unchanged"
    settings: list[list] = field(default_factory=list)
    fields: list[FieldChange] = field(default_factory=list)
    blocks: list[list] = field(default_factory=list)
    sample: SampleDiff | None = None
    skipped: str | None = None
    warnings: list[DiffWarning] = field(default_factory=list)


@dataclass
class KeyChange:
    """A key of the policies: ``change`` (``added``, ``removed``, ``version``, ``source``), ``old``
    and ``new`` (``env, current v1, versions [1]``-style texts; never key material or its source)."""

    name: str
    change: str
    old: str
    new: str


@dataclass
class PolicyDiff:
    """:func:`diff_policies`: ``old``/``new`` (files), ``routes`` (:class:`RouteDiff`, in the new
    policy's order, removed ones last), ``keys`` (:class:`KeyChange`), ``policy`` (``[setting,
    old, new]`` of the policy itself, e.g. its name), ``sample`` (records read, ``None``: none)."""

    old: str
    new: str
    routes: list[RouteDiff] = field(default_factory=list)
    keys: list[KeyChange] = field(default_factory=list)
    policy: list[list] = field(default_factory=list)
    sample: int | None = None

    @property
    def warnings(self) -> list[DiffWarning]:
        return [w for r in self.routes for w in r.warnings]

    @property
    def empty(self) -> bool:
        """Nothing changes: same routes, rules, settings, keys, and the same output on the sample."""
        return not self.keys and not self.policy and all(r.status == "unchanged" for r in self.routes)

    def exit_code(self, fail_on: str = "warning") -> int:
        """1 when ``fail_on`` (:data:`FAIL_ON`) is met: any warning, a ``clear`` one, or never; else 0."""
        kinds = {w.kind for w in self.warnings}
        return int(fail_on == "warning" and bool(kinds) or fail_on == "clear" and CLEAR in kinds)

    def to_dict(self) -> dict:
        """JSON-ready report (no record values, no key material)."""
        d = asdict(self)
        d["empty"] = self.empty
        d["warnings"] = [asdict(w) | {"line": w.line()} for w in self.warnings]
        for r in d["routes"]:
            del r["warnings"]
        return d


# --------------------------------------------------------------------------- rules
def _show(v: Any) -> str:
    return v if isinstance(v, str) and v and " " not in v and '"' not in v else json.dumps(v, ensure_ascii=False)


def _deterministic(rule) -> bool:
    return rule.action in DETERMINISTIC_ACTIONS or (rule.action == "detect" and rule.replace in ("pseudonymize", "fpe"))


def _target(rule, part: str) -> str:
    if part == "key":
        return "@key" + (f".{rule.field}" if rule.field else "")
    if part == "headers":
        return f"@headers.{rule.header}"
    return rule.field if rule.field is not None else f"tag:{rule.select.tag}"


def _effect(rule, versions: dict[str, int]) -> Effect:
    """The effect of ``rule`` (``versions``: key name → current version)."""
    if rule.action == "keep":
        return Effect(CLEAR, "keep", {})
    if rule.action == "drop":
        return Effect(DROP, "drop", {})
    params = rule.model_dump(mode="json", by_alias=True, exclude=_PARAMS_SKIPPED)
    shown = rule.model_dump(mode="json", by_alias=True, exclude=_PARAMS_SKIPPED | {"action"}, exclude_defaults=True)
    text = " ".join([rule.action] + [f"{k}={_show(v)}" for k, v in shown.items()])
    key = getattr(rule, "key", None)
    kv = f"{key} v{versions.get(key, 1)}" if key else None
    return Effect(PROTECT, text, params, _deterministic(rule), kv)


def _rules(route: Route) -> list[tuple[str, Any]]:
    """``[(target, rule)]`` of a route: value rules, key rules, header rules."""
    return ([(_target(r, "value"), r) for r in route.rules]
            + [(_target(r, "key"), r) for r in (route.key.rules if route.key else ())]
            + [(_target(r, "headers"), r) for r in route.headers])


def _default(route: Route, target: str) -> Effect:
    """The effect on ``target`` without a rule."""
    if target.startswith("@key"):
        return Effect(CLEAR, "no rule (the key passes)")
    if target.startswith("@headers."):
        return Effect(CLEAR if route.unlisted_headers == "keep" else DROP, f"no rule (unlisted_headers: {route.unlisted_headers})")
    return Effect(CLEAR if route.unlisted_fields == "keep" else DROP, f"no rule (unlisted_fields: {route.unlisted_fields})")


def _classify(old: Effect, new: Effect) -> str | None:
    if old.same(new) or old.kind == new.kind == CLEAR:
        return None
    if new.kind == CLEAR:
        return "clear" if old.kind == PROTECT else "kept"
    if new.kind == DROP:
        return None if old.kind == DROP else "dropped"
    return "protected" if old.kind == CLEAR else "changed"


def current_versions(policy: Policy) -> dict[str, int]:
    """Key name → current version, as the policy declares it (:func:`~proxy.policytest.key_versions`)."""
    return {name: key_versions(spec)[1] for name, spec in policy.keys.items()}


def _grouped(route: Route) -> dict[str, list]:
    out: dict[str, list] = {}
    for target, rule in _rules(route):
        out.setdefault(target, []).append(rule)
    return out


def field_changes(old: Route, new: Route, old_versions: dict[str, int], new_versions: dict[str, int]) -> list[FieldChange]:
    """Targets whose effect differs between two versions of one route, in the new route's order
    (removed targets after). A target with several rules is compared rule by rule."""
    a, b = _grouped(old), _grouped(new)
    changes = []
    for target in list(b) + [t for t in a if t not in b]:
        olds, news = a.get(target, []), b.get(target, [])
        for i in range(max(len(olds), len(news))):
            oe = _effect(olds[i], old_versions) if i < len(olds) else _default(old, target)
            ne = _effect(news[i], new_versions) if i < len(news) else _default(new, target)
            kind = _classify(oe, ne)
            if kind is None:
                continue
            old_text = oe.text + (f" (key {oe.key_version})" if oe.key_version and oe.key_version != ne.key_version else "")
            new_text = ne.text + (f" (key {ne.key_version})" if ne.key_version and oe.key_version != ne.key_version else "")
            weaker = (kind == "changed" and i < len(olds) and i < len(news)
                      and _revealed(news[i]) > _revealed(olds[i]))
            changes.append(FieldChange(target, kind, old_text, new_text, leak=kind in ("clear", "kept"),
                                       breaks_joins=oe.deterministic, weaker=weaker))
    return changes


def _revealed(rule) -> int:
    """Characters a ``mask`` rule leaves in clear (``keep_first + keep_last``); 0 for other rules."""
    if getattr(rule, "action", None) != "mask":
        return 0
    return (rule.keep_first or 0) + (rule.keep_last or 0)


def _block_text(b) -> str:
    w = b.when
    cond = (f"equals {_show(w.equals)}" if "equals" in w.model_fields_set else
            f"in {json.dumps(w.in_, ensure_ascii=False)}" if w.in_ is not None else f"not_equals {_show(w.not_equals)}")
    return f"{b.reason} when {w.field} {cond}"


_SETTINGS_SKIPPED = {"name", "rules", "block", "headers", "key"}


def route_settings(old: Route, new: Route) -> list[list]:
    """``[setting, old, new]`` of the route settings that differ (topics, formats, unlisted fields
    and headers, retention, limits ...); rules and block rules are compared elsewhere."""
    a = old.model_dump(mode="json", by_alias=True, exclude=_SETTINGS_SKIPPED)
    b = new.model_dump(mode="json", by_alias=True, exclude=_SETTINGS_SKIPPED)
    a["key.format"] = old.key.format if old.key else None
    b["key.format"] = new.key.format if new.key else None
    return [[k, _show(a.get(k)), _show(b.get(k))] for k in list(b) if a.get(k) != b.get(k)]


def _key_text(spec) -> str:
    numbers, current = key_versions(spec)
    return f"{spec.source}, current v{current}, versions {numbers}"


def key_changes(old: Policy, new: Policy) -> list[KeyChange]:
    """Keys added, removed, with another current version or version list (``version``), or read from
    another source (``source``: the material may differ; outputs cannot be compared offline)."""
    out = []
    for name in sorted(old.keys.keys() | new.keys.keys()):
        a, b = old.keys.get(name), new.keys.get(name)
        if a is None or b is None:
            out.append(KeyChange(name, "added" if a is None else "removed", _key_text(a) if a else "-",
                                 _key_text(b) if b else "-"))
        elif key_versions(a) != key_versions(b):
            out.append(KeyChange(name, "version", _key_text(a), _key_text(b)))
        elif a.model_dump(exclude={"current", "versions"}) != b.model_dump(exclude={"current", "versions"}):
            out.append(KeyChange(name, "source", _key_text(a), _key_text(b)))
    return out


# --------------------------------------------------------------------------- sample
def _label(out: Outcome) -> str:
    if out.kind == SINK:
        return "sink"
    return f"{'blocked' if out.kind == BLOCK else 'dead-lettered'} {out.reason}"


def _leaves(node: Any, at: tuple = ()):
    """``(concrete path, leaf)`` of a parsed value; an empty object or array below the top is a leaf."""
    if type(node) is dict and (node or not at):
        for k, v in node.items():
            yield from _leaves(v, at + (k,))
    elif type(node) is list and (node or not at):
        for i, v in enumerate(node):
            yield from _leaves(v, at + (i,))
    else:
        yield at, node


_MISSING = object()


def differing_paths(a: Any, b: Any) -> set[tuple]:
    """Output paths (array indexes as ``[*]``) whose leaf values differ between two parsed values
    (a leaf missing on one side differs)."""
    la, lb = dict(_leaves(a)), dict(_leaves(b))
    out = set()
    for p in la.keys() | lb.keys():
        x, y = la.get(p, _MISSING), lb.get(p, _MISSING)
        if x is _MISSING or y is _MISSING or not _same(x, y):
            out.add(tuple(WILDCARD if isinstance(s, int) else s for s in p))
    return out


def _parsed(out: Outcome) -> Any:
    try:
        return None if out.value is None else orjson.loads(out.value)
    except orjson.JSONDecodeError:
        return out.value


def _covers(pattern: tuple, path: tuple) -> bool:
    """Whether a rule's parsed path (wildcards, ``**`` and ``{a,b}`` included) selects the output
    path ``path`` or one of its ancestors."""
    same, above, _ = overlap(pattern, path)
    return same or above


def _general(target: str) -> tuple:
    return tuple(WILDCARD if isinstance(s, int) else s for s in parse_path(target))


def sample_diff(old: CompiledRoute | None, new: CompiledRoute, values: Iterable[bytes | None], *,
                targets: Iterable[str] = (), regions: Iterable[str] = ()) -> tuple[SampleDiff, dict[str, int]]:
    """Run ``values`` through ``old`` (``None``: the route is new) and ``new``, one record at a time:
    ``(SampleDiff, {target: sample records whose output differs at or under it})`` for the value
    field paths among ``targets`` (key, header and ``tag:`` targets are not counted: the sample
    holds values only). Crypto-shredding routes share one in-memory subject-key store, so each
    data subject has the same random key under both."""
    if old is not None and old.subject_mode and new.subject_mode:
        new.subject_store = old.subject_store
    segs = {t: _general(t) for t in targets if not t.startswith(("@", "tag:"))}
    sd = SampleDiff()
    old_counts: Counter = Counter()
    new_counts: Counter = Counter()
    moves: Counter = Counter()
    per_path: Counter = Counter()
    per_target: Counter = Counter()
    new_scan = CoverageScan(new, regions=regions)
    old_scan = CoverageScan(old, regions=regions) if old is not None else None
    for v in values:
        sd.records += 1
        n = new.process_record(v)
        new_scan.add(n)
        ln = _label(n)
        new_counts[ln] += 1
        if old is None:
            continue
        o = old.process_record(v)
        old_scan.add(o)
        lo = _label(o)
        old_counts[lo] += 1
        if lo != ln:
            moves[(lo, ln)] += 1
        elif lo == "sink" and o.value != n.value:
            a, b = _parsed(o), _parsed(n)
            paths = differing_paths(a, b) if type(a) is dict and type(b) is dict else set() if _same(a, b) else {()}
            if paths:
                sd.changed += 1
                per_path.update(paths)
                per_target.update(t for t, sg in segs.items() if any(_covers(sg, p) for p in paths))
    sd.old, sd.new = dict(old_counts), dict(new_counts)
    sd.moves = [[a, b, k] for (a, b), k in sorted(moves.items(), key=lambda x: (-x[1], x[0]))]
    sd.paths = [[format_path(p) if p else "(whole value)", k]
                for p, k in sorted(per_path.items(), key=lambda x: (-x[1], format_path(x[0])))]
    before = {(lk.path, lk.detector): lk.records for lk in old_scan.finish().leaking} if old_scan else {}
    sd.leaks = [NewLeak(lk.path, lk.detector, lk.records, before.get((lk.path, lk.detector), 0))
                for lk in new_scan.finish().leaking if lk.records > before.get((lk.path, lk.detector), 0)]
    return sd, {t: per_target[t] for t in segs}


# --------------------------------------------------------------------------- the diff
def _json_routes(loaded: LoadedPolicy) -> list[str]:
    return [r.name for r in loaded.policy.routes if r.format == "json"]


def diff_policies(old: LoadedPolicy, new: LoadedPolicy, sample: list[bytes | None] | None = None, *,
                  routes: Iterable[str] = (), regions: Iterable[str] = ()) -> PolicyDiff:
    """Compare two loaded policies (``routes``: only these names; default all) and, when ``sample``
    (raw JSON record values) is given, run it through each json route of both with test keys.

    Raises :class:`PolicyError` when a policy cannot be compiled with test keys, ``KeyError`` for a
    route named in ``routes`` that neither policy has, ``ValueError`` for an unknown region."""
    names = list(routes)
    po, pn = old.policy, new.policy
    known = {r.name for r in po.routes} | {r.name for r in pn.routes}
    for n in names:
        if n not in known:
            raise KeyError(f"no route {n!r} in either policy; routes: {sorted(known)}")
    keep = (lambda n: n in names) if names else (lambda n: True)
    old_routes = {r.name: r for r in po.routes if keep(r.name)}
    new_routes = {r.name: r for r in pn.routes if keep(r.name)}
    d = PolicyDiff(old.file, new.file, sample=None if sample is None else len(sample))
    d.keys = key_changes(po, pn)
    if po.name != pn.name:
        d.policy.append(["name", po.name, pn.name])
    co = cn = None
    if sample is not None:
        co = compile_for_tests(old, routes=[n for n in _json_routes(old) if n in old_routes])
        cn = compile_for_tests(new, routes=[n for n in _json_routes(new) if n in new_routes])
    ov, nv = current_versions(po), current_versions(pn)
    for name in list(new_routes) + [n for n in old_routes if n not in new_routes]:
        a, b = old_routes.get(name), new_routes.get(name)
        rd = RouteDiff(name)
        d.routes.append(rd)
        if b is None:
            rd.status = "removed"
            continue
        if a is not None:
            rd.settings = route_settings(a, b)
            rd.fields = field_changes(a, b, ov, nv)
            ob, nb = [x.model_dump(mode="json", by_alias=True) for x in a.block], [x.model_dump(mode="json", by_alias=True) for x in b.block]
            rd.blocks = ([["added", _block_text(x)] for x, j in zip(b.block, nb) if j not in ob]
                         + [["removed", _block_text(x)] for x, j in zip(a.block, ob) if j not in nb])
        if sample is not None:
            if b.format != "json" or (a is not None and a.format != "json"):
                rd.skipped = f"the sample runs json routes; this one reads {b.format if b.format != 'json' else a.format}"
            else:
                targets = [fc.target for fc in rd.fields] + (_deterministic_targets(a) if a is not None else [])
                rd.sample, counts = sample_diff(None if a is None else co.route(name), cn.route(name), sample,
                                                targets=targets, regions=regions)
                if a is not None:
                    _count_fields(rd, a, ov, counts)
        _warn(rd, a, b)
        if a is None:
            rd.status = "added"
        elif rd.settings or rd.fields or rd.blocks or (rd.sample and (rd.sample.moves or rd.sample.changed)):
            rd.status = "changed"
    return d


def _deterministic_targets(route: Route) -> list[str]:
    return [t for t, rules in _grouped(route).items() if any(_deterministic(r) for r in rules)]


def _count_fields(rd: RouteDiff, old: Route, versions: dict, counts: dict[str, int]) -> None:
    """Give each field change its sample count (``counts``: :func:`sample_diff`'s), and name the
    deterministic rules left as they were whose sample output changes all the same (a new policy
    name binds domain-less rules ...)."""
    for fc in rd.fields:
        fc.records = counts.get(fc.target)
    named = {fc.target for fc in rd.fields}
    for target, rules in _grouped(old).items():
        if target not in named and counts.get(target):
            text = _effect(rules[0], versions).text
            rd.fields.append(FieldChange(target, "changed", text, text + " (same rule, other output: policy name or key)",
                                         records=counts[target], breaks_joins=True))


def _warn(rd: RouteDiff, old: Route | None, new: Route) -> None:
    for fc in rd.fields:
        counted = f", output changes in {fc.records} sample record(s)" if fc.records else ""
        if fc.leak:
            rd.warnings.append(DiffWarning(CLEAR, rd.route, f"{fc.target} {CHANGES[fc.change]} ({fc.old} -> {fc.new}){counted}"))
        if fc.breaks_joins:
            rd.warnings.append(DiffWarning("joins", rd.route, f"{fc.target} ({fc.old} -> {fc.new}){counted}"))
        if fc.weaker:
            rd.warnings.append(DiffWarning(WEAKER, rd.route, f"{fc.target} leaves more characters in clear "
                                                             f"({fc.old} -> {fc.new}){counted}"))
    for setting, a, b in rd.settings:
        if setting in ("unlisted_fields", "unlisted_headers") and b == "keep":
            what = "fields" if setting == "unlisted_fields" else "headers"
            rd.warnings.append(DiffWarning(CLEAR, rd.route, f"{setting} {a} -> {b}: {what} without a rule now leave in clear"))
    if rd.sample is not None:
        by_path: dict[str, list[NewLeak]] = {}
        for lk in rd.sample.leaks:
            by_path.setdefault(lk.path, []).append(lk)
        for path, leaks in by_path.items():
            found = ", ".join(f"{lk.detector} in {lk.records} record(s) (before {lk.before})" for lk in leaks)
            rd.warnings.append(DiffWarning(CLEAR, rd.route, f"{path}: the detectors find personal values in clear: {found}"))


# --------------------------------------------------------------------------- reports
def _outcome_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda x: (x[0] != "sink", x[0]))) or "none"


def _route_lines(rd: RouteDiff) -> list[tuple[str, str]]:
    """``[(kind, text)]`` of one route for the text and markdown reports (kind: ``setting``,
    ``field``, ``block``, ``sample``, ``skipped``)."""
    out = [("setting", f"{s}: {a} -> {b}") for s, a, b in rd.settings]
    for fc in rd.fields:
        counted = "" if fc.records is None else f"; output changes in {fc.records} sample record(s)"
        out.append(("field", f"{fc.target}: {CHANGES[fc.change]}: {fc.old} -> {fc.new}{counted}"))
    out += [("block", f"block rule {kind}: {text}") for kind, text in rd.blocks]
    sd = rd.sample
    if sd is not None:
        out.append(("sample", f"sample: {sd.records} record(s): before {_outcome_counts(sd.old) if rd.status != 'added' else '(no route)'}; "
                              f"after {_outcome_counts(sd.new)}"))
        out += [("sample", f"{k} record(s) move: {a} -> {b}") for a, b, k in sd.moves]
        if sd.changed:
            shown = ", ".join(f"{p} {k}" for p, k in sd.paths[:PATHS_SHOWN])
            more = f" and {len(sd.paths) - PATHS_SHOWN} more path(s)" if len(sd.paths) > PATHS_SHOWN else ""
            out.append(("sample", f"{sd.changed} record(s) reaching the sink under both change output: {shown}{more}"))
        out += [("sample", f"new in clear: {lk.path} ({lk.detector}) in {lk.records} record(s), before {lk.before}")
                for lk in sd.leaks]
    if rd.skipped:
        out.append(("skipped", f"sample not run: {rd.skipped}"))
    return out


def _verdict(d: PolicyDiff) -> str:
    n = len(d.warnings)
    if d.empty:
        return "no change"
    return f"{n} warning(s)" if n else "no dangerous change"


def format_text(d: PolicyDiff) -> str:
    """The text report: one block per route that is not unchanged, keys, warnings, a verdict line."""
    lines = [f"dpp diff {d.old} -> {d.new}" + (f" (sample: {d.sample} record(s))" if d.sample is not None else "")]
    lines += [f"policy {s}: {a} -> {b}" for s, a, b in d.policy]
    for rd in d.routes:
        if rd.status == "unchanged":
            continue
        lines.append(f"route {rd.route}: {rd.status}")
        lines += [f"  {text}" for _, text in _route_lines(rd)]
    lines += [f"key {k.name}: {k.change}: {k.old} -> {k.new}" for k in d.keys]
    lines += [w.line() for w in d.warnings]
    lines.append(_verdict(d))
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(d: PolicyDiff) -> str:
    """The report as a pull-request comment (GitHub-flavoured markdown): warnings first, then a table
    of field changes and a list of the rest per route."""
    out = [f"### dpp diff: `{d.old}` → `{d.new}`", ""]
    if d.warnings:
        out += [f"> - **{_md(w.line())}**" for w in d.warnings] + [""]
    out.append(f"**{_verdict(d)}**" + (f" (sample: {d.sample} record(s))" if d.sample is not None else ""))
    out += [f"* policy {s}: `{a}` → `{b}`" for s, a, b in d.policy]
    for rd in d.routes:
        if rd.status == "unchanged":
            continue
        out += ["", f"#### route `{rd.route}`: {rd.status}", ""]
        if rd.fields:
            out += ["| field | change | before | after | sample records changed |", "|---|---|---|---|---|"]
            out += [f"| `{_md(fc.target)}` | {CHANGES[fc.change]} | `{_md(fc.old)}` | `{_md(fc.new)}` | "
                    f"{'' if fc.records is None else fc.records} |" for fc in rd.fields] + [""]
        out += [f"* {_md(text)}" for kind, text in _route_lines(rd) if kind != "field"]
    if d.keys:
        out += ["", "#### keys", ""] + [f"* `{k.name}`: {k.change}: {k.old} → {k.new}" for k in d.keys]
    return "\n".join(out)


def format_json(d: PolicyDiff) -> str:
    """The report as one JSON document (:meth:`PolicyDiff.to_dict`)."""
    return json.dumps(d.to_dict(), ensure_ascii=False, indent=2)


FORMATS = {"text": format_text, "markdown": format_markdown, "json": format_json}
"""``--format`` → renderer."""


__all__ = ["CHANGES", "DETERMINISTIC_ACTIONS", "FAIL_ON", "FORMATS", "Effect", "FieldChange", "KeyChange", "NewLeak",
           "PolicyDiff", "PolicyError", "RouteDiff", "SampleDiff", "DiffWarning", "current_versions", "diff_policies",
           "differing_paths", "field_changes", "format_json", "format_markdown", "format_text", "key_changes",
           "route_settings", "sample_diff"]
