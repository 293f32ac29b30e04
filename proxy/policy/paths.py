"""Field paths: parse once at policy load, then walk records with plain closures.

Syntax (a subset of JSONPath kept readable in YAML, with glob-style object wildcards)::

    name                      top-level key
    address.city              nested object key
    orders[*].card_number     every element of an array, then a key
    orders[0].card_number     one element by index
    "user.name".first         a key that contains dots: double-quoted (\\" and \\\\ escape)
    *.payer.name              any key at one object level (every member of the object)
    **.email                  zero or more object levels: email at the top and in every nested object
    {before,after}.email      one of the listed keys at one level (alternatives may be quoted)

A path is a tuple of segments: ``str`` (object key), ``int`` (array index), :data:`WILDCARD`
(every array element), :data:`ANY_KEY` (``*``), :data:`DEEP` (``**``) or a :class:`KeyChoice`
(``{a,b}``). A plain key may not contain ``*``, ``{`` or ``}``: quote it (``"a*b"``, ``"*"``)
to mean those characters literally.

Wildcards and shapes: a member that ``*`` or ``**`` reaches but that does not have the shape the
rest of the path needs (``op: "c"`` for ``*.payer.name``) is simply not selected, and ``**``
walks objects only (never into arrays: write ``**.orders[*].card``). Named keys, alternatives
included, keep the strict rule of :func:`compile_visit`: a string where the path needs an object
fails closed.
"""
from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any, Callable, Iterator

WILDCARD = object()
"""Segment matching every element of an array."""


class _Named:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


ANY_KEY = _Named("ANY_KEY")
"""Segment ``*``: every member of an object (one level)."""
DEEP = _Named("DEEP")
"""Segment ``**``: zero or more object levels (always followed by a key or a :class:`KeyChoice`)."""


class KeyChoice(tuple):
    """Segment ``{a,b,...}``: one of these object keys (two or more, distinct, in written order)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"KeyChoice({tuple.__repr__(self)})"

    def __eq__(self, other: object) -> bool:  # never equal to a plain tuple segment list
        return type(other) is KeyChoice and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("KeyChoice", tuple(self)))


Segment = "str | int | object"

MAX_CHOICES = 64
"""Most concrete paths the alternations of one path may spell (``{a,b}.{c,d}`` spells 4)."""

_PLAIN_STOP = '.[]"{}'


class PathSyntaxError(ValueError):
    """A field path does not follow the syntax above; the message says where (character offset)."""


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The key of the double-quoted string starting at ``text[i]`` and the offset after it."""
    n = len(text)
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
    return "".join(buf), j + 1


def _plain(text: str, i: int, stop: str) -> tuple[str, int]:
    """A plain key from ``text[i]`` up to a character of ``stop``; ``*`` only as a whole key."""
    j = i
    n = len(text)
    while j < n and text[j] not in stop:
        j += 1
    key = text[i:j]
    if "*" in key and key not in ("*", "**"):
        raise PathSyntaxError(f"'*' inside a key at character {i + text[i:j].index('*') + 1}: "
                              "a wildcard is a whole key (* or **); quote the key for a literal '*'")
    return key, j


def _choice(text: str, i: int) -> tuple[KeyChoice, int]:
    """The alternation ``{a,b,...}`` starting at ``text[i]`` and the offset after it."""
    n = len(text)
    keys: list[str] = []
    j = i + 1
    while True:
        if j < n and text[j] == '"':
            key, j = _quoted(text, j)
        else:
            key, j = _plain(text, j, _PLAIN_STOP + ",")
            if key in ("*", "**"):
                raise PathSyntaxError(f"a wildcard inside {{...}} at character {j - len(key) + 1}: list keys")
            if not key:
                if j >= n:
                    raise PathSyntaxError(f"unclosed '{{' at character {i + 1}")
                raise PathSyntaxError(f"empty alternative in {{...}} at character {j + 1}")
        if key in keys:
            raise PathSyntaxError(f"{key!r} is listed twice in {{...}} at character {i + 1}")
        keys.append(key)
        if j >= n:
            raise PathSyntaxError(f"unclosed '{{' at character {i + 1}")
        if text[j] == ",":
            j += 1
            continue
        if text[j] == "}":
            break
        raise PathSyntaxError(f"unexpected {text[j]!r} in {{...}} at character {j + 1}")
    if len(keys) < 2:
        raise PathSyntaxError(f"{{...}} at character {i + 1} lists one key: write it without braces")
    return KeyChoice(keys), j + 1


def parse_path(text: str) -> tuple:
    """Parse a field path into a tuple of segments.

    Raises :class:`PathSyntaxError` for empty paths, empty keys, unbalanced quotes, brackets or
    braces, a path that starts with an array selector (records are JSON objects), ``*`` inside a
    plain key, ``**`` not followed by a key (``**`` at the end, ``**.**``, ``**.*``, ``**[*]``) and
    alternations spelling more than :data:`MAX_CHOICES` paths.
    """
    if not isinstance(text, str) or not text:
        raise PathSyntaxError("empty path")
    segs: list = []
    i, n = 0, len(text)
    expect_key = True
    while i < n:
        c = text[i]
        if expect_key:
            start = i
            if c == '"':
                key, i = _quoted(text, i)
                seg: Any = key
            elif c == "{":
                seg, i = _choice(text, i)
            else:
                key, i = _plain(text, i, _PLAIN_STOP)
                if i == start:
                    raise PathSyntaxError(f"expected a key at character {start + 1}")
                seg = ANY_KEY if key == "*" else DEEP if key == "**" else key
            if segs and segs[-1] is DEEP and (seg is DEEP or seg is ANY_KEY):
                raise PathSyntaxError(f"'**' must be followed by a key, at character {start + 1}")
            segs.append(seg)
            expect_key = False
            continue
        # after a key or selector: '.', '[' or end
        if c == ".":
            expect_key = True
            i += 1
            if i >= n:
                raise PathSyntaxError("path ends with '.'")
        elif c == "[":
            if segs[-1] is DEEP:
                raise PathSyntaxError(f"'**' must be followed by a key, at character {i + 1}")
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
    if segs[-1] is DEEP:
        raise PathSyntaxError("'**' must be followed by a key (**.email)")
    spelled = 1
    for s in segs:
        if type(s) is KeyChoice:
            spelled *= len(s)
    if spelled > MAX_CHOICES:
        raise PathSyntaxError(f"the alternations spell {spelled} paths (at most {MAX_CHOICES})")
    return tuple(segs)


def _format_key(s: str, stop: str) -> str:
    if any(ch in s for ch in stop) or not s or s in ("*", "**"):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def format_path(segs: tuple) -> str:
    """Inverse of :func:`parse_path` (canonical spelling)."""
    out = []
    for s in segs:
        if s is WILDCARD:
            out.append("[*]")
        elif isinstance(s, int):
            out.append(f"[{s}]")
        else:
            if s is ANY_KEY:
                key = "*"
            elif s is DEEP:
                key = "**"
            elif type(s) is KeyChoice:
                key = "{" + ",".join(_format_key(k, _PLAIN_STOP + ",*") for k in s) + "}"
            else:
                key = _format_key(s, _PLAIN_STOP + "*")
            out.append(("." if out else "") + key)
    return "".join(out)


def has_wildcards(segs: tuple) -> bool:
    """Whether a parsed path has object wildcards or alternations (``*``, ``**``, ``{a,b}``)."""
    return any(s is ANY_KEY or s is DEEP or type(s) is KeyChoice for s in segs)


def expand_choices(segs: tuple) -> list[tuple]:
    """The paths an alternation spells, in written order (``{a,b}.c`` → ``a.c``, ``b.c``);
    ``[segs]`` for a path without one."""
    options = [tuple(s) if type(s) is KeyChoice else (s,) for s in segs]
    return [tuple(p) for p in itertools.product(*options)]


def is_prefix(a: tuple, b: tuple) -> bool:
    """True when path ``a`` selects an ancestor of (or the same node as) path ``b``.

    ``[*]`` overlaps any index, so ``orders[*]`` is a prefix of ``orders[0].card``. For paths
    with object wildcards see :func:`overlap`.
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


def _keyish(s: Any) -> bool:
    return type(s) is str or s is ANY_KEY or type(s) is KeyChoice


def _meet(x: Any, y: Any) -> bool:
    """Whether two one-level segments (no :data:`DEEP`) can select the same member."""
    if _keyish(x) and _keyish(y):
        if x is ANY_KEY or y is ANY_KEY:
            return True
        xs = x if type(x) is KeyChoice else (x,)
        ys = set(y) if type(y) is KeyChoice else {y}
        return any(k in ys for k in xs)
    if _keyish(x) or _keyish(y):
        return False  # an object key and an array index never select one node
    return x is WILDCARD or y is WILDCARD or x == y


def overlap(a: tuple, b: tuple) -> tuple[bool, bool, bool]:
    """``(same, a_above_b, b_above_a)`` for two parsed paths (wildcards and alternations
    included): whether some record has one node both select (``same``), or a node ``a`` selects
    that is a proper ancestor of a node ``b`` selects (``a_above_b``), or the reverse. Exact, in
    O(len(a) · len(b)): the intersection of the two patterns (``**`` = any run of object keys)."""

    @lru_cache(maxsize=None)
    def go(i: int, j: int, mode: int) -> bool:
        # mode 0: both end together; 1: a ends first (b goes on); 2: b ends first
        if i == len(a) and j == len(b):
            return mode == 0
        if i == len(a):
            return mode == 1 or all(s is DEEP for s in b[j:]) and mode == 0
        if j == len(b):
            return mode == 2 or all(s is DEEP for s in a[i:]) and mode == 0
        x, y = a[i], b[j]
        if x is DEEP and y is DEEP:
            return go(i + 1, j, mode) or go(i, j + 1, mode)
        if x is DEEP:  # ** takes nothing more, or the key b takes here
            return go(i + 1, j, mode) or (_keyish(y) and go(i, j + 1, mode))
        if y is DEEP:
            return go(i, j + 1, mode) or (_keyish(x) and go(i + 1, j, mode))
        return _meet(x, y) and go(i + 1, j + 1, mode)

    return go(0, 0, 0), go(0, 0, 1), go(0, 0, 2)


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
            raise PathShapeError(f"path level {k + 1}: expected an {'object' if _keyish(segs[k]) or segs[k] is DEEP else 'array'}")
        return 0

    def build(k: int):
        seg = segs[k]
        last = k == len(segs) - 1
        if seg is DEEP or seg is ANY_KEY or type(seg) is KeyChoice:
            return build_object_wildcard(k, seg, last)
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

    def build_object_wildcard(k: int, seg: Any, last: bool):
        nxt = None if last else build(k + 1)
        if seg is DEEP:  # the rest of the path at this object and at every object below it
            def step_deep(node, fn):
                if type(node) is not dict:
                    return wrong(node, k)
                total = 0
                stack = [node]
                while stack:
                    cur = stack.pop()
                    total += nxt(cur, fn)  # may rewrite members: walk on what is there now
                    stack.extend(reversed([v for v in cur.values() if type(v) is dict]))
                return total
            return step_deep
        if seg is ANY_KEY:
            if last:
                def leaf_any(node, fn):
                    if type(node) is not dict:
                        return wrong(node, k)
                    keys = list(node)
                    for key in keys:
                        fn(node, key)
                    return len(keys)
                return leaf_any
            # only members of the shape the rest needs are selected (module doc)
            want = dict if _keyish(segs[k + 1]) or segs[k + 1] is DEEP else list

            def step_any(node, fn):
                if type(node) is not dict:
                    return wrong(node, k)
                total = 0
                for child in list(node.values()):
                    if type(child) is want:
                        total += nxt(child, fn)
                return total
            return step_any
        if last:
            def leaf_choice(node, fn, keys=tuple(seg)):
                if type(node) is not dict:
                    return wrong(node, k)
                n = 0
                for key in keys:
                    if key in node:
                        fn(node, key)
                        n += 1
                return n
            return leaf_choice

        def step_choice(node, fn, keys=tuple(seg)):
            if type(node) is not dict:
                return wrong(node, k)
            total = 0
            for key in keys:
                child = node.get(key)
                if child is not None:
                    total += nxt(child, fn)
            return total
        return step_choice

    return build(0)


def iter_values(record: Any, segs: tuple) -> Iterator[Any]:
    """Yield every value the path selects in ``record`` (read-only helper for block conditions)."""
    found: list = []
    compile_visit(segs)(record, lambda c, k: found.append(c[k]))
    return iter(found)
