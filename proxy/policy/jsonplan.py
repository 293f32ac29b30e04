"""A route's record path over raw JSON bytes in C: the spec of ``proxy._native.JsonPlan``.

``JsonPlan`` (``proxy/_native.c``, section "JsonPlan") parses a record value and writes the
protected value in one pass, with no Python object per record: exactly the bytes
``orjson.dumps`` of :meth:`CompiledRoute.process`'s result would give, or a hand-back (the record
then takes the generated batch path, :mod:`proxy.policy.fastpath`, which dead-letters it or does
it the slow way). The C side also exports it to ``proxy._dataplane`` (``proxy/dpp_native.h``).

:func:`build` makes the plan of a route at policy load, or returns ``None`` when the route has
anything the plan does not do, so that such a route keeps the batch path whole:

* a codec other than JSON, crypto-shredding (``subject_keys``), ``retention``, ``consent``, an
  allow-list (``unlisted_fields: drop``), key or header rules, tag rules;
* a rule other than ``mask``, ``pseudonymize`` (normalize none/string/email, encoding
  base32/hex: the cases ``proxy._native.Plan`` runs), ``redact``, ``drop``, ``fpe`` run in C
  (FF1 over an ASCII alphabet: :func:`proxy.policy.fastpath.native_op`) and ``tokenize``; a path
  other than object keys or an alternation of object keys (``{before,after}.email``; not for
  ``drop``); ``keep``;
* rule paths that overlap (one equal to or a prefix of another, alternations expanded): the
  plan runs one rule per value, no composition (the loader refuses such policies today: a
  guard, not a case);
* a block condition with ``not_equals``, a path other than object keys, under a rule's path, or
  a wanted value other than str, int (at most 18 digits), bool and null.

``DPP_NATIVE_JSON=0`` (or ``DPP_NATIVE=0``) builds no plan, to compare. The spec holds key
material only while the plan is built (the HMAC midstates are computed in C).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import orjson

from . import fastpath as _fp

if TYPE_CHECKING:  # pragma: no cover
    from .compiler import CompiledRoute

OP_DROP = 6  # _native.c: a member left out (JsonPlan only)


def enabled() -> bool:
    """Whether routes get a ``JsonPlan``: the C accelerator is built and on, ``DPP_NATIVE_JSON``
    is not ``0``."""
    return (_fp.native_available() and hasattr(_fp._native, "JsonPlan")
            and os.environ.get("DPP_NATIVE_JSON", "1") != "0")


def _escaped(key: str) -> bytes | None:
    """A key as orjson writes it, without the quotes (``None``: not encodable, e.g. a surrogate)."""
    try:
        return orjson.dumps(key)[1:-1]
    except orjson.JSONEncodeError:
        return None


def _wanted_token(w: Any) -> bytes | None:
    """``orjson.dumps`` of a block condition's wanted value when the plan compares it as a token
    (str, bool, null, an int of at most 18 digits), else ``None``."""
    if w is None or type(w) is bool or type(w) is str:
        try:
            return orjson.dumps(w)
        except orjson.JSONEncodeError:
            return None
    if type(w) is int and len(str(abs(w))) <= 18:
        return str(w).encode()
    return None


def _rule_op(route: CompiledRoute, i: int) -> tuple | None:
    """``(op, params)`` of rule ``i`` for the plan, or ``None`` (not done here)."""
    from ..transforms.mask import Mask
    from ..transforms.pseudonymize import Pseudonymize
    from ..transforms.redact import Redact
    from .models import DropRule

    rule, t = route.rules[i], route.transforms[i]
    if isinstance(rule, DropRule):
        return OP_DROP, ()
    if type(t) is Mask:
        return _fp.OP_MASK, (t.first, t.last, t.char, bool(t.all_chars))
    if type(t) is Pseudonymize:
        norm, enc = _fp._NORMALIZE.get(t.normalize, -1), _fp._ENCODING.get(t.encoding, -1)
        if norm < 0 or enc < 0:
            return None
        return _fp.OP_PSEUDO, (*t._native_key, t.prefix, norm, enc, t.length or 0)
    if type(t) is Redact:
        try:
            return _fp.OP_REDACT, (orjson.dumps(t.value),)
        except (TypeError, orjson.JSONEncodeError):
            return None
    return _fp.native_op(t)  # FF1 over an ASCII alphabet, tokenize: as proxy._native.Plan, or None


class _Trie:
    """The plan's nodes: object keys from the record (node 0) down to rule and condition ends."""

    def __init__(self) -> None:
        self.children: list[dict[bytes, int]] = [{}]
        self.rule: list[int] = [-1]
        self.strict: list[bool] = [False]
        self.wanted: list[list[tuple[int, bytes]]] = [[]]

    def walk(self, keys: tuple[bytes, ...], strict: bool) -> int:
        node = 0
        for k in keys:
            if strict:
                self.strict[node] = True
            nxt = self.children[node].get(k)
            if nxt is None:
                nxt = len(self.rule)
                self.children[node][k] = nxt
                self.children.append({})
                self.rule.append(-1)
                self.strict.append(False)
                self.wanted.append([])
            node = nxt
        return node

    def nodes(self) -> list[tuple]:
        return [(tuple((n, k) for k, n in c.items()), r, s, tuple(w))
                for c, r, s, w in zip(self.children, self.rule, self.strict, self.wanted)]


class _Paths:
    """Rule paths seen so far, with their proper prefixes: the overlap tests in O(depth) per path
    (a route of thousands of rules compiles in linear time, tests/unit/test_policy_load_linear.py)."""

    def __init__(self) -> None:
        self.paths: set[tuple] = set()
        self.prefixes: set[tuple] = set()

    def under_one(self, keys: tuple) -> bool:
        """Whether a proper prefix of ``keys`` is a rule path."""
        return any(keys[:n] in self.paths for n in range(1, len(keys)))

    def overlaps(self, keys: tuple) -> bool:
        """Whether ``keys`` equals, is a prefix of, or lies under a rule path."""
        return keys in self.paths or keys in self.prefixes or self.under_one(keys)

    def add(self, keys: tuple) -> None:
        self.paths.add(keys)
        self.prefixes.update(keys[:n] for n in range(1, len(keys)))


def spec(route: CompiledRoute) -> tuple | None:
    """The ``JsonPlan`` spec of ``route`` (see ``JsonPlan_new`` in ``_native.c``), or ``None``
    when the route has anything the plan does not do (module doc)."""
    from .compiler import BLOCK, DL_LIMIT_TIME, LATENCY_BUCKETS, Outcome
    from .fastpath import _choice_paths, _key_path
    from .models import DropRule

    if (route.subject_mode or route._codec is not None or route._tree is not None or route._retention is not None
            or route.consent is not None or route.has_parts or route.tag_rules or route.uses_record_timestamp):
        return None
    trie = _Trie()
    rules: list[tuple] = []
    rule_paths = _Paths()
    for i in route._order:
        op = _rule_op(route, i)
        field = route.rules[i].field
        kp = _key_path(field)
        alts = [kp] if kp is not None else _choice_paths(field)
        if op is None or alts is None or (kp is None and isinstance(route.rules[i], DropRule)):
            return None
        for parents, last in alts:
            keys = tuple(_escaped(k) for k in (*parents, last))
            if any(k is None for k in keys) or rule_paths.overlaps(keys):
                return None
            rule_paths.add(keys)
            node = trie.walk(keys, strict=True)
            trie.rule[node] = len(rules)
            rules.append((op[0], i, (), "", None, op[1]))
    outcomes = []
    for b, (when, _hit, reason) in enumerate(route._blocks):
        kp = _key_path(when.field)
        if kp is None or "not_equals" in when.model_fields_set:
            return None
        keys = tuple(_escaped(k) for k in (*kp[0], kp[1]))
        if any(k is None for k in keys) or rule_paths.under_one(keys):
            return None  # a condition under a rule's path (the rule rewrites what it reads)
        wanted = [when.equals] if when.in_ is None else list(when.in_)
        tokens = [_wanted_token(w) for w in wanted]
        if any(t is None for t in tokens):
            return None
        node = trie.walk(keys, strict=False)
        trie.wanted[node].extend((b, t) for t in tokens)
        outcomes.append(Outcome(BLOCK, reason=reason))
    # the route's unquoted-dotted-key hint: a record with such a top-level key and a miss goes to Python
    dotted = tuple((i, k) for i, lit in enumerate(route._dotted)
                   if lit is not None and (k := _escaped(lit)) is not None)
    return (len(route.rule_labels), rules, trie.nodes(), dotted, route._max_depth, route._max_record_bytes,
            route._time_budget_s, tuple(LATENCY_BUCKETS), tuple(outcomes), DL_LIMIT_TIME)


def build(route: CompiledRoute) -> Any:
    """The route's ``proxy._native.JsonPlan``, or ``None`` (not enabled, or not native: module doc)."""
    if not enabled():
        return None
    s = spec(route)
    if s is None:
        return None
    _fp._native_ready()  # mask's separator set
    return _fp._native.JsonPlan(s)


def rewrite_batch(route: CompiledRoute, plan: Any, values: list) -> list:
    """``plan`` over ``values``: per value the protected bytes, a block or time-budget
    :class:`Outcome`, or ``None`` (handed back: the caller runs those through the batch path).
    The counters of the values done here go into ``route.stats`` as the batch path counts them."""
    out, (produced, blocked, tr, un, lat, buckets, over) = plan.rewrite_batch(values)
    done = produced + over + sum(blocked)
    if done:
        route.add_native_counts(done, produced, blocked, tr, un, buckets, lat, over)
    return out
    st.consumed += done
    st.produced += produced
    st.latency_sum += lat
    for k, n in enumerate(buckets):
        if n:
            st.latency_buckets[k] += n
    for (_w, _h, reason), n in zip(route._blocks, blocked):
        if n:
            st.blocked[reason] = st.blocked.get(reason, 0) + n
    if over:
        from .compiler import DL_LIMIT_TIME
        st.dead_lettered[DL_LIMIT_TIME.reason] = st.dead_lettered.get(DL_LIMIT_TIME.reason, 0) + over
    str_, sun = st.transforms, st.unmatched
    for i in range(len(tr)):
        if tr[i]:
            str_[i] += tr[i]
        if un[i]:
            sun[i] += un[i]
    return out
