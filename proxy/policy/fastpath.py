"""The record path of a route as one generated Python function per route (built at policy load).

:meth:`CompiledRoute.process` is the reference implementation of the policy engine: a record goes
through block closures, one step closure per rule, an :class:`~proxy.policy.compiler.Outcome`
object and a counting loop. That is clear, and it costs ~13 µs per record for the benchmark
policy, most of it in calls between the pieces rather than in the pieces. The batch path the
stream engine uses (:meth:`CompiledRoute.protect_batch`) runs this module's function instead: the
route's block conditions and rules are written out as straight-line code over a whole batch, so a
rule on an object-key path (``name``, ``address.postcode``) costs a dictionary lookup and one call
of the transform's :meth:`~proxy.transforms.base.Transform.compile_apply` closure, and a record
that goes to the sink is its bytes (no ``Outcome``). An alternation of object keys
(``{before,after}.email``) is written out as its explicit paths, counted as one rule. Rules the
generator does not write out (array paths, ``*`` and ``**``, ``keep``, batch-encrypted FPE,
crypto-shredding routes) call the same step closures as the reference path.

When the optional C accelerator ``proxy._native`` (``proxy/_native.c``) is built, each run of
consecutive object-key-path rules is one ``Plan`` call instead: C walks the paths and masks,
pseudonymizes (HMAC-SHA256 over OpenSSL's SHA-256), redacts, FF1-encrypts (AES over OpenSSL EVP;
value by value, so such a rule is not deferred to the end of the batch) and tokenizes (AES-SIV)
in place, and hands every value it
does not handle (other types, non-ASCII text for pseudonyms, other transforms) to the transform's
``compile_apply`` closure, so results and errors are the reference path's. Without it (no C
compiler at install, a stale build, ``DPP_NATIVE=0``) the rules are written out in Python.

The generated source holds no policy text: field names, labels, values and transforms are
constants of its namespace (``L3``, ``A3``...), so a key such as ``"\\n__import__('os')"`` is data,
never code. ``tests/unit/test_fastpath.py`` checks on generated policies and records (hypothesis)
that this path and :meth:`CompiledRoute.process` give the same bytes, outcomes and counters.
"""
from __future__ import annotations

import bisect
import logging
import os
import textwrap
import time
from typing import TYPE_CHECKING, Any, Callable

import orjson

from ..errors import Reason, RecordError, Stage, TransformError
from .models import DropRule
from .paths import KeyChoice, expand_choices, parse_path

if TYPE_CHECKING:  # pragma: no cover
    from .compiler import CompiledRoute

NATIVE_ABI = 6
"""``proxy._native.ABI`` this module speaks; a stale build (the C source changed since ``pip
install``) is not used: the pure-Python path runs, and a warning says to reinstall."""

try:
    from .. import _native
except ImportError:  # built without a C compiler: the pure-Python path, same results
    _native = None
if _native is not None and getattr(_native, "ABI", None) != NATIVE_ABI:
    logging.getLogger("proxy.policy").warning(
        "proxy._native is stale (built from another version of _native.c): using the pure-Python "
        "record path; reinstall (pip install -e .) to rebuild it", extra={"problem": "native-abi"})
    _native = None

def may_exceed_depth(value: bytes, limit: int) -> bool:
    """Cheap screen of raw JSON bytes: fewer than ``limit`` opening brackets cannot nest deeper."""
    return value.count(b"{") + value.count(b"[") > limit


def over_limits_py(values: list, max_bytes: int, max_depth: int) -> list[int]:
    """Indexes of ``values`` (bytes or None) longer than ``max_bytes`` or with more than
    ``max_depth`` opening brackets (a screen: a superset of those nested deeper than
    ``max_depth``). The pure-Python stand-in of ``proxy._native.over_limits``, which scans the
    exact nesting outside strings; both flag every value the reference path holds over a limit."""
    return [j for j, v in enumerate(values)
            if v is not None and (len(v) > max_bytes or may_exceed_depth(v, max_depth))]


over_limits = _native.over_limits if _native is not None else over_limits_py
"""The batch path's screen for records to hand to the reference path (route ``limits``)."""

OP_CALL, OP_MASK, OP_PSEUDO, OP_REDACT, OP_FF1, OP_TOKEN = 0, 1, 2, 3, 4, 5
FF1_KEEP, FF1_OTHER = 255, 254  # _native.c: an ASCII character kept in place / left to the closure
_NORMALIZE = {"none": 0, "string": 1, "email": 2}   # others (phone): the Python closure
_ENCODING = {"base32": 0, "hex": 1}                  # others (base64url): the Python closure


_separators_set = False


def _native_ready() -> None:
    """Give ``proxy._native`` the separator set of ``mask`` (once per process)."""
    global _separators_set
    if not _separators_set:
        from ..transforms.mask import separator_bitmap
        _native.set_separators(separator_bitmap())
        _separators_set = True


def native_available() -> bool:
    """Whether the C accelerator (``proxy._native``) is built and enabled (``DPP_NATIVE=0``
    turns it off, e.g. to compare; both give the same bytes)."""
    return _native is not None and os.environ.get("DPP_NATIVE", "1") != "0"


def _raising(apply: Callable[[Any], Any], label: str) -> Callable[[Any], Any]:
    """``apply`` with a :class:`TransformError` turned into the rule's :class:`RecordError`."""
    def fallback(value: Any) -> Any:
        try:
            return apply(value)
        except TransformError as e:
            raise RecordError(Stage.TRANSFORM, e.reason, label) from None
    return fallback


def ff1_table(alphabet: str, variant: Callable[[str], bool]) -> bytes | None:
    """The digit table of ``_native.c``'s FF1 for an ASCII alphabet: per ASCII code, its
    numeral, :data:`FF1_KEEP` (outside the alphabet: stays in place) or :data:`FF1_OTHER` (a
    variant of an alphabet character, ``variant(c)``: the closure fails the value closed).
    ``None`` for an alphabet with other characters (every value goes to the closure)."""
    if not alphabet.isascii():
        return None
    index = {c: k for k, c in enumerate(alphabet)}
    return bytes(index[c] if c in index else FF1_OTHER if variant(c) else FF1_KEEP
                 for c in map(chr, range(128)))


def native_op(t: Any) -> tuple[int, tuple] | None:
    """``(op, params)`` of a keyed transform ``proxy._native`` runs (FF1 ``fpe``, ``tokenize``),
    else ``None``. The parameters hold the :class:`SecretKey`'s bytes only while the plan is
    built: C keys its AES contexts with them (and derives the token key itself)."""
    from ..transforms.fpe import Fpe
    from ..transforms.tokenize import Tokenize

    if type(t) is Fpe and t.native_ff1 is not None:
        table = ff1_table(t.alphabet, t._variant)
        if table is None:
            return None
        key, tweak = t.native_ff1
        return OP_FF1, (key.material, tweak, table, t.alphabet, t.min_len, t.max_len)
    if type(t) is Tokenize:
        return OP_TOKEN, (t.native_key.material, True, t._ad[0], t.prefix, t._current)
    return None


def _native_rule(i: int, t: Any, parents: tuple, last: str, label: str) -> tuple:
    """One rule tuple of ``proxy._native.Plan`` (see ``_native.c``): the operation done in C
    for the values it handles, and the transform's own closure for every other value."""
    from ..transforms.mask import Mask
    from ..transforms.pseudonymize import Pseudonymize
    from ..transforms.redact import Redact

    _native_ready()
    head = (i, tuple(parents), last, _raising(t.compile_apply(), label))
    if type(t) is Mask:
        return (OP_MASK, *head, (t.first, t.last, t.char, bool(t.all_chars)))
    if type(t) is Pseudonymize:
        return (OP_PSEUDO, *head, (*t._native_key, t.prefix, _NORMALIZE.get(t.normalize, -1),
                                   _ENCODING.get(t.encoding, -1), t.length or 0))
    if type(t) is Redact:
        return (OP_REDACT, *head, (t.value,))
    keyed = native_op(t)
    if keyed is not None:
        return (keyed[0], *head, keyed[1])
    return (OP_CALL, *head)


def _alt_events(vrule: dict[int, int], alts: list[tuple[int, int]]) -> Callable[[list, int], None]:
    """``fix(ev, g0)`` after a ``Plan`` call holding alternation rules: the misses it appended
    from ``ev[g0]`` on under virtual indexes (``vrule``: virtual -> rule) become one ``(rule,
    paths - misses)`` event per alternation rule (``alts``: (rule, paths)); other events stay."""
    def fix(ev: list, g0: int) -> None:
        tail = ev[g0:]
        del ev[g0:]
        missed: dict[int, int] = {}
        for v, k in tail:
            i = vrule.get(v)
            if i is None:
                ev.append((v, k))
            else:
                missed[i] = missed.get(i, 0) + 1
        for i, n in alts:
            ev.append((i, n - missed.get(i, 0)))
    return fix


class _Source:
    """Indented source lines plus the constants they refer to (``name -> object``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self.depth = 0

    def const(self, name: str, value: Any) -> str:
        self.ns[name] = value
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def block(self, text: str) -> None:
        """Emit a dedented multi-line template at the current depth."""
        for line in textwrap.dedent(text).strip("\n").splitlines():
            self.emit(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _key_path(field: str) -> tuple[tuple[str, ...], str] | None:
    """``(parents, last)`` when the path has object keys only, else ``None``."""
    segs = parse_path(field)
    if all(type(s) is str for s in segs):
        return tuple(segs[:-1]), segs[-1]
    return None


def _equality(src: _Source, var: str, wanted: Any, name: str) -> str:
    """Source of a test ``var`` equals ``wanted`` with JSON types (``_json_equal``)."""
    if wanted is None or type(wanted) is bool:
        return f"{var} is {wanted!r}"
    c = src.const(name, wanted)
    if type(wanted) is str:
        return f"{var} == {c}"
    if type(wanted) in (int, float):
        return f"(type({var}) is int or type({var}) is float) and {var} == {c}"
    return f"JEQ({var}, {c})"


def _walk(src: _Source, parents: tuple[str, ...], prefix: str, strict: bool, absent: str,
          label_const: str) -> tuple[int, str]:
    """Emit the walk from ``o`` down the object keys ``parents`` into variable ``n``; opens one
    block per level; returns how many to close and the variable holding the parent object
    (``o`` itself for a top-level key). A missing key or ``null`` runs ``absent``; a
    non-object raises ``unexpected-shape`` when ``strict`` (rules), else counts as absent (block
    conditions)."""
    for d, key in enumerate(parents):
        k = src.const(f"{prefix}_{d}", key)
        src.emit(f"n = {'o' if d == 0 else 'n'}.get({k})")
        if strict:
            src.emit("if n is None:")
            src.emit(f"    {absent}")
            src.emit("elif type(n) is not dict:")
            src.emit(f"    raise RecordError(STAGE_T, SHAPE, {label_const})")
        else:
            src.emit("if type(n) is not dict:")
            src.emit(f"    {absent}")
        src.emit("else:")
        src.depth += 1
    return len(parents), ("n" if parents else "o")


def _choice_paths(field: str) -> list[tuple[tuple[str, ...], str]] | None:
    """The ``(parents, last)`` of each path an alternation of object keys spells
    (``{before,after}.email``: ``before.email``, ``after.email``), in the order the reference path
    visits them; ``None`` for any other path (no alternation, or ``*``, ``**``, array selectors)."""
    segs = parse_path(field)
    if not any(type(s) is KeyChoice for s in segs) or not all(type(s) in (str, KeyChoice) for s in segs):
        return None
    return [(tuple(p[:-1]), p[-1]) for p in expand_choices(segs)]


def _at_key(src: _Source, i: int, kp: tuple[tuple[str, ...], str], label_const: str, found: str,
            tag: str = "", absent: str = "") -> None:
    """Emit rule ``i`` on an object-key path: the walk to the parent object, then ``found`` (a
    template over ``{n}``, the parent's variable, and ``{k}``, the key's constant) when the key is
    there; a missing key or parent records the miss ``(i, 0)`` (or runs ``absent``). ``tag`` tells
    the constants of the paths of one alternation rule apart."""
    parents, last = kp
    lk = src.const(f"L{i}{tag}", last)
    absent = absent or f"UN(({i}, 0))"
    opened, n = _walk(src, parents, f"P{i}{tag}", True, absent, label_const)
    src.emit(f"if {lk} in {n}:")
    src.depth += 1
    src.block(found.format(n=n, k=lk))
    src.depth -= 1
    src.emit("else:")
    src.emit(f"    {absent}")
    src.depth -= opened


def build(route: "CompiledRoute") -> Callable[[list], list]:
    """Generate the batch function of ``route``: ``values (list of bytes | None) -> list`` with,
    per value, the protected bytes (sink), or an ``Outcome`` (block, dead-letter, tombstone, and
    every record of a crypto-shredding route). Counters go into ``route.stats`` as the reference
    path counts them; per-record processing time into its histogram buckets."""
    from .compiler import BLOCK, DEAD_LETTER, DL_LIMIT_TIME, LATENCY_BUCKETS, SINK, TOMBSTONE, Outcome, _json_equal

    src = _Source()
    ns = src.ns
    from ..formats.json import big_int_literal, dumps_wide, loads_exact
    ns.update(loads=orjson.loads, dumps=orjson.dumps, BIG=big_int_literal, EXACT=loads_exact, WIDE=dumps_wide, JSONDecodeError=orjson.JSONDecodeError,
              JSONEncodeError=orjson.JSONEncodeError, RecordError=RecordError, TransformError=TransformError,
              Outcome=Outcome, TOMBSTONE=TOMBSTONE, DEAD_LETTER=DEAD_LETTER, JEQ=_json_equal,
              STAGE_T=Stage.TRANSFORM, SHAPE=Reason.UNEXPECTED_SHAPE, pc=time.perf_counter,
              bisect_left=bisect.bisect_left, BUCKETS=LATENCY_BUCKETS, route=route, DW=route._dotted_miss,
              BUDGET=route._time_budget_s, DL_TIME=DL_LIMIT_TIME,
              DL_JSON=Outcome(DEAD_LETTER, reason=Reason.INVALID_JSON.value, stage=Stage.DESERIALIZE.value,
                              error_class="JSONDecodeError"),
              DL_NOT_OBJECT=Outcome(DEAD_LETTER, reason=Reason.NOT_OBJECT.value, stage=Stage.DESERIALIZE.value,
                                    error_class="TypeError"),
              TF_REASON=Reason.TRANSFORM_FAILED.value, TF_STAGE=Stage.TRANSFORM.value,
              SER_REASON=Reason.SERIALIZE_FAILED.value, SER_STAGE=Stage.SERIALIZE.value)
    native = native_available() and not route.subject_mode
    # FF1 rules on object-key paths run in C, value by value, when the accelerator is there; the
    # others (array paths, pure-Python path) are encrypted per batch (route._deferred)
    in_c = {i for i in route._deferred if native and native_op(route.transforms[i]) is not None
            and (_key_path(route.rules[i].field) is not None or _choice_paths(route.rules[i].field) is not None)}
    defer = bool(set(route._deferred) - in_c)
    drops = [i for i in route._order if isinstance(route.rules[i], DropRule)]
    # Drops on object-key paths delete object members at once: that shifts no array index, so it
    # is safe before the batch's FF1 write-back too (which addresses array elements by index).
    inline_drops = route._tree is None and all(_key_path(route.rules[i].field) is not None for i in drops)
    steps = route._batch_steps if defer else route._steps
    step_of = dict(zip(route._order, steps))
    need_hits = not inline_drops or route._tree is not None
    inline_rules: list[int] = []  # rule indexes counted as "matched unless an unmatched event"

    e = src.emit
    src.block("""
        def protect_batch(values, timestamps=None):
            st = route.stats
            ev = []  # (rule index, matches): unmatched rules and matches of generic steps, this batch
            UN = ev.append
            def miss(i, o):  # a rule done in C did not match
                UN((i, 0))
            ok = produced = 0
            lat = 0.0
            buckets, blocked, dead = st.latency_buckets, st.blocked, st.dead_lettered
            out = []
            put = out.append
            results = []  # FF1 routes: protected objects until the batch is encrypted
            times = []
            t0 = pc()
    """)
    src.depth = 1
    e("for j, v in enumerate(values):")
    src.depth = 2
    if route.uses_record_timestamp:  # retention on the Kafka timestamp: what process() is given
        e("route._record_ts = timestamps[j] if timestamps is not None else None")
    if any(_key_path(route.rules[i].field) is None for i in route._deferred if i not in in_c):
        e("route._record_index = j")  # FF1 step closures (array paths) queue values under it
    src.block("""
        if v is None:
            res = TOMBSTONE
        else:
            try:
                o = loads(v)
                if BIG(v):  # integers beyond 64 bits: exact (proxy.formats.json)
                    o = EXACT(v)
            except JSONDecodeError:
                o = DL_JSON
            if type(o) is not dict:
                res = DL_NOT_OBJECT if o is not DL_JSON else o
            else:
                mark = len(ev)
                try:
                    res = None
    """)
    src.depth = 5
    # -- block conditions: the first that holds decides -------------------------------------------
    for b, (when, hit_closure, reason) in enumerate(route._blocks):
        blk = src.const(f"BLOCK{b}", Outcome(BLOCK, reason=reason))
        kp = _key_path(when.field)
        if kp is None or "not_equals" in when.model_fields_set:  # the reference path's closure
            hit = src.const(f"HIT{b}", hit_closure)
            e(f"if res is None and {hit}(o):")
            e(f"    res = {blk}")
            continue
        parents, last = kp
        e("if res is None:")
        src.depth += 1
        opened, n = _walk(src, parents, f"BP{b}", False, "pass", "None")
        lk = src.const(f"BL{b}", last)
        wanted = [when.equals] if when.in_ is None else list(when.in_)
        tests = " or ".join(f"({_equality(src, 'x', w, f'BW{b}_{k}')})" for k, w in enumerate(wanted)) or "False"
        e(f"if {lk} in {n}:")
        e(f"    x = {n}[{lk}]")
        e(f"    if {tests}:")
        e(f"        res = {blk}")
        src.depth -= opened + 1
    if route._retention is not None:  # retention: after the block conditions, as protect()
        e("if res is None:")
        e(f"    res = {src.const('RETAIN', route.retention_check)}(o)")
    if route.consent is not None:  # consent: after retention, as protect()
        e("if res is None:")
        e(f"    res = {src.const('CONSENT', route.consent_check)}(o)")
    e("if res is None:")
    src.depth += 1
    if need_hits:
        e("hits = []")
    # -- rules, in route._order (drops last) -------------------------------------------------------
    groups: list[list[tuple]] = []
    plans: list = []                 # the proxy._native.Plan objects (fn.plans: wiped on reload)   # runs of consecutive rules done by one proxy._native.Plan
    run: list[tuple] = []
    labels = route.rule_labels

    # An alternation rule's paths ({before,after}.email) are rules of a Plan under virtual indexes
    # (from len(labels)); after the call their misses become one (rule, matches) event per record.
    vrule: dict[int, int] = {}                    # virtual index -> rule index
    run_alts: list[tuple[int, int]] = []          # (rule index, paths) of alternation rules in the run

    def vlabel(v: int) -> str:
        return labels[vrule.get(v, v)]

    def end_run() -> None:
        if run:
            g = len(groups)
            plan = _native.Plan(list(run), lambda v: (_ for _ in ()).throw(
                RecordError(Stage.TRANSFORM, Reason.UNEXPECTED_SHAPE, vlabel(v))))
            plans.append(plan)
            if run_alts:
                e("g0 = len(ev)")
            e(f"{src.const(f'NATIVE{g}', plan)}(o, miss)")
            if run_alts:
                fix = src.const(f"ALTFIX{g}", _alt_events(dict(vrule), list(run_alts)))
                full = src.const(f"ALTFULL{g}", tuple((i, n) for i, n in run_alts))
                e(f"if len(ev) > g0: {fix}(ev, g0)")
                e(f"else: ev.extend({full})")
            groups.append(list(run))
            run.clear()
            run_alts.clear()

    for i in route._order:
        rule, t = route.rules[i], route.transforms[i]
        label = src.const(f"LABEL{i}", route.rule_labels[i])
        kp = _key_path(rule.field)
        alts = _choice_paths(rule.field)
        is_drop = isinstance(rule, DropRule)
        # a value rule on an object-key path (or an alternation of them), applied one value at a time
        direct = ((kp is not None or alts is not None) and not is_drop and rule.action != "keep"
                  and (i not in route._deferred or i in in_c) and not route.subject_mode)
        if not (direct and native):
            end_run()
        if is_drop and inline_drops:  # located now, deleted after every drop is located
            e(f"d{i} = None")
            _at_key(src, i, kp, label, f"d{i} = {{n}}")
        elif direct and native and alts is not None:
            for parents, last in alts:
                v = len(labels) + len(vrule)
                vrule[v] = i
                run.append(_native_rule(v, t, parents, last, route.rule_labels[i]))
            run_alts.append((i, len(alts)))
            continue  # counted by its (rule, matches) events
        elif direct and native:
            run.append(_native_rule(i, t, *kp, route.rule_labels[i]))
        elif direct and alts is not None:
            a = src.const(f"A{i}", t.compile_apply())
            e("c = 0")
            for p, path in enumerate(alts):
                _at_key(src, i, path, label, f"""
                    try:
                        {{n}}[{{k}}] = {a}({{n}}[{{k}}])
                    except TransformError as e:
                        raise RecordError(STAGE_T, e.reason, {label}) from None
                    c += 1
                """, tag=f"_{p}", absent="pass")
            e(f"UN(({i}, c))")
            continue
        elif direct:
            a = src.const(f"A{i}", t.compile_apply())
            _at_key(src, i, kp, label, f"""
                try:
                    {{n}}[{{k}}] = {a}({{n}}[{{k}}])
                except TransformError as e:
                    raise RecordError(STAGE_T, e.reason, {label}) from None
            """)
        elif kp is not None and defer and i in route._deferred:  # FF1: validate now, encrypt per batch
            split = src.const(f"SPLIT{i}", route.transforms[i].split)
            pend = src.const(f"PEND{i}", route._deferred[i].append)
            _at_key(src, i, kp, label, f"""
                try:
                    sp = {split}({{n}}[{{k}}])
                except TransformError as e:
                    raise RecordError(STAGE_T, e.reason, {label}) from None
                if sp is not None:
                    {pend}((j, {{n}}, {{k}}, sp[0], sp[1], sp[2]))
            """)
        else:
            s = src.const(f"S{i}", step_of[i])
            e(f"k = {s}(o, hits)" if need_hits else f"k = {s}(o, None)")
            e(f"UN(({i}, k))")
            continue
        inline_rules.append(i)
    end_run()
    if inline_drops:
        for i in drops:
            e(f"if d{i} is not None:")
            e(f"    d{i}.pop(L{i}, None)")
    if need_hits:
        e("if hits or TREE is not None:")
        ns["TREE"] = route._tree
        if defer:
            e("    route._batch_finish.append((j, hits))")
        else:
            e("    o = route._finish(o, hits)")
    if any(d is not None for d in route._dotted):  # as process(): on the finished record
        e("if len(ev) > mark:")
        e("    DW(ev, mark, o)")
    e("ok += 1")
    e("res = o")
    src.depth -= 1
    src.depth = 4
    src.block("""
        except RecordError as x:
            del ev[mark:]
            res = Outcome(DEAD_LETTER, reason=x.reason.value, stage=x.stage.value, error_class=type(x).__name__, rule=x.rule)
        except Exception as x:  # fail closed on any bug in a transform; never echo the message
            del ev[mark:]
            res = Outcome(DEAD_LETTER, reason=TF_REASON, stage=TF_STAGE, error_class=type(x).__name__)
    """)
    src.depth = 2
    serialize = """
        if type(res) is dict:
            try:
                try:
                    res = dumps(res)
                except TypeError as x:  # integers beyond 64 bits
                    res = WIDE(res, x)
            except (TypeError, JSONEncodeError) as x:
                res = Outcome(DEAD_LETTER, reason=SER_REASON, stage=SER_STAGE, error_class=type(x).__name__)
    """
    if defer:
        src.block("""
            results.append(res)
            t1 = pc()
            times.append(t1 - t0)
            t0 = t1
        """)
        src.depth = 1
        src.block("""
            failed = route._flush_deferred_finish(results)
            share = (pc() - t0) / len(results) if results else 0.0
            t0 = pc()
            for j, res in enumerate(results):
                if j in failed and type(res) is dict:  # an earlier outcome of the record stands
                    res = failed[j]
        """)
        src.depth = 2
    src.block(serialize)
    # -- counters and the histogram -------------------------------------------------------------------
    src.block("""
        put(res)
        if type(res) is bytes:
            produced += 1
        else:
            kind = res.kind
            if kind == SINK:
                produced += 1
            elif kind == BLOCK:
                blocked[res.reason] = blocked.get(res.reason, 0) + 1
            else:
                dead[res.reason] = dead.get(res.reason, 0) + 1
        t1 = pc()
        dt = t1 - t0 + (times[j] + share if times else 0.0)
        t0 = t1
        lat += dt
        buckets[bisect_left(BUCKETS, dt)] += 1
        if dt > BUDGET and (type(res) is bytes or res.kind == SINK):  # limits.time_budget_ms, as process()
            out[-1] = DL_TIME
            produced -= 1
            dead[DL_TIME.reason] = dead.get(DL_TIME.reason, 0) + 1
    """)
    src.depth = 1
    src.block("""
        st.consumed += len(values)
        st.produced += produced
        st.latency_sum += lat
        if ok or ev:
            route._count_rules(ok, ev, INLINE)
        return out
    """)
    ns.update(INLINE=tuple(inline_rules), SINK=SINK, BLOCK=BLOCK)
    code = compile(src.text(), f"<dpp route {route.name!r}: batch path>", "exec")
    exec(code, ns)  # noqa: S102 - generated from the compiled policy; constants only (module doc)
    fn = ns["protect_batch"]
    fn.source = src.text()  # for debugging and the tests
    fn.plans = tuple(plans)
    return fn
