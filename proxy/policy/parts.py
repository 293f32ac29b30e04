"""Rules on the other parts of a Kafka record: the key (``key:``) and the headers (``headers:``).

Both run before the value's block conditions and rules (:meth:`CompiledRoute.process_record`);
a failure dead-letters the whole record (stage ``key`` or ``headers``), so no part leaves in clear.

**Keys** (:class:`KeyProtector`): decoded with the route's key codec (``string``, ``bytes``,
``json``, ``avro``, ``protobuf``), rewritten by deterministic rules only (``keep``, ``redact`` to a
literal, ``pseudonymize``, ``fpe``, ``tokenize``: same source key → same protected key bytes, on
every worker and after every restart, so the sink producer's murmur2 partitioner puts all records
of one source key, tombstones included, into one sink partition), and encoded again. A null key
stays null; a key section without rules passes keys unchanged. Outputs are bound to
``field:<policy>:@key[.<path>]`` unless the rule names a ``domain`` (then a key pseudonym equals the
value field's pseudonym of the same domain: joinable).

**Headers** (:class:`HeaderProtector`): each source header is matched against the rules in policy
order (exact name, or a glob with ``*``, ``?``, ``[...]``; case-sensitive, as Kafka header names
are bytes); the first rule that matches decides. Values are UTF-8 text for rewriting rules (other
bytes: ``header-decode-failed``); a null value stays null (``drop`` removes it, ``redact`` writes
the literal). Headers no rule names are kept or dropped (``unlisted_headers``). Order and duplicate
names are preserved. The headers dpp adds itself (``dpp-policy``, ``dpp-key-versions``, ...) are
appended after the rules ran, so rules never touch them.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any, Callable

from ..errors import FormatError, Reason, RecordError, Stage, TransformError
from ..formats.base import Codec
from ..formats.string import StringCodec
from ..transforms import BuildContext, build_transform
from .paths import PathShapeError, compile_visit, parse_path


class KeyProtector:
    """Protects record keys with ``rules`` (key rule models) through ``codec``.

    ``counts(transforms, unmatched)`` receive per-rule increments after a key was fully
    protected; ``labels`` are the rules' metric labels."""

    def __init__(self, rules: list, codec: Codec, ctx: BuildContext, labels: list[str]):
        self.rules, self.codec, self.labels = list(rules), codec, labels
        kctx = dataclasses.replace(ctx, part="key")
        self.transforms = [build_transform(r, kctx) for r in self.rules]
        self._applies = [t.compile_apply() for t in self.transforms]
        self._visits = [compile_visit(parse_path(r.field), strict=r.action != "keep") if r.field else None
                        for r in self.rules]
        self._setters = [self._setter(apply, label) for apply, label in zip(self._applies, labels)]

    @staticmethod
    def _setter(apply: Callable[[Any], Any], label: str) -> Callable[[Any, Any], None]:
        def set_node(c, k):
            try:
                c[k] = apply(c[k])
            except TransformError as e:
                raise RecordError(Stage.KEY, e.reason, label) from None
        return set_node

    def protect(self, key: bytes | None, transforms: list[int], unmatched: list[int], base: int) -> bytes | None:
        """The protected key bytes (``None`` for a null key). Raises :class:`RecordError`
        (stage ``key``): ``key-decode-failed``, a transform's reason, ``unexpected-shape``,
        ``serialize-failed``. Adds to ``transforms``/``unmatched`` at ``base + i`` on success."""
        if key is None or not self.rules:
            return key
        try:
            tree, ctx = self.codec.decode(key)
        except FormatError:
            raise RecordError(Stage.KEY, Reason.KEY_DECODE_FAILED) from None
        hits = [0] * len(self.rules)
        if not self.codec.structured:
            try:
                tree = self._applies[0](tree)
            except TransformError as e:
                raise RecordError(Stage.KEY, e.reason, self.labels[0]) from None
            hits[0] = 1
        else:
            if type(tree) is not dict:
                raise RecordError(Stage.KEY, Reason.NOT_OBJECT)
            for i, visit in enumerate(self._visits):
                try:
                    hits[i] = visit(tree, self._setters[i])
                except PathShapeError:
                    raise RecordError(Stage.KEY, Reason.UNEXPECTED_SHAPE, self.labels[i]) from None
        try:
            out = self.codec.encode(tree, ctx)
        except FormatError as e:
            raise RecordError(Stage.KEY, e.reason if e.reason == Reason.SINK_SCHEMA_REJECTED
                              else Reason.SERIALIZE_FAILED) from None
        for i, n in enumerate(hits):
            if n:
                transforms[base + i] += n
            else:
                unmatched[base + i] += 1
        return out


_TEXT = StringCodec()


def _literal_bytes(v: Any) -> bytes | None:
    """A header value's bytes: text as UTF-8, another literal as its JSON text, null as null."""
    return None if v is None else _TEXT.encode(v, None)


class HeaderProtector:
    """Protects record headers (``[(name, bytes | None)]``) with header rule models."""

    _CACHE_MAX = 1024

    def __init__(self, rules: list, unlisted: str, ctx: BuildContext, labels: list[str]):
        self.rules, self.labels, self.keep_unlisted = list(rules), labels, unlisted == "keep"
        hctx = dataclasses.replace(ctx, part="header")
        self.transforms = [build_transform(r, hctx) for r in self.rules]
        self._ops: list[Callable[[bytes | None, str], Any]] = [self._op(r, t) for r, t in zip(self.rules, self.transforms)]
        self._globs = [(r.header, any(c in r.header for c in "*?[")) for r in self.rules]
        self._match_cache: dict[str, int | None] = {}

    _DROP = object()

    def _op(self, rule, t) -> Callable[[bytes | None, str], Any]:
        action = rule.action
        if action == "keep":
            return lambda v, label: v
        if action == "drop":
            return lambda v, label: self._DROP
        if action == "redact":
            lit = _literal_bytes(rule.value)
            return lambda v, label: lit
        apply = t.compile_apply()

        def rewrite(v: bytes | None, label: str):
            if v is None:
                return None
            try:
                text = bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                raise RecordError(Stage.HEADERS, Reason.HEADER_DECODE_FAILED, label) from None
            try:
                out = apply(text)
            except TransformError as e:
                raise RecordError(Stage.HEADERS, e.reason, label) from None
            return _literal_bytes(out)
        return rewrite

    def _match(self, name: str) -> int | None:
        try:
            return self._match_cache[name]
        except KeyError:
            pass
        found = None
        for i, (pat, glob) in enumerate(self._globs):
            if (fnmatch.fnmatchcase(name, pat) if glob else name == pat):
                found = i
                break
        if len(self._match_cache) < self._CACHE_MAX:
            self._match_cache[name] = found
        return found

    def protect(self, headers: list | None, transforms: list[int], unmatched: list[int], base: int) -> list | None:
        """The protected headers, in order (``None`` or ``[]`` as given when there were none and
        nothing is dropped). Raises :class:`RecordError` (stage ``headers``). Adds to the
        counters at ``base + i`` on success."""
        hits = [0] * len(self.rules)
        out = []
        for name, value in headers or ():
            i = self._match(name)
            if i is None:
                if self.keep_unlisted:
                    out.append((name, value))
                continue
            new = self._ops[i](value, self.labels[i])
            hits[i] += 1
            if new is not self._DROP:
                out.append((name, new))
        for i, n in enumerate(hits):
            if n:
                transforms[base + i] += n
            else:
                unmatched[base + i] += 1
        return out if (out or headers is not None) else headers
