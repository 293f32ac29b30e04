"""Compile a validated policy into per-route plain callables, once, at load time.

``CompiledRoute.process(value_bytes)`` is the whole per-record path of the policy engine:
deserialize (orjson) → block conditions → field rules → allow-list pruning and drops → serialize.
It returns an :class:`Outcome` and never raises for a bad record: a record that cannot be parsed
or fully protected comes back as a dead-letter outcome (fail closed). Counters are kept as plain
integers in :class:`RouteStats`; the stream layer moves them into Prometheus once per batch.

No Kafka here (import-linter contract): the same compiled route serves ``dpp run`` and ``dpp apply``.
"""
from __future__ import annotations

import bisect
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

import orjson

from collections import OrderedDict

from ..crypto import subjects as _subjects
from ..crypto.keys import KeyRing, SecretKey, load_keyring, require_aes
from ..errors import DependencyUnavailable, FormatError, KeyLoadError, PolicyError, Reason, RecordError, Stage, TransformError
from ..formats import build_codec
from ..formats.json import big_int_literal, dumps_wide, loads_exact, loads_record
from ..formats.base import EVERY_ITEM, EVERY_VALUE, Codec, SchemaPlan, SchemaSource, merge_allow_trees
from ..transforms import BuildContext, build_transform
from . import consent as _consent
from . import fastpath as _fastpath
from . import jsonplan as _jsonplan
from .loader import LoadedPolicy
from .models import DropRule, Retention, Route, duration_seconds
from .parts import HeaderProtector, KeyProtector
from .paths import ANY_KEY, DEEP, WILDCARD, PathShapeError, compile_visit, expand_choices, format_path, has_wildcards, parse_path

log = logging.getLogger("proxy.policy")

SINK, BLOCK, DEAD_LETTER = "sink", "block", "dead_letter"

LATENCY_BUCKETS = (2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1)
"""Upper bounds (seconds) of the ``record_processing_seconds`` histogram buckets."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one record goes: ``kind`` is ``sink``, ``block`` or ``dead_letter``.

    ``value`` is the protected payload for ``sink`` (``None`` for a tombstone); ``reason`` is the
    block reason or the dead-letter reason code; ``stage``, ``error_class`` and ``rule`` describe a
    dead-letter cause. No field ever holds part of the original record.
    """

    kind: str
    value: bytes | None = None
    reason: str = ""
    stage: str = ""
    error_class: str = ""
    rule: str = ""
    subject: str = ""
    key: bytes | None = None
    """:meth:`CompiledRoute.process_record`: the protected key (``None`` for a null key, and for
    a dead-letter outcome whose key rules failed)."""
    headers: list | None = None
    """:meth:`CompiledRoute.process_record`: the protected headers (before dpp's own)."""


TOMBSTONE = Outcome(SINK, None)

DL_LIMIT_BYTES = Outcome(DEAD_LETTER, reason=Reason.LIMIT_RECORD_BYTES.value, stage=Stage.DESERIALIZE.value,
                         error_class="LimitExceeded")
DL_LIMIT_DEPTH = Outcome(DEAD_LETTER, reason=Reason.LIMIT_DEPTH.value, stage=Stage.DESERIALIZE.value,
                         error_class="LimitExceeded")
DL_LIMIT_TIME = Outcome(DEAD_LETTER, reason=Reason.LIMIT_TIME_BUDGET.value, stage=Stage.TRANSFORM.value,
                        error_class="LimitExceeded")


def depth_exceeds(obj: Any, limit: int) -> bool:
    """Whether ``obj`` (parsed JSON: dicts, lists, scalars) nests containers deeper than ``limit``
    (a top-level object is depth 1). Iterative, visits containers only: O(containers)."""
    stack = [(obj, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, d = pop()
        if d > limit:
            return True
        children = node.values() if type(node) is dict else node
        for c in children:
            if type(c) is dict or type(c) is list:
                push((c, d + 1))
    return False


@dataclass
class RouteStats:
    """Plain counters of one route since the last :meth:`drain` (single-threaded use)."""

    consumed: int = 0
    produced: int = 0
    blocked: dict[str, int] = field(default_factory=dict)
    dead_lettered: dict[str, int] = field(default_factory=dict)
    transforms: list[int] = field(default_factory=list)   # per rule index
    unmatched: list[int] = field(default_factory=list)    # per rule index
    latency_buckets: list[int] = field(default_factory=list)
    latency_sum: float = 0.0
    detections: dict[str, int] = field(default_factory=dict)  # detector -> findings; filled by drain()
    detection_sources: list = field(default_factory=list, repr=False, compare=False)  # drain_detections()

    def drain(self) -> "RouteStats":
        """Return a copy of the counters and reset them to zero (``detections`` are collected
        here from every ``detection_sources`` callable, e.g. ``Detect.drain_detections``)."""
        snap = RouteStats(self.consumed, self.produced, self.blocked, self.dead_lettered,
                          self.transforms, self.unmatched, self.latency_buckets, self.latency_sum)
        for src in self.detection_sources:
            for det, n in src().items():
                snap.detections[det] = snap.detections.get(det, 0) + n
        self.consumed = self.produced = 0
        self.blocked, self.dead_lettered = {}, {}
        self.transforms = [0] * len(snap.transforms)
        self.unmatched = [0] * len(snap.unmatched)
        self.latency_buckets = [0] * len(snap.latency_buckets)
        self.latency_sum = 0.0
        return snap


def _json_equal(a: Any, b: Any) -> bool:
    """Equality with JSON types: booleans equal only booleans; ints and floats compare numerically."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _compile_block(when) -> Callable[[dict], bool]:
    segs = parse_path(when.field)
    visit = compile_visit(segs)
    if "not_equals" in getattr(when, "model_fields_set", ()):  # a BlockWhen (tests pass plain namespaces)
        # block unless a value at the path equals it: a missing field, a null on the way or a
        # string where an object is needed all block (fail closed: no stated consent, no pass)
        want = when.not_equals

        def unless(obj: dict) -> bool:
            found = []
            try:
                visit(obj, lambda c, k: found.append(c[k]))
            except PathShapeError:
                return True
            return not any(_json_equal(v, want) for v in found)
        return unless
    wanted = [when.equals] if when.in_ is None else list(when.in_)
    if all(type(s) is str for s in segs):
        # Object keys only (the common case, e.g. consent.analytics): at most one node, walked
        # inline -- what compile_visit's step_key/leaf_key do, without a call and a list per record.
        parents, last = segs[:-1], segs[-1]

        def hit_keys(obj: dict) -> bool:
            node = obj
            for k in parents:
                if type(node) is not dict:
                    return False
                node = node.get(k)
                if node is None:
                    return False
            if type(node) is not dict or last not in node:
                return False
            v = node[last]
            for w in wanted:
                if _json_equal(v, w):
                    return True
            return False
        return hit_keys

    def hit(obj: dict) -> bool:
        found = []
        visit(obj, lambda c, k: found.append(c[k]))
        return any(_json_equal(v, w) for v in found for w in wanted)

    return hit


EPOCH_MS_FROM = 100_000_000_000
"""``retention.epoch: auto``: a numeric event time of at least this magnitude is milliseconds
(1e11 s is the year 5138; 1e11 ms is March 1973), a smaller one seconds."""

RETENTION_EXPIRED = Outcome(BLOCK, reason=Reason.RETENTION_EXPIRED.value)
CONSENT_MISSING = Outcome(BLOCK, reason=Reason.CONSENT_MISSING.value)
CONSENT_WITHDRAWN = Outcome(BLOCK, reason=Reason.CONSENT_WITHDRAWN.value)


def event_time(value: Any, epoch: str = "auto") -> float:
    """Seconds since the Unix epoch (UTC) of a record's event time ``value``: a string in ISO 8601
    with a UTC offset (``Z`` or ``+08:00``; at most 64 ASCII characters), or an int/float of
    seconds or milliseconds (``epoch``: ``seconds``, ``milliseconds``, or ``auto``: see
    :data:`EPOCH_MS_FROM`). Raises ``ValueError`` for anything else (a timestamp without an
    offset, a date alone, a boolean, null, an object); the message holds no part of the value."""
    t = type(value)
    if t is int or t is float:
        ms = epoch == "milliseconds" or (epoch == "auto" and abs(value) >= EPOCH_MS_FROM)
        return value / 1000 if ms else float(value)
    if t is str and 0 < len(value) <= 64 and value.isascii():
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an ISO 8601 timestamp") from None
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("an ISO 8601 timestamp without a UTC offset")
        return dt.timestamp()
    raise ValueError("not a timestamp")


def _compile_retention(ret: Retention) -> tuple[Callable[[dict], list] | None, float, str]:
    """``(collect, max_age_s, epoch)``: ``collect(record)`` lists the values at ``ret.field``
    (a missing key, null or a non-object on the way: none); ``None`` for ``source:
    record_timestamp`` (epoch ``milliseconds``)."""
    if ret.source == "record_timestamp":
        return None, float(duration_seconds(ret.max_age)), "milliseconds"
    visit = compile_visit(parse_path(ret.field))

    def collect(obj: dict) -> list:
        found: list = []
        visit(obj, lambda c, k: found.append(c[k]))
        return found
    return collect, float(duration_seconds(ret.max_age)), ret.epoch


def _allow_tree(paths: list[tuple]) -> dict | bool:
    """The allow-list tree of the listed paths: nested dicts keyed by segment (``str``, ``int``,
    :data:`WILDCARD`, :data:`ANY_KEY`, :data:`DEEP`; alternations expanded), ``True`` = kept whole."""
    tree: dict = {}
    for segs in (p for path in paths for p in expand_choices(path)):
        node = tree
        for i, s in enumerate(segs):
            k = s  # WILDCARD itself, never "*": a member literally named "*" is not a wildcard
            if i == len(segs) - 1:
                node[k] = True
            else:
                nxt = node.get(k)
                if nxt is True:
                    break
                if nxt is None:
                    nxt = node[k] = {}
                node = nxt
    return tree


def _prune(node: Any, tree: dict | bool, dropped: set | None = None) -> Any:
    """Keep only what ``tree`` lists; a listed container of an unexpected type is removed (``_GONE``).

    Runs after the rules, on the record as received (array indexes of ``a[1]`` rules unshifted);
    ``dropped`` holds ``(id(container), key)`` of nodes that drop rules selected, left out of the
    containers rebuilt here (inside a subtree kept whole they are deleted in place afterwards).
    """
    if tree is True:
        return node
    if type(node) is dict and (ANY_KEY in tree or DEEP in tree):
        return _prune_wild(node, tree, dropped)
    if type(node) is dict:
        out = {}
        for k, sub in tree.items():
            if isinstance(k, str) and k in node:
                if dropped and (id(node), k) in dropped:
                    continue
                v = _prune(node[k], sub, dropped)
                if v is not _GONE:
                    out[k] = v
        return out
    if type(node) is list:
        wild = tree.get(WILDCARD)
        out_l = []
        for i, item in enumerate(node):
            if dropped and (id(node), i) in dropped:
                continue
            sub = tree.get(i)
            if sub is None:
                sub = wild
            elif wild is not None:  # a[0].c and a[*].b both list fields of a[0]
                sub = merge_allow_trees(sub, wild)
            if sub is None:
                continue
            v = _prune(item, sub, dropped)
            if v is not _GONE:
                out_l.append(v)
        return out_l
    return _GONE


_GONE = object()


def _prune_wild(node: dict, tree: dict, dropped: set | None) -> dict:
    """:func:`_prune` of an object under a tree with ``*`` or ``**``: the named members first (in
    the tree's order, as :func:`_prune`), then the others in the record's order. ``**`` (``DEEP:
    rest``) lists ``rest`` here and in every object below; an object kept only because ``**``
    looked inside it, and in which nothing is listed, is left out rather than kept empty."""
    deep = tree.get(DEEP)
    here = {k: v for k, v in tree.items() if k is not DEEP}
    if deep is not None:
        here = merge_allow_trees(here, deep)
    if here is True:
        return node
    anyk = here.get(ANY_KEY)
    out = {}
    named = [k for k in here if type(k) is str and k in node]
    for k in named + [k for k in node if k not in here]:
        if dropped and (id(node), k) in dropped:
            continue
        child = node[k]
        sub = here.get(k) if type(k) is str else None
        if anyk is not None:
            sub = anyk if sub is None else merge_allow_trees(sub, anyk)
        only_deep = sub is None
        if deep is not None and type(child) is dict:
            sub = {DEEP: deep} if sub is None else merge_allow_trees(sub, {DEEP: deep})
        if sub is None:
            continue
        v = _prune(child, sub, dropped)
        if v is _GONE or (only_deep and v == {}):
            continue
        out[k] = v
    return out




def _delete_nodes(hits: list) -> None:
    """Delete every ``(container, key)`` the drop rules selected, each once.

    All drop rules select on the record before anything is deleted, so ``a[0]`` and ``a[1].x``
    mean the elements as received; list elements are deleted from the highest index down so
    the indexes stay valid (object members last; deleting inside a removed node is harmless).
    """
    seen: set = set()
    todo = []
    for c, k in hits:
        ident = (id(c), k)
        if ident not in seen:
            seen.add(ident)
            todo.append((c, k))
    todo.sort(key=lambda h: h[1] if type(h[0]) is list else -1, reverse=True)
    for c, k in todo:
        del c[k]


class CompiledRoute:
    """A route compiled for the record path. Build with :func:`compile_policy`.

    Attributes: ``name``, ``source``, ``sink``, ``dead_letter``, ``group`` (consumer group),
    ``rule_labels``/``rule_actions`` (per rule index, for metrics), ``dead_letter_key`` (bytes,
    AES key for sealing dead-letter payloads), ``stats`` (:class:`RouteStats`), ``transforms``.
    """

    def __init__(self, route: Route, policy_name: str, keys: Mapping[str, SecretKey],
                 keyrings: Mapping[str, KeyRing] | None = None, schema_source: SchemaSource | None = None):
        self.name = route.name
        self.purpose = route.purpose or ""
        """The route's declared purpose (a slug), ``""`` when the policy names none."""
        self.source, self.sink, self.dead_letter = route.source, route.sink, route.dead_letter
        self.group = route.consumer_group or f"dpp.{policy_name}.{route.name}"
        self.exactly_once = route.processing_guarantee == "exactly_once"
        """Kafka transactions per batch (:class:`proxy.stream.engine.RouteWorker`)."""
        self.dead_letter_key = require_aes(keys[route.dead_letter_key], f"dead_letter_key of route {route.name}")
        self.dead_letter_key_name = route.dead_letter_key
        lim = route.limits
        self.limits = lim
        self._max_record_bytes, self._max_depth = lim.max_record_bytes, lim.max_depth
        self._time_budget_s = lim.time_budget_ms / 1000.0
        ctx = BuildContext(policy_name=policy_name, route_name=route.name, keys=keys, keyrings=keyrings,
                           max_detect_chars=lim.max_detect_chars)
        key_rules = list(route.key.rules) if route.key is not None else []
        self.rules = [r for r in route.rules if r.select is None]
        """Value rules on field paths (``select`` rules are :attr:`tag_rules`)."""
        self.tag_rules = [r for r in route.rules if r.select is not None]
        """Value rules selecting fields by schema tag, in policy order (avro, jsonschema routes)."""
        self.all_rules = self.rules + key_rules + list(route.headers) + self.tag_rules
        """Field value rules, key rules, header rules, then tag rules: the index space of the rule counters."""
        used = sorted({r.key for r in self.all_rules if getattr(r, "key", None)})
        self.key_versions = {k: (keyrings[k].current if keyrings and k in keyrings else 1) for k in used}
        self.key_versions_header = ",".join(f"{k}={v}" for k, v in self.key_versions.items()).encode()
        key_labels = [("key:" + (r.name or r.field)) if (r.name or r.field) else "key" for r in key_rules]
        header_labels = ["header:" + r.label for r in route.headers]
        self.rule_labels = ([r.label for r in self.rules] + key_labels + header_labels
                            + [r.label for r in self.tag_rules])
        self.rule_actions = [r.action for r in self.all_rules]
        self.transforms = [build_transform(r, ctx) for r in self.rules]
        self.format = route.format
        self._tree = (_allow_tree([parse_path(r.field) for r in self.rules if not isinstance(r, DropRule)])
                      if route.unlisted_fields == "drop" else None)
        self.schema_plan = _schema_plan(route.rules, self._tree)
        """What the value rules do to a writer schema's types (:class:`SchemaPlan`; schema formats)."""
        self._codec: Codec | None = _value_codec(route, schema_source, self.schema_plan)
        self._decoded_ctx = None  # the value codec's context of the record in process()
        self._key = (KeyProtector(key_rules, _key_codec(route, schema_source), ctx, key_labels)
                     if key_rules else None)
        self._headers = (HeaderProtector(route.headers, route.unlisted_headers, ctx, header_labels)
                         if route.headers or route.unlisted_headers == "drop" else None)
        self.has_parts = self._key is not None or self._headers is not None
        """Whether the route has rules on keys or headers (else both pass unchanged)."""
        self._key_base, self._header_base = len(self.rules), len(self.rules) + len(key_rules)
        self._tag_base = self._header_base + len(route.headers)
        self._tag_transforms: dict[tuple[int, tuple], Callable] = {}  # (tag rule, path) -> set_node
        self._build_ctx = ctx
        self._ctx, self._keyrings = ctx, dict(keyrings or {k: KeyRing(k, {1: v}) for k, v in keys.items()})
        sk = route.subject_keys
        self.subject_mode = sk is not None
        if sk is not None:
            self.subject_topic = sk.topic
            self.subject_kek = require_aes(keys[sk.key], f"subject_keys of route {route.name}")
            self._subject_visit = compile_visit(parse_path(sk.field))
            self.subject_store: _subjects.SubjectKeyStore = _subjects.MemorySubjectKeys()
            self._reversible = [i for i, t in enumerate(self.transforms) if t.reversible]
            self._subject_cache: OrderedDict[bytes, list] = OrderedDict()
        self._active = list(self.transforms)
        self._blocks = [(b.when, _compile_block(b.when), b.reason) for b in route.block]
        self.clock: Callable[[], float] = time.time
        """"Now" for ``retention`` (seconds since the Unix epoch; read once per record; tests set
        a fixed one). A record redelivered later may be expired by then: that is the purpose."""
        self.retention = route.retention
        self._retention = _compile_retention(route.retention) if route.retention is not None else None
        self.uses_record_timestamp = route.retention is not None and route.retention.source == "record_timestamp"
        """Whether the engine must pass each record's Kafka timestamp (ms) to the record paths."""
        self._record_ts: int | None = None  # the Kafka timestamp of the record in process()/the batch path
        self.consent = route.consent
        self.consent_table: _consent.ConsentTable = _consent.ConsentTable()
        """Consent states (:mod:`proxy.policy.consent`): the engine sets the table its reader of
        ``consent.topic`` fills; the default is empty (every subject without a decision)."""
        if route.consent is not None:
            self.consent_purpose = route.consent.purpose or route.purpose
            self._consent_visit = compile_visit(parse_path(route.consent.subject_field))
            self._consent_allow_unknown = route.consent.unknown == "allow"
        # Rules run in policy order; drops run after the others so they never hide a sibling's path.
        self._dotted = [r.field if "." in r.field and '"' not in r.field and "[" not in r.field
                        and not has_wildcards(parse_path(r.field)) else None for r in self.rules]
        self._order = sorted(range(len(self.rules)), key=lambda i: isinstance(self.rules[i], DropRule))
        self._steps = [self._step(i) for i in self._order]
        self._deferred: dict[int, list] = {}
        if not self.subject_mode:
            for i, t in enumerate(self.transforms):
                if getattr(t, "encrypt_batch", None) is not None:
                    self._deferred[i] = []
        self._record_index = 0
        self._batch_finish: list[tuple[int, list]] = []  # (record index, drop hits): _finish after the flush
        self._batch_steps = [self._step(i, defer=True) for i in self._order]
        self.stats = RouteStats(transforms=[0] * len(self.rule_labels), unmatched=[0] * len(self.rule_labels),
                                latency_buckets=[0] * (len(LATENCY_BUCKETS) + 1),
                                detection_sources=[t.drain_detections for t in self._all_transforms()
                                                   if hasattr(t, "drain_detections")])
        self._fast = None if self.subject_mode or self._codec is not None else _fastpath.build(self)
        self.json_plan = _jsonplan.build(self) if self._fast is not None else None
        """The route's ``proxy._native.JsonPlan`` (rules over raw JSON bytes in C,
        :mod:`proxy.policy.jsonplan`), or ``None`` when the route has anything it does not do."""
        self.record_path = ("reference" if self._fast is None else "native-json" if self.json_plan is not None
                            else "native" if _fastpath.native_available() else "python")
        """Which batch path runs: ``native-json`` (``JsonPlan``, then the rest as ``native``),
        ``native`` (generated + ``proxy._native``), ``python`` (generated, no C accelerator built
        or ``DPP_NATIVE=0``), ``reference`` (crypto-shredding routes, and values in a schema
        format: decoded and encoded by the route's codec)."""
        self._over_limits = _fastpath.over_limits if self.record_path.startswith("native") else _fastpath.over_limits_py

    def add_native_counts(self, consumed: int, produced: int, blocked, transforms, unmatched, buckets,
                          latency_sum: float, over_time: int = 0) -> None:
        """Counters of records native code finished (a ``JsonPlan``, the native data plane) added
        to :attr:`stats` as the batch path counts them: ``blocked`` per block condition (route
        order), ``transforms``/``unmatched`` per rule, ``buckets`` per latency bucket, seconds in
        ``latency_sum``, ``over_time`` records dead-lettered over the time budget."""
        st = self.stats
        st.consumed += consumed
        st.produced += produced
        st.latency_sum += latency_sum
        for (_when, _hit, reason), n in zip(self._blocks, blocked):
            if n:
                st.blocked[reason] = st.blocked.get(reason, 0) + n
        if over_time:
            st.dead_lettered[DL_LIMIT_TIME.reason] = st.dead_lettered.get(DL_LIMIT_TIME.reason, 0) + over_time
        for counts, into in ((transforms, st.transforms), (unmatched, st.unmatched), (buckets, st.latency_buckets)):
            for i, n in enumerate(counts):
                if n:
                    into[i] += n

    def wipe_native(self) -> None:
        """Cleanse and free the C accelerator's keyed state (AES key schedules, HMAC midstates) of
        this route's batch path now, not when the collector frees it: the engine calls it on the
        route a hot reload replaced. The batch path must not run afterwards (it raises; the
        reference path :meth:`process` still works)."""
        for plan in getattr(self._fast, "plans", ()):
            plan.wipe()
        if self.json_plan is not None:
            self.json_plan.wipe()

    def _all_transforms(self) -> list:
        return (self.transforms + (self._key.transforms if self._key else [])
                + (self._headers.transforms if self._headers else []))

    def _step(self, i: int, defer: bool = False) -> Callable[[dict, list], int]:
        rule, t = self.rules[i], self.transforms[i]
        # keep protects nothing (the allow-list prunes what does not fit); every other rule fails
        # closed when its path meets a string/number where it needs an object or array
        visit = compile_visit(parse_path(rule.field), strict=rule.action != "keep")
        label = self.rule_labels[i]
        if isinstance(rule, DropRule):
            def drop_step(obj: dict, hits: list) -> int:
                # collect only: every drop rule selects on the same record; protect() deletes once
                try:
                    return visit(obj, lambda c, k: hits.append((c, k)))
                except PathShapeError:
                    raise RecordError(Stage.TRANSFORM, Reason.UNEXPECTED_SHAPE, label) from None
            return drop_step
        if defer and i in self._deferred:
            pending, split = self._deferred[i], t.split

            def set_node(c, k):  # validate now, encrypt with the whole batch in _flush_deferred
                try:
                    sp = split(c[k])
                except TransformError as e:
                    raise RecordError(Stage.TRANSFORM, e.reason, label) from None
                if sp is not None:
                    pending.append((self._record_index, c, k, sp[0], sp[1], sp[2]))
        elif self.subject_mode and t.reversible:
            active = self._active

            def set_node(c, k):  # per-subject transform, chosen per record in protect()
                try:
                    c[k] = active[i].apply(c[k])
                except TransformError as e:
                    raise RecordError(Stage.TRANSFORM, e.reason, label) from None
        else:
            apply = t.apply
            segs = parse_path(rule.field)
            if all(type(s) is str for s in segs) and rule.action != "keep":
                return self._key_step(segs, apply, label)

            def set_node(c, k):
                try:
                    c[k] = apply(c[k])
                except TransformError as e:
                    raise RecordError(Stage.TRANSFORM, e.reason, label) from None

        def step(obj: dict, hits: list) -> int:
            try:
                return visit(obj, set_node)
            except PathShapeError:
                raise RecordError(Stage.TRANSFORM, Reason.UNEXPECTED_SHAPE, label) from None
        return step

    @staticmethod
    def _key_step(segs: tuple, apply: Callable[[Any], Any], label: str) -> Callable[[dict, list], int]:
        """Step of a rule whose path has object keys only (``name``, ``address.postcode``): the
        node is found and rewritten inline, with the semantics of ``compile_visit(strict=True)`` (a
        missing key or a ``null`` along the way = absent; a string or number where an object is
        needed = ``unexpected-shape``) but without its per-level calls."""
        parents, last = segs[:-1], segs[-1]

        def key_step(obj: dict, hits: list) -> int:
            node = obj
            for k in parents:
                node = node.get(k)
                if node is None:
                    return 0
                if type(node) is not dict:
                    raise RecordError(Stage.TRANSFORM, Reason.UNEXPECTED_SHAPE, label)
            if last in node:
                try:
                    node[last] = apply(node[last])
                except TransformError as e:
                    raise RecordError(Stage.TRANSFORM, e.reason, label) from None
                return 1
            return 0
        return key_step

    def protect(self, obj: dict, steps=None) -> "dict | tuple[dict, str] | Outcome":
        """Apply block conditions and rules to a parsed record (mutated in place).

        Returns the protected object, or a block :class:`Outcome`. Raises :class:`RecordError`
        when a value cannot be protected. Counts transforms/unmatched only on success.
        """
        for _, hit, reason in self._blocks:
            if hit(obj):
                return Outcome(BLOCK, reason=reason)
        if self._retention is not None:
            expired = self.retention_check(obj)
            if expired is not None:
                return expired
        if self.consent is not None:
            refused = self.consent_check(obj)
            if refused is not None:
                return refused
        ref = ""
        if self.subject_mode:
            ref = self.subject_ref_of(obj)
            key = self.subject_store.keys_for((ref,))[ref]
            if key is None:
                return Outcome(BLOCK, reason=Reason.SUBJECT_FORGOTTEN.value, subject=ref)
            self._use_subject(key)
        hits: list = []
        counts = [step(obj, hits) for step in (steps or self._steps)]
        if self.tag_rules:
            self._protect_tagged(obj, hits)
        if hits or self._tree is not None:
            if steps is self._batch_steps and self._deferred:
                # FF1 values of this batch are written back by (container, index) in
                # _flush_deferred: removing array elements now (drops, allow-list) would shift
                # those indexes (cards[1] encrypted into cards[0]'s slot, cards[1] left in clear)
                self._batch_finish.append((self._record_index, hits))
            else:
                obj = self._finish(obj, hits)
        tr, un = self.stats.transforms, self.stats.unmatched
        for pos, n in zip(self._order, counts):
            if n:
                tr[pos] += n
            else:
                un[pos] += 1
                lit = self._dotted[pos]
                if lit is not None and lit in obj:
                    self._warn_dotted(pos)
        return (obj, ref) if ref else obj

    def retention_check(self, obj: dict) -> Outcome | None:
        """The route's ``retention`` on a parsed record, after its block conditions and before
        any rule (both record paths call this): the ``retention-expired`` block :class:`Outcome`
        when the event time is more than ``max_age`` before :attr:`clock`, else ``None`` (an
        event time in the future passes). Raises :class:`RecordError` (stage ``block``, reason
        ``bad-event-time``, rule ``retention``) when the event time cannot be read."""
        collect, max_age, epoch = self._retention
        found = collect(obj) if collect is not None else (
            [self._record_ts] if type(self._record_ts) is int and self._record_ts >= 0 else [])
        if len(found) != 1:
            raise RecordError(Stage.BLOCK, Reason.BAD_EVENT_TIME, "retention")
        try:
            t = event_time(found[0], epoch)
        except (ValueError, OverflowError):
            raise RecordError(Stage.BLOCK, Reason.BAD_EVENT_TIME, "retention") from None
        return RETENTION_EXPIRED if self.clock() - t > max_age else None

    def consent_check(self, obj: dict) -> Outcome | None:
        """The route's ``consent`` on a parsed record, after ``retention`` and before any rule
        (both record paths call this): ``None`` when the subject granted the purpose (or has no
        decision and ``unknown: allow``), else the ``consent-withdrawn`` or ``consent-missing``
        block :class:`Outcome`. Raises :class:`RecordError` (stage ``block``, reason
        ``subject-missing``, rule ``consent``) unless ``subject_field`` holds exactly one
        non-empty string or integer of at most 256 characters."""
        found: list = []
        try:
            self._consent_visit(obj, lambda c, k: found.append(c[k]))
        except PathShapeError:
            found = []
        s = found[0] if len(found) == 1 else None
        t = type(s)
        if t is int:
            s = str(s)
        elif t is not str or not s:
            raise RecordError(Stage.BLOCK, Reason.SUBJECT_MISSING, "consent")
        if len(s) > _consent.MAX_SUBJECT_CHARS:
            raise RecordError(Stage.BLOCK, Reason.SUBJECT_MISSING, "consent")
        table = self.consent_table
        st = table.state(s, table.purpose_index(self.consent_purpose))
        if st == _consent.GRANTED:
            return None
        if st == _consent.WITHDRAWN:
            return CONSENT_WITHDRAWN
        if st == _consent.NO_DECISION and self._consent_allow_unknown:
            return None
        return CONSENT_MISSING

    def _protect_tagged(self, obj: dict, hits: list) -> None:
        """Tag rules on the record of the writer schema just decoded: each rule applies to the
        paths its codec context claimed for it (:func:`proxy.formats.base.claim_tagged`: no field
        rule's path, no earlier tag rule's), with the transform a field rule on that path would
        have (same tweak, same output). Counted per tag rule."""
        tr, un = self.stats.transforms, self.stats.unmatched
        for j, paths in enumerate(self._decoded_ctx.tag_paths):
            rule, pos = self.tag_rules[j], self._tag_base + j
            label = self.rule_labels[pos]
            n = 0
            for segs in paths:
                if isinstance(rule, DropRule):
                    fn = lambda c, k: hits.append((c, k))  # noqa: E731 - deleted with the other drops
                else:
                    fn = self._tag_setter(j, segs, label)
                try:
                    n += walk_tagged(obj, segs, fn)
                except PathShapeError:
                    raise RecordError(Stage.TRANSFORM, Reason.UNEXPECTED_SHAPE, label) from None
            if n:
                tr[pos] += n
            else:
                un[pos] += 1

    def _tag_setter(self, j: int, segs: tuple, label: str) -> Callable:
        """``set_node`` of tag rule ``j`` at ``segs`` (built once per path: the transform of a
        field rule on that path)."""
        got = self._tag_transforms.get((j, segs))
        if got is None:
            rule = self.tag_rules[j]
            field = format_path(tuple(WILDCARD if s is EVERY_ITEM else "*" if s is EVERY_VALUE else s for s in segs))
            apply = build_transform(rule.model_copy(update={"field": field, "select": None}), self._build_ctx).apply

            def set_node(c, k):
                try:
                    c[k] = apply(c[k])
                except TransformError as e:
                    raise RecordError(Stage.TRANSFORM, e.reason, label) from None
            got = self._tag_transforms[(j, segs)] = set_node
        return got

    def _dotted_miss(self, events: list, start: int, obj: dict) -> None:
        """Batch path: for each rule that did not match the protected record ``obj``
        (``events[start:]`` with no match), the check :meth:`protect` makes."""
        for pos, k in events[start:]:
            lit = self._dotted[pos]
            if not k and lit is not None and lit in obj:
                self._warn_dotted(pos)

    def _count_rules(self, ok: int, events: list, inline: tuple) -> None:
        """Batch path's rule counters: ``ok`` records went through every rule; ``events`` holds
        ``(rule index, matches)`` for generic steps and ``(rule index, 0)`` for each miss of an
        ``inline`` rule (which otherwise matched once per record)."""
        tr, un = self.stats.transforms, self.stats.unmatched
        misses = dict.fromkeys(inline, 0)
        for i, k in events:
            if k:
                tr[i] += k
            elif i in misses:
                misses[i] += 1
            else:
                un[i] += 1
        for i, m in misses.items():
            tr[i] += ok - m
            un[i] += m

    def _warn_dotted(self, pos: int) -> None:
        """A rule ``a.b`` (nested path) did not match, but the record has a top-level key spelled
        ``a.b``: the policy author most likely meant the quoted key (``'"a.b"'`` in YAML)."""
        self._dotted[pos] = None  # once per rule
        log.warning("rule did not match, but the record has a top-level key spelled like its path: "
                    "quote the key in the policy (field: '\"a.b\"')",
                    extra={"route": self.name, "rule": self.rule_labels[pos], "problem": "unquoted-dotted-key"})

    def _finish(self, obj: dict, hits: list) -> dict:
        """Structural removals, after every rule saw the record as received (so ``a[1]`` is the
        received second element): allow-list pruning (``unlisted_fields: drop``), then drops."""
        if self._tree is not None:
            obj = _prune(obj, self._tree, {(id(c), k) for c, k in hits} if hits else None)
        if hits:
            _delete_nodes(hits)
        return obj

    # -- crypto-shredding -------------------------------------------------------------------
    def subject_ref_of(self, obj: dict) -> str:
        """Keyed reference of the record's data subject; raises :class:`RecordError` when the
        subject field is absent or not a string/integer."""
        found: list = []
        self._subject_visit(obj, lambda c, k: found.append(c[k]))
        if len(found) != 1 or type(found[0]) not in (str, int) or found[0] == "":
            raise RecordError(Stage.TRANSFORM, Reason.SUBJECT_MISSING, "subject_keys")
        return _subjects.subject_ref(self.subject_kek, str(found[0]))

    def _subject_transforms(self, subject_key: bytes) -> list:
        cached = self._subject_cache.get(subject_key)
        if cached is not None:
            self._subject_cache.move_to_end(subject_key)
            return cached
        rings = {name: KeyRing(name, {v: SecretKey(name, _subjects.derive_rule_key(k.material, subject_key))
                                      for v, k in ring.versions.items()}, ring.current)
                 for name, ring in self._keyrings.items()}
        ctx = BuildContext(self._ctx.policy_name, self._ctx.route_name,
                           {n: r.key for n, r in rings.items()}, rings, max_detect_chars=self._ctx.max_detect_chars)
        built = list(self.transforms)
        for i in self._reversible:
            built[i] = build_transform(self.rules[i], ctx)
        self._subject_cache[subject_key] = built
        if len(self._subject_cache) > 4096:
            self._subject_cache.popitem(last=False)
        return built

    def _use_subject(self, subject_key: bytes) -> None:
        self._active[:] = self._subject_transforms(subject_key)

    def prepare(self, values: list) -> None:
        """Batch pre-pass for crypto-shredding routes: make sure every subject in ``values`` (raw
        record bytes) has a key in the store, with one store round trip. No-op otherwise."""
        if not self.subject_mode:
            return
        refs = set()
        for v in values:
            if v is None:
                continue
            try:
                obj = loads_record(v)
                if type(obj) is dict:
                    refs.add(self.subject_ref_of(obj))
            except (orjson.JSONDecodeError, RecordError):
                continue
        if refs:
            self.subject_store.keys_for(refs)

    # -- the whole record: key, headers, value ----------------------------------------------
    def _protect_parts(self, key: bytes | None, headers: list | None) -> "tuple | Outcome":
        """``(protected key, protected headers)``, or a dead-letter :class:`Outcome` (its ``key``
        is the protected key when the key rules succeeded and a header rule failed, else None)."""
        st = self.stats
        pk, ph = key, headers
        try:
            if self._key is not None:
                pk = None  # a key whose rules failed: the dead-letter record gets no key
                pk = self._key.protect(key, st.transforms, st.unmatched, self._key_base)
            if self._headers is not None:
                ph = self._headers.protect(headers, st.transforms, st.unmatched, self._header_base)
        except RecordError as e:
            return Outcome(DEAD_LETTER, reason=e.reason.value, stage=e.stage.value,
                           error_class=type(e).__name__, rule=e.rule, key=pk)
        except DependencyUnavailable:
            raise
        except Exception as e:  # fail closed on any bug in a codec or transform; never echo the message
            return Outcome(DEAD_LETTER, reason=Reason.TRANSFORM_FAILED.value,
                           stage=(Stage.KEY if pk is None and self._key is not None else Stage.HEADERS).value,
                           error_class=type(e).__name__, key=pk)
        return pk, ph

    def process_record(self, value: bytes | None, key: bytes | None = None,
                       headers: list | None = None, timestamp: int | None = None) -> Outcome:
        """The reference path of a whole record: key rules, then header rules, then
        :meth:`process` on the value. The outcome carries the protected ``key`` and ``headers``
        (unchanged when the route has no rules for them). Never raises for bad input."""
        if not self.has_parts:
            return dataclasses.replace(self.process(value, timestamp), key=key, headers=headers)
        t0 = time.perf_counter()
        parts = self._protect_parts(key, headers)
        if type(parts) is Outcome:
            self._count(parts, time.perf_counter() - t0)
            return parts
        return dataclasses.replace(self.process(value, timestamp), key=parts[0], headers=parts[1])

    def protect_records(self, values: list, keys: list, headers: list,
                        timestamps: list | None = None) -> tuple[list, list, list]:
        """The stream engine's path for a batch of whole records of a route with key or header
        rules: ``(results, keys, headers)``, with ``results`` as :meth:`protect_batch` gives them
        and the protected keys and headers per record (for a record whose key or header rules
        failed: its dead-letter outcome, the key the outcome names). Same results and counters
        as :meth:`process_record` per record; the values of records whose key and headers were
        protected go through :meth:`protect_batch` together."""
        if not self.has_parts:
            return self.protect_batch(values, timestamps), keys, headers
        n = len(values)
        results: list = [None] * n
        out_keys: list = [None] * n
        out_headers: list = [None] * n
        todo = []
        for i in range(n):
            t0 = time.perf_counter()
            parts = self._protect_parts(keys[i], headers[i])
            if type(parts) is Outcome:
                self._count(parts, time.perf_counter() - t0)
                results[i], out_keys[i] = parts, parts.key
            else:
                out_keys[i], out_headers[i] = parts
                todo.append(i)
        for i, r in zip(todo, self.protect_batch([values[i] for i in todo],
                                                 [timestamps[i] for i in todo] if timestamps is not None else None)):
            results[i] = r
        return results, out_keys, out_headers

    def process(self, value: bytes | None, timestamp: int | None = None) -> Outcome:
        """Per-record path: bytes in, :class:`Outcome` out. Never raises for bad input.
        ``timestamp``: the Kafka record's timestamp in milliseconds (``retention`` with ``source:
        record_timestamp``; ``None`` when the record has none).

        The route's ``limits`` apply: a value over ``max_record_bytes`` is not parsed, a JSON value
        nested deeper than ``max_depth`` is not protected, and a record that took longer than
        ``time_budget_ms`` and would reach the sink is dead-lettered instead (``limit-*``)."""
        t0 = time.perf_counter()
        self._record_ts = timestamp
        if value is not None and len(value) > self._max_record_bytes:
            out = DL_LIMIT_BYTES
        else:
            res = self._parse_protect(value, self._steps)
            out = res if type(res) is Outcome else self._serialize(res)
        dt = time.perf_counter() - t0
        if dt > self._time_budget_s and out.kind == SINK:
            out = DL_LIMIT_TIME
        self._count(out, dt)
        return out

    def protect_batch(self, values: list, timestamps: list | None = None) -> list:
        """The stream engine's path for a batch of record values (``bytes`` or ``None``): per
        value, the protected bytes when the record goes to the sink, else an :class:`Outcome`
        (block, dead-letter, tombstone; every record of a crypto-shredding route); ``timestamps``:
        the records' Kafka timestamps (ms or ``None``), for ``retention.source: record_timestamp``. Same results
        and counters as :meth:`process` per value, from the route's generated batch function
        (:mod:`proxy.policy.fastpath`); FF1 fields are encrypted for the whole batch at once
        (``FF1.encrypt_many``: one AES call per round for all values of a rule)."""
        ts = timestamps if timestamps is not None else [None] * len(values)
        if self._fast is None:
            return [self.process(v, t) for v, t in zip(values, ts)]
        slow = self._over_limits(values, self._max_record_bytes, self._max_depth)
        if not slow and self.json_plan is None:
            return self._fast(values, ts)
        # records near a limit take the reference path (which applies the limits), the rest the
        # JsonPlan (raw bytes in C), and what it hands back the batch path
        out: list = [None] * len(values)
        for j in slow:
            r = self.process(values[j], ts[j])
            out[j] = r.value if r.kind == SINK and r.value is not None and not r.subject else r
        if self.json_plan is not None:
            rest = [j for j in range(len(values)) if out[j] is None]
            done = _jsonplan.rewrite_batch(self, self.json_plan, [values[j] for j in rest] if slow else values)
            for j, r in zip(rest, done):
                out[j] = r
        rest = [j for j in range(len(values)) if out[j] is None]
        if not rest:
            return out
        for j, r in zip(rest, self._fast([values[j] for j in rest], [ts[j] for j in rest])):
            out[j] = r
        return out

    def process_batch(self, values: list, timestamps: list | None = None) -> list[Outcome]:
        """:meth:`protect_batch` with an :class:`Outcome` for every record (sink ones too)."""
        return [Outcome(SINK, r) if type(r) is bytes else r for r in self.protect_batch(values, timestamps)]

    def _flush_deferred_finish(self, results: list) -> dict[int, Outcome]:
        """End of a batch with FF1 rules: encrypt the pending values (:meth:`_flush_deferred`),
        then the structural removals of each record (``results[j]``, protected objects), as
        :meth:`process` removes after every rule. Returns the failed records' outcomes."""
        try:
            failed = self._flush_deferred()
        finally:
            finish, self._batch_finish = self._batch_finish, []
        for j, hits in finish:
            if type(results[j]) is dict:
                results[j] = self._finish(results[j], hits)
        return failed

    def _flush_deferred(self) -> dict[int, Outcome]:
        """Encrypt every pending FF1 value, rule by rule, and write the results in place.
        Returns ``{record index: dead-letter outcome}`` for records whose values failed."""
        failed: dict[int, Outcome] = {}
        for i, pending in self._deferred.items():
            if not pending:
                continue
            t = self.transforms[i]
            try:
                encs = t.encrypt_batch([p[5] for p in pending])
            except Exception:  # noqa: BLE001 - fall back to one at a time and fail closed per record
                encs = []
                for p in pending:
                    try:
                        encs.append(t.encrypt_batch([p[5]])[0])
                    except Exception as e:  # noqa: BLE001
                        encs.append(None)
                        failed[p[0]] = Outcome(DEAD_LETTER, reason=Reason.TRANSFORM_FAILED.value,
                                               stage=Stage.TRANSFORM.value, error_class=type(e).__name__,
                                               rule=self.rule_labels[i])
            join = t.join
            for (_, c, k, text, pos, _num), enc in zip(pending, encs):
                if enc is not None:
                    c[k] = join(text, pos, enc)
            pending.clear()
        return failed

    def _count(self, out: Outcome, dt: float) -> None:
        st = self.stats
        st.consumed += 1
        st.latency_sum += dt
        st.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, dt)] += 1
        kind = out.kind
        if kind == SINK:
            st.produced += 1
        elif kind == BLOCK:
            st.blocked[out.reason] = st.blocked.get(out.reason, 0) + 1
        else:
            st.dead_lettered[out.reason] = st.dead_lettered.get(out.reason, 0) + 1

    def _parse_protect(self, value: bytes | None, steps) -> "Outcome | dict | tuple":
        if value is None:
            return TOMBSTONE
        codec = self._codec
        if codec is None:
            try:
                obj = orjson.loads(value)
                if big_int_literal(value):  # integers beyond 64 bits: exact (proxy.formats.json)
                    obj = loads_exact(value)
            except orjson.JSONDecodeError as e:
                if "depth limit" in str(e):  # deeper than orjson parses (1024) is over any max_depth too
                    return DL_LIMIT_DEPTH
                return Outcome(DEAD_LETTER, reason=Reason.INVALID_JSON.value, stage=Stage.DESERIALIZE.value,
                               error_class="JSONDecodeError")
            if _fastpath.may_exceed_depth(value, self._max_depth) and depth_exceeds(obj, self._max_depth):
                return DL_LIMIT_DEPTH
        else:  # DependencyUnavailable (registry down) propagates: the engine retries the batch
            try:
                obj, self._decoded_ctx = codec.decode(value)
            except FormatError as e:
                return Outcome(DEAD_LETTER, reason=e.reason.value, stage=Stage.DESERIALIZE.value,
                               error_class=type(e).__name__)
            except DependencyUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - any codec failure on hostile bytes fails closed
                return Outcome(DEAD_LETTER, reason=Reason.DECODE_FAILED.value, stage=Stage.DESERIALIZE.value,
                               error_class=type(e).__name__)
        if type(obj) is not dict:
            return Outcome(DEAD_LETTER, reason=Reason.NOT_OBJECT.value, stage=Stage.DESERIALIZE.value,
                           error_class="TypeError")
        try:
            return self.protect(obj, steps)
        except RecordError as e:
            return Outcome(DEAD_LETTER, reason=e.reason.value, stage=e.stage.value,
                           error_class=type(e).__name__, rule=e.rule)
        except Exception as e:  # fail closed on any bug in a transform; never echo the message
            return Outcome(DEAD_LETTER, reason=Reason.TRANSFORM_FAILED.value, stage=Stage.TRANSFORM.value,
                           error_class=type(e).__name__)

    def _serialize(self, res) -> Outcome:
        subject = ""
        if type(res) is tuple:
            res, subject = res
        if self._codec is not None:
            try:
                return Outcome(SINK, self._codec.encode(res, self._decoded_ctx))
            except FormatError as e:
                return Outcome(DEAD_LETTER, reason=e.reason.value, stage=Stage.SERIALIZE.value,
                               error_class=type(e).__name__)
        try:
            try:
                return Outcome(SINK, orjson.dumps(res), subject=subject)
            except TypeError as first:  # orjson.JSONEncodeError is one; integers beyond 64 bits
                return Outcome(SINK, dumps_wide(res, first), subject=subject)
        except (TypeError, orjson.JSONEncodeError) as e:
            return Outcome(DEAD_LETTER, reason=Reason.SERIALIZE_FAILED.value, stage=Stage.SERIALIZE.value,
                           error_class=type(e).__name__)

    def reveal(self, obj: dict, rule_labels: list[str] | None = None,
               key_versions: Mapping[str, int] | None = None, subject_ref: str | None = None) -> tuple[dict, list[str]]:
        """Re-identify reversible (FPE, token) fields of a protected record in place.

        ``key_versions`` (key name → version, from the ``dpp-key-versions`` header) selects the key
        version each field was protected with; default: the current versions.
        On crypto-shredding routes ``subject_ref`` (the ``dpp-subject`` header) names the subject
        whose key protected the record.
        Returns ``(record, labels of the rules revealed)``. Raises :class:`RecordError` on failure
        (reason ``subject-forgotten`` once the subject's key was erased).
        """
        done = []
        transforms = self.transforms
        if self.subject_mode:
            if not subject_ref:
                raise RecordError(Stage.TRANSFORM, Reason.SUBJECT_MISSING, "subject_keys")
            try:
                key = self.subject_store.lookup(subject_ref)
            except KeyError:
                raise RecordError(Stage.TRANSFORM, Reason.KEY_UNAVAILABLE, "subject_keys") from None
            if key is None:
                raise RecordError(Stage.TRANSFORM, Reason.SUBJECT_FORGOTTEN, "subject_keys")
            transforms = self._subject_transforms(key)
        for i, (rule, t) in enumerate(zip(self.rules, transforms)):
            if not t.reversible or (rule_labels and self.rule_labels[i] not in rule_labels):
                continue
            label = self.rule_labels[i]
            version = (key_versions or {}).get(getattr(rule, "key", ""))

            def undo(c, k, t=t, label=label, version=version):
                try:
                    c[k] = t.reverse(c[k], version)
                except TransformError as e:
                    raise RecordError(Stage.TRANSFORM, e.reason, label) from None
            if compile_visit(parse_path(rule.field))(obj, undo):
                done.append(label)
        return obj, done


def walk_tagged(node: Any, segs: tuple, fn: Callable[[Any, Any], Any]) -> int:
    """Call ``fn(container, key)`` at every node of ``node`` that ``segs`` (a tagged field's path:
    ``str``, :data:`~proxy.formats.base.EVERY_ITEM`, :data:`~proxy.formats.base.EVERY_VALUE`)
    reaches; the number of calls. A missing key or ``null`` on the way: nothing; a value of another
    shape where an object or array is needed: :class:`PathShapeError` (the record fails closed)."""
    seg, rest = segs[0], segs[1:]
    if seg is EVERY_ITEM or seg is EVERY_VALUE:
        want = list if seg is EVERY_ITEM else dict
        if type(node) is not want:
            raise PathShapeError(seg)
        keys = range(len(node)) if want is list else list(node)
    else:
        if type(node) is not dict:
            raise PathShapeError(seg)
        keys = (seg,) if seg in node else ()
    n = 0
    for k in keys:
        if not rest:
            fn(node, k)
            n += 1
        elif node[k] is not None:
            n += walk_tagged(node[k], rest, fn)
    return n


def _schema_plan(rules, allow) -> SchemaPlan:
    """The :class:`SchemaPlan` of rule models (value rules, or a structured key's rules)."""
    effects = {"keep": "keep", "drop": "drop", "redact": "redact"}
    return SchemaPlan(tuple((parse_path(r.field), effects.get(r.action, "rewrite"), getattr(r, "value", None))
                            for r in rules if r.field is not None), allow,
                      tuple((r.select.tag, effects.get(r.action, "rewrite"), getattr(r, "value", None))
                            for r in rules if getattr(r, "select", None) is not None))


def _subject_namer(strategy: str, topic: str, part: str) -> Callable[[str], str]:
    """Subject name strategies of the Confluent serializers: ``topic`` (TopicNameStrategy,
    ``<topic>-value``/``-key``), ``record`` (RecordNameStrategy, the record's full name),
    ``topic_record`` (TopicRecordNameStrategy, ``<topic>-<full name>``)."""
    if strategy == "record":
        return lambda fullname: fullname
    if strategy == "topic_record":
        return lambda fullname: f"{topic}-{fullname}"
    return lambda fullname: f"{topic}-{part}"


def _value_codec(route: Route, source: SchemaSource | None, plan: SchemaPlan) -> Codec | None:
    if route.format == "json":
        return None  # the engine's own JSON path (and the generated batch function)
    return build_codec(route.format, source, plan, _subject_namer(route.subject_name_strategy, route.sink, "value"),
                       what=f"route {route.name}")


def _key_codec(route: Route, source: SchemaSource | None) -> Codec:
    fmt = route.key.format
    plan = _schema_plan(route.key.rules, None)
    return build_codec(fmt, source, plan, _subject_namer(route.subject_name_strategy, route.sink, "key"),
                       what=f"the keys of route {route.name}")


@dataclass(frozen=True)
class CompiledPolicy:
    """All routes of a policy, compiled. ``provenance`` is ``name@revision`` for the header."""

    loaded: LoadedPolicy
    routes: tuple[CompiledRoute, ...]

    @property
    def provenance(self) -> str:
        return self.loaded.provenance

    def route(self, name: str | None = None) -> CompiledRoute:
        """The route called ``name``, or the only route. Raises ``KeyError`` if unknown/ambiguous."""
        if name is None:
            if len(self.routes) != 1:
                raise KeyError(f"policy has {len(self.routes)} routes; name one of {[r.name for r in self.routes]}")
            return self.routes[0]
        for r in self.routes:
            if r.name == name:
                return r
        raise KeyError(f"no route {name!r}; routes: {[r.name for r in self.routes]}")


def compile_policy(loaded: LoadedPolicy, environ: Mapping[str, str] | None = None,
                   routes: list[str] | None = None, schema_source: SchemaSource | None = None) -> CompiledPolicy:
    """Resolve the keys the (selected) routes use and compile them. ``schema_source`` (a schema
    registry, :mod:`proxy.schemaregistry`) is needed by routes with Avro, Protobuf or JSON
    Schema values or keys.

    Raises :class:`PolicyError` naming the file and key path when a key cannot be loaded or has
    the wrong length for its use.
    """
    pol = loaded.policy
    chosen = [r for r in pol.routes if routes is None or r.name in routes]
    needed = ({r.dead_letter_key for r in chosen} | {r.subject_keys.key for r in chosen if r.subject_keys}
              | {getattr(x, "key", None) for r in chosen
                 for x in [*r.rules, *r.headers, *(r.key.rules if r.key else [])]}) - {None}
    rings: dict[str, KeyRing] = {}
    problems = []
    for name in sorted(needed):
        try:
            rings[name] = load_keyring(name, pol.keys[name], environ)
        except KeyLoadError as e:
            problems.append((loaded.file, loaded.line_of(("keys", name)), f"keys.{name}", str(e)))
    keys = {name: ring.key for name, ring in rings.items()}
    if problems:
        raise PolicyError(problems)
    compiled = []
    for ri, r in enumerate(pol.routes):
        if r not in chosen:
            continue
        try:
            compiled.append(CompiledRoute(r, pol.name, keys, rings, schema_source))
        except (KeyLoadError, ValueError) as e:
            problems.append((loaded.file, loaded.line_of(("routes", ri)), f"routes[{ri}]", str(e)))
    if problems:
        raise PolicyError(problems)
    return CompiledPolicy(loaded, tuple(compiled))
