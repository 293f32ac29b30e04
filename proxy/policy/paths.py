"""Field paths: parse once at policy load, then walk records with plain closures.

Syntax (a subset of JSONPath kept readable in YAML)::

    name                      top-level key
    address.city              nested object key
    orders[*].card_number     every element of an array, then a key
    orders[0].card_number     one element by index
    "user.name".first         a key that contains dots: double-quoted (\\" and \\\\ escape)

A path is a tuple of segments: ``str`` (object key), ``int`` (array index) or :data:`WILDCARD`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

WILDCARD = object()
"""Segment matching every element of an array."""

Segment = "str | int | object"


class PathSyntaxError(ValueError):
    """A field path does not follow the syntax above; the message says where (character offset)."""


def parse_path(text: str) -> tuple:
    """Parse a field path into a tuple of segments.

    Raises :class:`PathSyntaxError` for empty paths, empty keys, unbalanced quotes or brackets,
    and a path that starts with an array selector (records are JSON objects).
    """
    if not isinstance(text, str) or not text:
        raise PathSyntaxError("empty path")
    segs: list = []
    i, n = 0, len(text)
    expect_key = True
    while i < n:
        c = text[i]
        if expect_key:
            if c == '"':
                j = i + 1
                buf = []
                while j < n and text[j] != '"':
                    if text[j] == "\\" and j + 1 < n and text[j + 1] in '"\\':
                        buf.append(text[j + 1])
                        j += 2
                        continue
                    buf.append(text[j])
                    j += 1
                if j >= n:
                    raise PathSyntaxError(f"unterminated quote starting at character {i + 1}")
                if not buf:
                    raise PathSyntaxError(f"empty quoted key at character {i + 1}")
                segs.append("".join(buf))
                i = j + 1
            else:
                j = i
                while j < n and text[j] not in '.[]"':
                    j += 1
                if j == i:
                    raise PathSyntaxError(f"expected a key at character {i + 1}")
                segs.append(text[i:j])
                i = j
            expect_key = False
            continue
        # after a key or selector: '.', '[' or end
        if c == ".":
            expect_key = True
            i += 1
            if i >= n:
                raise PathSyntaxError("path ends with '.'")
        elif c == "[":
            j = text.find("]", i)
            if j < 0:
                raise PathSyntaxError(f"unclosed '[' at character {i + 1}")
            inner = text[i + 1 : j]
            if inner == "*":
                segs.append(WILDCARD)
            elif inner.isdigit():
                segs.append(int(inner))
            else:
                raise PathSyntaxError(f"array selector must be [*] or [N], at character {i + 1}")
            i = j + 1
        else:
            raise PathSyntaxError(f"unexpected {c!r} at character {i + 1}")
    return tuple(segs)


def format_path(segs: tuple) -> str:
    """Inverse of :func:`parse_path` (canonical spelling)."""
    out = []
    for s in segs:
        if s is WILDCARD:
            out.append("[*]")
        elif isinstance(s, int):
            out.append(f"[{s}]")
        else:
            needs_quote = any(ch in s for ch in '.[]"') or not s
            key = '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' if needs_quote else s
            out.append(("." if out else "") + key)
    return "".join(out)


def is_prefix(a: tuple, b: tuple) -> bool:
    """True when path ``a`` selects an ancestor of (or the same node as) path ``b``.

    ``[*]`` overlaps any index, so ``orders[*]`` is a prefix of ``orders[0].card``.
    """
    if len(a) > len(b):
        return False
    for x, y in zip(a, b):
        if x is WILDCARD or y is WILDCARD:
            if not (isinstance(x, int) or x is WILDCARD) or not (isinstance(y, int) or y is WILDCARD):
                return False
            continue
        if x != y:
            return False
    return True


class PathTrie:
    """Parsed paths by segment, for finding every stored path that :func:`is_prefix` relates to a
    given one without comparing all pairs (policy load is linear in its rules, not quadratic).

    ``add(path, item)`` stores ``item`` under ``path``; ``related(path)`` returns
    ``(ancestors, same_length)``: the items of stored paths ``a`` with ``is_prefix(a, path)`` and
    ``len(a) < len(path)``, and those with ``len(a) == len(path)`` (incl. ``path`` itself). Cost
    per lookup: the path's length times the matching branches (``[*]`` meets every index stored
    at its position).
    """

    __slots__ = ("_root",)

    def __init__(self) -> None:
        self._root: tuple[dict, list, set] = ({}, [], set())  # children, items, int keys among children

    def add(self, path: tuple, item: Any) -> None:
        node = self._root
        for seg in path:
            children, _, ints = node
            nxt = children.get(_key(seg))
            if nxt is None:
                nxt = children[_key(seg)] = ({}, [], set())
                if isinstance(seg, int):
                    ints.add(seg)
            node = nxt
        node[1].append(item)

    def related(self, path: tuple) -> tuple[list, list]:
        ancestors: list = []
        nodes = [self._root]
        for seg in path:
            nxt = []
            for children, items, ints in nodes:
                ancestors += items
                if seg is WILDCARD:
                    nxt += [children[_key(i)] for i in ints]
                    if _WILD in children:
                        nxt.append(children[_WILD])
                else:
                    child = children.get(_key(seg))
                    if child is not None:
                        nxt.append(child)
                    if isinstance(seg, int) and _WILD in children:
                        nxt.append(children[_WILD])
            nodes = nxt
            if not nodes:
                return ancestors, []
        return ancestors, [item for _, items, _ in nodes for item in items]


_WILD = ("*",)
"""Trie key of :data:`WILDCARD` (a tuple: never equal to a path's str or int segment)."""


def _key(seg: Any) -> Any:
    if seg is WILDCARD:
        return _WILD
    return ("i", seg) if isinstance(seg, int) else seg


Visitor = Callable[[Any, Any], None]


class PathShapeError(ValueError):
    """(``strict`` visits) A node on the path has the wrong JSON type: a string or number where the
    path needs an object or array. The message names the path depth only, never the value."""


def compile_visit(segs: tuple, strict: bool = False) -> Callable[[dict, Callable[[Any, Any], None]], int]:
    """Compile a path into ``visit(record, fn) -> matches``.

    ``fn(container, key)`` is called for every node the path selects, with the parent container
    (a ``dict`` or ``list``) and the key/index, so it can read, replace or delete the node in place.
    Returns the number of nodes visited (0 = the path is absent from this record: a missing key, an
    index out of range, or ``null`` on the way). A node of the wrong type on the way (a string where
    an object is expected) counts as absent, or with ``strict`` raises :class:`PathShapeError`: a
    rule must not pass ``"address": "1 Main St"`` in clear because it expected ``address.street``.
    """
    if not segs:
        raise ValueError("empty path")

    def wrong(node, k: int) -> int:
        if strict and node is not None:
            raise PathShapeError(f"path level {k + 1}: expected an {'array' if type(segs[k]) is not str else 'object'}")
        return 0

    def build(k: int):
        seg = segs[k]
        last = k == len(segs) - 1
        if last:
            if seg is WILDCARD:
                def leaf_wild(node, fn):
                    if type(node) is not list:
                        return wrong(node, k)
                    for i in range(len(node)):
                        fn(node, i)
                    return len(node)
                return leaf_wild
            if isinstance(seg, int):
                def leaf_idx(node, fn, i=seg):
                    if type(node) is not list:
                        return wrong(node, k)
                    if -len(node) <= i < len(node):
                        fn(node, i)
                        return 1
                    return 0
                return leaf_idx

            def leaf_key(node, fn, key=seg):
                if type(node) is not dict:
                    return wrong(node, k)
                if key in node:
                    fn(node, key)
                    return 1
                return 0
            return leaf_key
        nxt = build(k + 1)
        if seg is WILDCARD:
            def step_wild(node, fn):
                if type(node) is not list:
                    return wrong(node, k)
                total = 0
                for child in node:
                    total += nxt(child, fn)
                return total
            return step_wild
        if isinstance(seg, int):
            def step_idx(node, fn, i=seg):
                if type(node) is not list:
                    return wrong(node, k)
                if -len(node) <= i < len(node):
                    return nxt(node[i], fn)
                return 0
            return step_idx

        def step_key(node, fn, key=seg):
            if type(node) is not dict:
                return wrong(node, k)
            child = node.get(key)
            if child is not None:
                return nxt(child, fn)
            return 0
        return step_key

    return build(0)


def iter_values(record: Any, segs: tuple) -> Iterator[Any]:
    """Yield every value the path selects in ``record`` (read-only helper for block conditions)."""
    found: list = []
    compile_visit(segs)(record, lambda c, k: found.append(c[k]))
    return iter(found)
