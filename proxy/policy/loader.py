"""Load a policy file: YAML → plain data with a line for every path → :class:`Policy` → semantic checks.

Every problem is reported as ``(file, line, path, message)`` (see :class:`proxy.errors.PolicyError`),
so ``dpp check`` can print ``FILE:LINE: PATH: message``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from ..errors import PolicyError
from .models import DropRule, Policy
from .paths import ANY_KEY, DEEP, KeyChoice, PathTrie, expand_choices, has_wildcards, overlap, parse_path


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with where it came from. ``revision`` is the policy's own or sha256[:12]."""

    policy: Policy
    file: str
    sha256: str
    lines: dict = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, loc: tuple) -> int | None:
        """1-based line of a data location (e.g. ``("keys", "fpe")``), or of its nearest parent."""
        return nearest_line({k: v for k, v in self.lines.items() if k}, loc) if loc else None

    @property
    def revision(self) -> str:
        return self.policy.revision or self.sha256[:12]

    @property
    def provenance(self) -> str:
        """``name@revision``: the value of the ``dpp-policy`` header on produced records."""
        return f"{self.policy.name}@{self.revision}"


# libyaml's composer (C) when PyYAML was built with it: 5-10x faster on large policies, same nodes and marks.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Lines:
    """Maps a data path (tuple of keys/indexes) to the 1-based line where it is written."""

    def __init__(self) -> None:
        self.lines: dict[tuple, int] = {}
        self.count = 0  # nodes expanded so far (see MAX_NODES)

    def nearest(self, loc: tuple) -> int | None:
        return nearest_line(self.lines, loc)


class _DuplicateKey(Exception):
    """A problem found while turning YAML nodes into data (duplicate key, bomb, depth)."""

    def __init__(self, path: tuple, line: int, message: str = "duplicate key"):
        self.path, self.line, self.message = path, line, message


MAX_NODES = 250_000
"""Most YAML nodes a policy may expand to (aliases count once per use): stops alias bombs
("billion laughs") before they exhaust memory; a large real policy has a few thousand."""
MAX_DEPTH = 64
"""Deepest nesting a policy may use (the format itself needs fewer than 10 levels)."""


def _to_data(loader: Any, node: yaml.Node, path: tuple, lines: _Lines) -> Any:
    lines.lines.setdefault(path, node.start_mark.line + 1)
    lines.count += 1
    if lines.count > MAX_NODES:
        raise _DuplicateKey(path, node.start_mark.line + 1,
                            f"policy expands to more than {MAX_NODES} YAML nodes (alias bomb?)")
    if len(path) > MAX_DEPTH:
        raise _DuplicateKey(path[:1], node.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise _DuplicateKey(path, knode.start_mark.line + 1, "a mapping key must be a plain scalar")
            key = loader.construct_object(knode, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                key = str(key)
            if key in out:
                raise _DuplicateKey(path + (key,), knode.start_mark.line + 1)
            lines.lines[path + (key,)] = knode.start_mark.line + 1
            out[key] = _to_data(loader, vnode, path + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(loader, item, path + (i,), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _render_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _data_loc(loc: tuple, data: Any) -> tuple:
    """Strip pydantic's union-tag elements (e.g. ``'mask'``, ``'env'``) from a location."""
    out: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == "in_" and "in" in node:
            out.append("in")
            node = node["in"]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in node and out and part in _TAGS:
            continue  # discriminator tag
        else:
            out.append(part)
            node = None
    return tuple(out)


_TAGS = {"keep", "mask", "redact", "drop", "pseudonymize", "fpe", "tokenize", "detect", "env", "file", "dir",
         "vault", "aws"}


_ROUTE_KEYS = frozenset({"source", "sink", "dead_letter", "dead_letter_key", "rules", "block", "unlisted_fields",
                         "key", "headers", "purpose", "consent", "retention", "limits", "use", "format"})
"""Route keys that, found at the top level of a policy, mean the route's indentation was lost."""
_RULE_KEYS = frozenset({"field", "action", "keep_first", "keep_last", "mask_char", "alphabet", "detectors"})


def _message(err: dict) -> str:
    kind = err.get("type", "")
    msg = err.get("msg", "invalid")
    if kind == "extra_forbidden":
        loc = err.get("loc", ())
        if len(loc) == 1 and loc[0] in _ROUTE_KEYS:
            return (f"unknown key at the top level; {loc[0]!r} is a route key: the likely cause is "
                    "indentation (indent it under its route, like the route's other keys)")
        if len(loc) == 3 and loc[0] == "routes" and loc[2] in _RULE_KEYS:
            return (f"unknown key in a route; {loc[2]!r} is a rule key: the likely cause is indentation "
                    "(a rule is a list item under rules:)")
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_not_found" and err.get("loc", ("",))[0] == "rule_sets" and "use" in (err.get("input") or {}):
        return "a rule set holds rules, not use: (sets cannot use sets: list both sets in the route's use:)"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"unknown {ctx.get('discriminator', 'tag').strip(chr(39))} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def _compose(text: str, loader_cls: type, lines: _Lines) -> Any:
    """YAML ``text`` to plain data through ``loader_cls``, recording each path's line in ``lines``."""
    loader = loader_cls(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise _DuplicateKey((), loader.get_mark().line + 1, "YAML nested too deeply") from None
        return _to_data(loader, node, (), lines) if node is not None else None
    finally:
        loader.dispose()


_TOKEN_WORDS = {"'?'": "a key", "'-'": "a list item", "'<block mapping start>'": "a key indented differently",
                "'<block sequence start>'": "a new list", "'<scalar>'": "a value"}
"""PyYAML's token names in parser messages, in words (``expected <block end>, but found '?'``)."""

INDENTATION_HINTS = (
    ("expected <block end>", "the likely cause is indentation: line this up with the other keys (or '- ' items) "
                             "of the block it belongs to"),
    ("mapping values are not allowed here", "the likely cause is indentation: this key is indented deeper than the "
                                            "key above it (or an unquoted value holds ': ', quote it)"),
    ("could not find expected ':'", "the likely cause is indentation (a line continuing the one above must be "
                                    "indented deeper) or a key without ':'"),
    ("did not find expected key", "the likely cause is indentation: line this up with the other keys of its block"),
    ("did not find expected '-' indicator", "the likely cause is indentation: line this up with the other '- ' items"),
    ("found character '\\t' that cannot start any token", "YAML indents with spaces: replace the tab"),
)
"""``(start of a PyYAML/libyaml problem, hint)``: the scanner and parser errors that a line indented
too little, too much or with a tab typically causes."""


def yaml_syntax_problem(e: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """``(line, "YAML syntax: PROBLEM")`` of a YAML error: its token names in words and, for the
    errors indentation typically causes (:data:`INDENTATION_HINTS`), a hint that indentation is
    the likely cause. The line (1-based) is the problem's, or for a key without ':' the key's."""
    problem = e.problem or e.context or ""
    mark = (e.context_mark if problem.startswith("could not find expected ':'") and e.context_mark else None
            ) or e.problem_mark or e.context_mark
    hint = next((h for start, h in INDENTATION_HINTS if problem.startswith(start)), None)
    for token, words in _TOKEN_WORDS.items():
        problem = problem.replace(f"but found {token}", f"but found {words}")
    return (mark.line + 1 if mark else None), f"YAML syntax: {problem}" + (f"; {hint}" if hint else "")


def load_yaml_model(text: str, file: str, model: type, what: str = "a policy") -> tuple[Any, dict]:
    """Parse YAML ``text`` and validate it as ``model`` (a pydantic model class): ``(instance, lines)``,
    ``lines`` mapping each data path (tuple of keys/indexes) to its 1-based line. ``file`` and
    ``what`` (e.g. ``"a policy"``, ``"a test file"``) are used in error messages only.

    Raises :class:`PolicyError` with every problem as ``(file, line, path, message)``: YAML syntax,
    duplicate keys, alias bombs, a document that is not a mapping, and every schema error.
    """
    lines = _Lines()
    try:
        try:
            data = _compose(text, _YamlLoader, lines)
        except yaml.YAMLError:
            if _YamlLoader is yaml.SafeLoader:
                raise
            # libyaml's messages are terser ("did not find expected ..."); the pure-Python composer gives
            # the same position with PyYAML's usual wording, and a broken policy is worth the extra parse.
            lines = _Lines()
            data = _compose(text, yaml.SafeLoader, lines)
    except _DuplicateKey as d:
        raise PolicyError([(file, d.line, _render_loc(d.path), d.message)]) from None
    except yaml.MarkedYAMLError as e:
        line, message = yaml_syntax_problem(e)
        raise PolicyError([(file, line, "", message)]) from None
    except yaml.YAMLError as e:
        raise PolicyError([(file, None, "", f"YAML: {type(e).__name__}")]) from None
    if not isinstance(data, dict):
        raise PolicyError([(file, 1, "", f"{what} must be a YAML mapping")])
    try:
        return model.model_validate(data), lines.lines
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = _data_loc(tuple(err["loc"]), data)
            problems.append((file, lines.nearest(loc), _render_loc(loc), _message(err)))
        raise PolicyError(problems) from None


def nearest_line(lines: dict, loc: tuple) -> int | None:
    """1-based line of data location ``loc`` in ``lines`` (from :func:`load_yaml_model`), or of its
    nearest parent; ``None`` when nothing on the way is known."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def load_policy_text(text: str, file: str = "<policy>") -> LoadedPolicy:
    """Parse and validate policy YAML ``text``; ``file`` is used in error messages only.

    Raises :class:`PolicyError` with every problem found (YAML syntax, schema, semantics).
    """
    policy, lines = load_yaml_model(text, file, Policy)
    policy, origins, found = expand_rule_sets(policy)
    found += semantic_problems(policy, origins, lines)
    problems = [(file, nearest_line(lines, loc), _render_loc(loc), msg) for loc, msg in found]
    if problems:
        raise PolicyError(problems)
    return LoadedPolicy(policy=policy, file=file, sha256=hashlib.sha256(text.encode()).hexdigest(), lines=lines)


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read and validate a policy file. Raises :class:`PolicyError` (also for an unreadable file)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError([(str(path), None, "", f"cannot read policy file: {type(e).__name__}")]) from None
    return load_policy_text(text, str(path))


def expand_rule_sets(policy: Policy) -> tuple[Policy, dict[tuple[int, int], tuple], list[tuple[tuple, str]]]:
    """``(policy with each route's rules = its sets' rules (in use: order) + its own rules,
    origins, problems)``: ``origins[(route index, rule index)]`` is the data location the rule is
    written at (``("rule_sets", NAME, k)`` or ``("routes", ri, "rules", j)``); problems name an
    unknown set or a set used twice by one route. A rule set holds rules only: sets cannot use
    sets (the schema has no ``use:`` in a set)."""
    problems: list[tuple[tuple, str]] = []
    origins: dict[tuple[int, int], tuple] = {}
    routes = []
    for ri, route in enumerate(policy.routes):
        rules: list = []
        used: dict[str, int] = {}
        for u, name in enumerate(route.use):
            loc = ("routes", ri, "use", u)
            if name in used:
                problems.append((loc, f"rule set {name!r} is used twice (use[{used[name]}])"))
                continue
            used[name] = u
            if name not in policy.rule_sets:
                known = ", ".join(policy.rule_sets) or "none"
                problems.append((loc, f"unknown rule set {name!r}; declare it under rule_sets (known: {known})"))
                continue
            for k, rule in enumerate(policy.rule_sets[name]):
                origins[(ri, len(rules))] = ("rule_sets", name, k)
                rules.append(rule)
        if not rules:
            routes.append(route)
            continue
        for j, rule in enumerate(route.rules):
            origins[(ri, len(rules))] = ("routes", ri, "rules", j)
            rules.append(rule)
        routes.append(route.model_copy(update={"rules": rules}))
    if not any(r.use for r in policy.routes):
        return policy, origins, problems
    return policy.model_copy(update={"routes": routes}), origins, problems


def semantic_problems(policy: Policy, origins: dict | None = None, lines: dict | None = None) -> list[tuple[tuple, str]]:
    """Checks the schema cannot express. Returns ``[(data_location, message)]``.

    ``policy`` has its rule sets expanded (:func:`expand_rule_sets`; ``origins`` from there, so
    problems point at the line a rule is written on, and ``lines`` to name the other rule's
    line when a problem spans a rule set and a route)."""
    out: list[tuple[tuple, str]] = []
    origins = origins or {}
    names: set[str] = set()
    groups: dict[str, int] = {}
    for name, rules in policy.rule_sets.items():
        for k, rule in enumerate(rules):
            out += _unknown_key(policy, getattr(rule, "key", None), ("rule_sets", name, k, "key"))
    for ri, route in enumerate(policy.routes):
        base = ("routes", ri)

        def at(i: int, ri: int = ri) -> tuple:
            return origins.get((ri, i), ("routes", ri, "rules", i))

        def other(j: int, i: int, route=route) -> str:
            """How a problem of rule ``i`` names rule ``j``: ``rules[j]`` within a route's own
            rules, else the location and line of ``j`` (a rule set and a route meet)."""
            lj, li = at(j), at(i)
            if lj[0] == "routes" and li[0] == "routes":
                return f"rules[{lj[3]}]"
            line = nearest_line(lines, lj) if lines else None
            return _render_loc(lj) + (f", line {line}" if line else "") + (f", route {route.name!r}" if li[0] != "routes" else "")

        if route.name in names:
            out.append((base + ("name",), f"duplicate route name {route.name!r}"))
        names.add(route.name)
        group = route.consumer_group or f"dpp.{policy.name}.{route.name}"
        if group in groups:
            out.append((base + ("consumer_group",), f"consumer group {group!r} is already used by routes[{groups[group]}]"))
        groups[group] = ri
        if route.subject_keys is not None:
            out += _unknown_key(policy, route.subject_keys.key, base + ("subject_keys", "key"))
            if route.subject_keys.topic in (route.source, route.sink, route.dead_letter):
                out.append((base + ("subject_keys", "topic"), "the subject-key topic must differ from the route's topics"))
            if has_wildcards(parse_path(route.subject_keys.field)):
                out.append((base + ("subject_keys", "field"), "subject_keys.field names one field: no wildcards or {a,b}"))
        out += _unknown_key(policy, route.dead_letter_key, base + ("dead_letter_key",))
        for i, rule in enumerate(route.rules):
            if rule.header is not None:
                out.append((at(i) + ("header",), "header names go in the route's headers: rules"))
            elif rule.select is not None:
                out += _select_problems(route, rule, at(i))
            elif rule.field is None:
                out.append((at(i), "a value rule needs a field (or select: {tag: ...})"))
            elif route.format != "json" and has_wildcards(parse_path(rule.field)):
                out.append((at(i) + ("field",), f"wildcards and {{a,b}} in field paths need format: json, not "
                                                f"{route.format} (the sink schema is derived field by field)"))
        out += _part_problems(policy, route, base)
        if route.subject_keys is not None and route.format != "json":
            out.append((base + ("subject_keys",), "subject_keys needs format: json"))
        labels: dict[str, int] = {}
        for i, rule in enumerate(route.rules):
            if at(i)[0] == "routes":  # set rules: checked once, above
                out += _unknown_key(policy, getattr(rule, "key", None), at(i) + ("key",))
            if rule.label in labels:
                out.append((at(i) + ("name",),
                            f"rule name {rule.label!r} is used twice ({other(labels[rule.label], i)})"))
            labels[rule.label] = i
        if any(r.field is None for r in route.rules if r.select is None):
            continue
        field_rules = [(i, r, parse_path(r.field)) for i, r in enumerate(route.rules) if r.select is None]
        out += _overlap_problems(route, field_rules, at, other)
        if route.unlisted_fields == "drop" and not any(not isinstance(r, DropRule) for _, r, _ in field_rules):
            out.append((base + ("rules",), "unlisted_fields: drop with no keep/transform rule would drop every field"))
    deduped = list(dict.fromkeys(out))  # a rule set used by several routes: its problems once
    return deduped + case_problems(policy, policy.tests, ("tests",))


def _overlap_problems(route, field_rules: list, at: Callable[[int], tuple],
                      other: Callable[[int, int], str]) -> list[tuple[tuple, str]]:
    """One rule per value, decided at load. Paths without ``*``/``**`` are explicit (an
    alternation ``{a,b}.x`` stands for ``a.x`` and ``b.x``) and meet in a :class:`PathTrie`
    (linear in the rules): a field with two rules, a rule below a field another rule drops,
    redacts or rewrites (it would never apply), two rewrites of one value. A path with ``*`` or
    ``**`` is compared with every other path (:func:`overlap`): two rewrites that can select one
    value are refused; whether one node lies inside another then depends on the record, and is
    harmless (a rewrite of an object fails closed, a redact or drop covers what is inside)."""
    out: list[tuple[tuple, str]] = []
    seen: dict[tuple, int] = {}
    trie = PathTrie()
    wild, spelled = [], []
    for i, rule, segs in field_rules:
        if any(s is ANY_KEY or s is DEEP for s in segs):
            if segs in seen:
                out.append((at(i) + ("field",), f"field {rule.field!r} already has a rule ({other(seen[segs], i)})"))
            seen[segs] = i
            wild.append((i, rule, segs))
            continue
        for path in expand_choices(segs):
            # WILDCARD is one object: a[*] and a."*" (a key named *) stay distinct
            if path in seen:
                out.append((at(i) + ("field",), f"field {rule.field!r} already has a rule ({other(seen[path], i)})"))
            seen[path] = i
            trie.add(path, len(spelled))
            spelled.append((i, path))
    rules = route.rules
    found: set = set()

    def report(i: int, msg: str) -> None:
        if (i, msg) not in found:
            found.add((i, msg))
            late.append((i, msg))
    late: list[tuple[int, str]] = []  # reported in rule order
    # a rule below a dropped/redacted field would never apply
    for e, (i, b) in enumerate(spelled):
        rule = rules[i]
        ancestors, same = trie.related(b)
        for f in sorted(set(ancestors) | {f for f in same if f < e}):
            j, a = spelled[f]
            other_rule = rules[j]
            if j == i or other_rule.action == "keep":
                continue
            if len(a) < len(b):
                report(i, f"field {rule.field!r} lies inside {other_rule.field!r}, which {other(j, i)} "
                          f"already {other_rule.action}s")
            elif rule.action not in ("keep", "drop") and other_rule.action != "drop" and a != b:
                # a[*].x and a[0].x select the same node: two rewrites of one value would depend
                # on rule order (a drop is fine: drops always apply last and win)
                report(i, f"field {rule.field!r} overlaps {other_rule.field!r} ({other(j, i)}): "
                          "one value would get two rules")
    wild_ids = {w[0] for w in wild}
    # candidates by last segment (never ** : a path ends in a key or a selector): two paths
    # select one node only if their last segments meet; keep and drop rules never conflict
    by_last: dict[str, list] = {}
    other_last: list = []
    for j, other_rule, b in field_rules:
        if other_rule.action not in ("keep", "drop"):
            (by_last.setdefault(b[-1], []) if type(b[-1]) is str else other_last).append((j, other_rule, b))
    for i, rule, a in wild:
        if rule.action in ("keep", "drop"):
            continue
        last = a[-1]
        if type(last) is str or type(last) is KeyChoice:
            near = [c for k in ((last,) if type(last) is str else last) for c in by_last.get(k, ())] + other_last
        else:  # * matches every key; an array selector only other selectors
            near = [c for cs in by_last.values() for c in cs] + other_last if last is ANY_KEY else other_last
        for j, other_rule, b in sorted(near, key=lambda c: c[0]):
            if j == i or a == b or (j in wild_ids and j > i) or not overlap(a, b)[0]:
                continue
            report(max(i, j), f"field {rules[max(i, j)].field!r} and {rules[min(i, j)].field!r} "
                              f"({other(min(i, j), max(i, j))}) can select the same value: one value would get two rules")
    late.sort(key=lambda p: p[0])
    return out + [(at(i) + ("field",), msg) for i, msg in late]


def case_problems(policy: Policy, cases: list, base: tuple) -> list[tuple[tuple, str]]:
    """Checks of ``dpp test`` cases (:class:`~.models.PolicyTestCase`, in the policy's ``tests:``
    or a test file at data location ``base``) against ``policy``: a case names a route of the
    policy (or the policy has one route), and case names are unique. ``[(data_location, message)]``."""
    out: list[tuple[tuple, str]] = []
    routes = {r.name: r for r in policy.routes}
    names: dict[str, int] = {}
    for i, case in enumerate(cases):
        loc = base + (i,)
        if case.name in names:
            out.append((loc + ("name",), f"test name {case.name!r} is used twice ({_render_loc(base)}[{names[case.name]}])"))
        names[case.name] = i
        if case.route is None and len(routes) != 1:
            out.append((loc, f"the policy has {len(routes)} routes: name one in route: ({', '.join(routes)})"))
        elif case.route is not None and case.route not in routes:
            out.append((loc + ("route",), f"no route {case.route!r}; routes: {', '.join(routes)}"))
    return out


def _unknown_key(policy: Policy, name: str | None, loc: tuple) -> list[tuple[tuple, str]]:
    """The problem of a reference to a key the policy does not declare (none for ``None``)."""
    if name is None or name in policy.keys:
        return []
    return [(loc, f"unknown key {name!r}; declare it under keys")]


TAG_FORMATS = ("avro", "jsonschema")
TAG_ACTIONS = ("mask", "redact", "drop", "pseudonymize", "fpe", "tokenize")


def _select_problems(route, rule, loc: tuple) -> list[tuple[tuple, str]]:
    """Checks of a ``select: {tag: ...}`` value rule."""
    out = []
    if rule.field is not None:
        out.append((loc + ("field",), "a rule has a field or a select, not both"))
    if route.format not in TAG_FORMATS:
        out.append((loc + ("select",), f"select by tag reads the schema's confluent:tags: it needs format "
                                       f"avro or jsonschema, not {route.format}"))
    if rule.action not in TAG_ACTIONS:
        out.append((loc + ("action",), f"a select rule protects what it finds: action one of {', '.join(TAG_ACTIONS)}, "
                                       f"not {rule.action}"))
    return out


def _part_problems(policy: Policy, route, base: tuple) -> list[tuple[tuple, str]]:
    """Placement checks of ``key:`` and ``headers:`` rules (see :class:`~.models.KeySection`)."""
    out: list[tuple[tuple, str]] = []
    if route.key is not None:
        whole = route.key.format in ("string", "bytes")
        seen_fields: dict[str, int] = {}
        for i, rule in enumerate(route.key.rules):
            loc = base + ("key", "rules", i)
            if rule.select is not None:
                out.append((loc + ("select",), "select by tag is for value rules"))
            if rule.header is not None:
                out.append((loc + ("header",), "header names go in the route's headers: rules"))
            if whole and rule.field is not None:
                out.append((loc + ("field",), f"a {route.key.format} key is one value: its rule has no field"))
            if not whole and rule.field is None:
                out.append((loc, f"a {route.key.format} key rule needs a field"))
            if rule.field is not None:
                if route.key.format != "json" and not whole and has_wildcards(parse_path(rule.field)):
                    out.append((loc + ("field",), f"wildcards and {{a,b}} in key field paths need format: json, "
                                                  f"not {route.key.format}"))
                if rule.field in seen_fields:
                    out.append((loc + ("field",), f"field {rule.field!r} already has a rule (rules[{seen_fields[rule.field]}])"))
                seen_fields[rule.field] = i
            if route.key.format == "bytes" and rule.action == "fpe":
                out.append((loc + ("action",), "fpe needs text: a bytes key is opaque (use format: string, "
                                               "or pseudonymize/tokenize)"))
            if rule.action == "redact" and rule.value is None:
                out.append((loc + ("value",), "a key is redacted to a literal, not null (a null key changes "
                                              "partitioning and log compaction downstream)"))
            out += _unknown_key(policy, getattr(rule, "key", None), loc + ("key",))
        if whole and len(route.key.rules) > 1:
            out.append((base + ("key", "rules"), f"a {route.key.format} key takes at most one rule"))
    seen: dict[str, int] = {}
    names: dict[str, int] = {}
    for i, rule in enumerate(route.headers):
        loc = base + ("headers", i)
        if rule.select is not None:
            out.append((loc + ("select",), "select by tag is for value rules"))
        if rule.name is not None:
            if rule.name in names:
                out.append((loc + ("name",), f"rule name {rule.name!r} is used twice (headers[{names[rule.name]}])"))
            names[rule.name] = i
        if rule.header is None and rule.field is not None:
            out.append((loc + ("field",), "a header rule names a header (header: NAME or glob), not a field"))
            continue
        if rule.header is None:
            out.append((loc, "a header rule needs a header (name or glob)"))
        elif rule.header in seen:
            out.append((loc + ("header",), f"header {rule.header!r} already has a rule (headers[{seen[rule.header]}])"))
        else:
            seen[rule.header] = i
        if rule.field is not None:
            out.append((loc + ("field",), "a header value is one string: a header rule has no field"))
        out += _unknown_key(policy, getattr(rule, "key", None), loc + ("key",))
    return out


def policy_warnings(policy: Policy) -> list[tuple[tuple, str]]:
    """What ``dpp check`` warns about (the policy still loads): ``[(data_location, message)]``."""
    out = []
    used = {name for route in policy.routes for name in route.use}
    for name in policy.rule_sets:
        if name not in used:
            out.append((("rule_sets", name), f"rule set {name!r} is used by no route"))
    for ri, route in enumerate(policy.routes):
        protects = any(r.action not in ("keep",) for r in route.rules)
        if protects and route.key is None:
            out.append((("routes", ri), "route protects personal values but says nothing about record keys: "
                                        "keys pass unchanged (add key: with rules, or key: {format: string} "
                                        "with no rules to state that keys hold no personal data)"))
    return out


__all__ = ["LoadedPolicy", "expand_rule_sets", "load_policy", "load_policy_text", "load_yaml_model", "nearest_line", "policy_warnings", "case_problems",
           "semantic_problems"]
