"""``dpp test``: unit tests of a policy, written in YAML beside it or inside it.

Where cases come from (all of them run):

* the policy's own top-level ``tests:`` list;
* the test file ``FILE.tests.yaml`` beside ``FILE.yaml`` (found by name), or the one given with
  ``--tests``: a mapping with ``tests:`` (a list of cases) and optional ``keys:`` (key name →
  hex test key material).

A case (:class:`~proxy.policy.models.PolicyTestCase`) runs its ``input`` through the route's
reference path (:meth:`CompiledRoute.process_record`) and compares with ``output``, ``assert`` or
``outcome``. Keys are always test keys: every key the policy declares is replaced by the hex given
under the test file's ``keys:``, else by one derived from the key's name and version
(:func:`derived_test_key`), so production key sources (environment, files, directories) are never
read and results are the same on every machine. Nothing printed holds key material.

Bad test files raise :class:`PolicyError` with ``FILE:LINE: PATH: message`` problems, as policies do.
No Kafka here.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BeforeValidator, Field

from .errors import PolicyError, RecordError
from .policy.compiler import BLOCK, DEAD_LETTER, SINK, CompiledPolicy, CompiledRoute, _json_equal, compile_policy
from .policy.loader import LoadedPolicy, _render_loc, case_problems, load_policy, load_yaml_model, nearest_line
from .policy.models import EnvKey, PolicyTestCase, _Model
from .policy.paths import ANY_KEY, DEEP, WILDCARD, KeyChoice, parse_path

TESTS_SUFFIX = ".tests.yaml"

def _quoted_hex(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError('YAML read this key as a number: quote the hex digits ("00ab...")')
    return v


HexKey = Annotated[str, BeforeValidator(_quoted_hex), Field(pattern=r"^(?:[0-9a-fA-F]{2}){16,64}$", description="test key material, 32-128 hex digits")]


class TestFile(_Model):
    """A test file: ``tests`` (at least one case) and ``keys`` (key name → hex test key)."""

    __test__ = False  # not a pytest class
    keys: dict[str, HexKey] = Field(default_factory=dict)
    tests: list[PolicyTestCase] = Field(min_length=1)


@dataclass
class Case:
    """One case to run: the model, the file it is written in and its line there."""

    case: PolicyTestCase
    file: str
    line: int | None


@dataclass
class Suite:
    """A policy and its cases: ``loaded`` (the policy as written), ``cases``, ``keys`` (key name →
    test key bytes given in the test file; others are derived)."""

    loaded: LoadedPolicy
    cases: list[Case]
    keys: dict[str, bytes] = field(default_factory=dict)


@dataclass
class CaseResult:
    """Result of one case: ``name``, ``route``, ``passed``, ``failures`` (lines explaining each
    failure; test data only, never key material), ``seconds``, ``where`` (``FILE:LINE``)."""

    name: str
    route: str
    passed: bool
    failures: list[str]
    seconds: float
    where: str


def sidecar_path(policy_file: str | Path) -> Path:
    """``FILE.tests.yaml`` for ``FILE.yaml`` / ``FILE.yml`` (else ``FILE`` + ``.tests.yaml``)."""
    p = Path(policy_file)
    stem = p.name[: -len(p.suffix)] if p.suffix in (".yaml", ".yml") else p.name
    return p.with_name(stem + TESTS_SUFFIX)


def load_test_file(path: str | Path, loaded: LoadedPolicy) -> tuple[TestFile, dict]:
    """Read and validate a test file against ``loaded``: ``(TestFile, lines)``.

    Raises :class:`PolicyError` (``FILE:LINE: PATH: message``) for an unreadable file, bad YAML, a
    schema error, a case naming an unknown route, or a test key the policy does not declare."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError([(str(path), None, "", f"cannot read test file: {type(e).__name__}")]) from None
    tf, lines = load_yaml_model(text, str(path), TestFile, "a test file")
    problems = case_problems(loaded.policy, tf.tests, ("tests",))
    problems += [(("keys", k), f"key {k!r} is not declared by the policy") for k in tf.keys if k not in loaded.policy.keys]
    if problems:
        raise PolicyError([(str(path), nearest_line(lines, loc), _render_loc(loc), msg) for loc, msg in problems])
    return tf, lines


def policy_of_test_file(path: str | Path) -> Path:
    """The policy a sidecar test file belongs to: ``FILE.yaml`` (or ``FILE.yml`` when only that
    exists) for ``FILE.tests.yaml``; any other path is returned as it is."""
    p = Path(path)
    if not p.name.endswith(TESTS_SUFFIX):
        return p
    yaml_file = p.with_name(p.name[: -len(TESTS_SUFFIX)] + ".yaml")
    yml_file = yaml_file.with_suffix(".yml")
    return yml_file if not yaml_file.exists() and yml_file.exists() else yaml_file


def load_suite(policy_file: str | Path, tests_file: str | Path | None = None, required: bool = True) -> Suite:
    """The policy and every case: its ``tests:``, then those of ``tests_file`` (default: the
    sidecar :func:`sidecar_path`, when it exists). Raises :class:`PolicyError` for a bad policy,
    a bad test file, or when there is no case at all (unless ``required`` is false: then the
    suite has no cases)."""
    loaded = load_policy(policy_file)
    cases = [Case(c, loaded.file, loaded.line_of(("tests", i))) for i, c in enumerate(loaded.policy.tests)]
    keys: dict[str, bytes] = {}
    side = Path(tests_file) if tests_file is not None else sidecar_path(policy_file)
    if tests_file is not None or side.exists():
        tf, lines = load_test_file(side, loaded)
        cases += [Case(c, str(side), nearest_line(lines, ("tests", i))) for i, c in enumerate(tf.tests)]
        keys = {k: bytes.fromhex(v) for k, v in tf.keys.items()}
    if not cases and required:
        raise PolicyError([(str(policy_file), 1, "tests",
                            f"no test cases: add tests: to the policy or write {sidecar_path(policy_file).name}")])
    return Suite(loaded, cases, keys)


def derived_test_key(name: str, version: int) -> bytes:
    """The test key of key ``name`` version ``version`` when the test file gives none: 32 bytes,
    SHA-256 of a fixed label, the name and the version. Public by design: test keys protect
    test records only."""
    return hashlib.sha256(b"dpp test key\0" + name.encode() + b"\0" + str(version).encode()).digest()


def key_versions(spec) -> tuple[list[int], int]:
    """``(version numbers, current version)`` a key spec declares (``versions``, else the single
    version; a ``dir`` key, whose versions are files: its ``current``, default 1)."""
    numbers = sorted(getattr(spec, "versions", None) or {spec.current or 1: None})
    return numbers, spec.current or max(numbers)


def with_test_keys(loaded: LoadedPolicy, given: dict[str, bytes] | None = None) -> tuple[LoadedPolicy, dict[str, str]]:
    """``(policy, environ)``: ``loaded`` with every key spec replaced by environment-variable
    versions that ``environ`` (a private mapping, not ``os.environ``) holds as hex test keys.
    Each key keeps its version numbers (a ``dir`` key: its ``current`` version, default 1) and
    ``current``; the current version takes the ``given`` bytes of its name, others are derived."""
    env: dict[str, str] = {}
    specs = {}
    for n, (name, spec) in enumerate(sorted(loaded.policy.keys.items())):
        numbers, current = key_versions(spec)
        versions = {}
        for v in numbers:
            var = f"DPP_TEST_KEY_{n}_V{v}"
            material = given[name] if given and name in given and v == current else derived_test_key(name, v)
            env[var] = material.hex()
            versions[v] = var
        specs[name] = EnvKey(source="env", versions=versions, current=spec.current)
    policy = loaded.policy.model_copy(update={"keys": specs})
    return LoadedPolicy(policy=policy, file=loaded.file, sha256=loaded.sha256, lines=loaded.lines), env


def compile_for_tests(loaded: LoadedPolicy, given: dict[str, bytes] | None = None,
                      routes: list[str] | None = None) -> CompiledPolicy:
    """Compile ``loaded`` (the ``routes`` named, default all) with test keys (:func:`with_test_keys`).
    Raises :class:`PolicyError` as :func:`compile_policy` does (e.g. a schema-format route, which
    needs a registry)."""
    test_loaded, env = with_test_keys(loaded, given)
    return compile_policy(test_loaded, environ=env, routes=routes)


# --------------------------------------------------------------------------- running cases
def _encode_value(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    return orjson.dumps(value)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: object key order ignored, ``true`` is not ``1``."""
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return _json_equal(a, b)


def select(node: Any, segs: tuple, at: tuple = ()) -> list[tuple[tuple, Any]]:
    """``[(concrete path, value)]`` of every node ``segs`` (a parsed field path) selects in ``node``
    (``[*]`` expands to each index, ``*``/``**``/``{a,b}`` to each key); a missing key, an index out of range or a node of another
    shape selects nothing."""
    if not segs:
        return [(at, node)]
    seg, rest = segs[0], segs[1:]
    if seg is DEEP:  # this object and every object below it (proxy.policy.paths)
        if type(node) is not dict:
            return []
        return select(node, rest, at) + [hit for k, v in node.items() if type(v) is dict
                                         for hit in select(v, segs, at + (k,))]
    if seg is ANY_KEY or type(seg) is KeyChoice:
        if type(node) is not dict:
            return []
        keys = list(node) if seg is ANY_KEY else [k for k in seg if k in node]
        return [hit for k in keys for hit in select(node[k], rest, at + (k,))]
    if seg is WILDCARD:
        if type(node) is not list:
            return []
        return [hit for i, v in enumerate(node) for hit in select(v, rest, at + (i,))]
    if isinstance(seg, int):
        if type(node) is not list or not -len(node) <= seg < len(node):
            return []
        return select(node[seg], rest, at + (seg if seg >= 0 else len(node) + seg,))
    if type(node) is not dict or seg not in node:
        return []
    return select(node[seg], rest, at + (seg,))


def _show(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _where(path: str, at: tuple) -> str:
    return _render_loc(at) if at else path


def _outcome_text(out) -> str:
    if out.kind == SINK:
        return "reached the sink"
    if out.kind == BLOCK:
        return f"blocked {out.reason}"
    return f"dead-lettered {out.reason}" + (f" (stage={out.stage}" + (f" rule={out.rule}" if out.rule else "") + ")")


def _part_hits(path: str, out) -> list[tuple[tuple, Any]]:
    """Selections of ``@key`` / ``@headers.NAME`` in an outcome (UTF-8 text, or hex when not text)."""
    def text(b):
        if b is None:
            return None
        try:
            return b.decode("utf-8") if isinstance(b, bytes) else b
        except UnicodeDecodeError:
            return b.hex()
    if path == "@key":
        return [] if out.key is None else [((), text(out.key))]
    name = path[len("@headers."):]
    return [((), text(v)) for n, v in (out.headers or []) if n == name]


def check_assert(a, route: CompiledRoute, out, actual: Any, given: Any) -> list[str]:
    """Failures of assertion ``a`` (:class:`~proxy.policy.models.CaseAssert`) on outcome ``out``
    (``actual``: its parsed value; ``given``: the input value); ``[]`` when it holds."""
    part = a.path.startswith("@")
    hits = _part_hits(a.path, out) if part else select(actual, parse_path(a.path))
    check = a.check
    if check == "absent":
        return [f"{a.path}: expected absent, got {_show(hits[0][1])}"] if hits else []
    if not hits:
        return [f"{a.path}: missing (expected {check})"]
    fails = []
    revealed = None
    if check == "decrypts_to":
        if part:
            return [f"{a.path}: decrypts_to is for value fields"]
        try:
            revealed, _ = route.reveal(copy.deepcopy(actual), None, None, out.subject or None)
        except RecordError as e:
            return [f"{a.path}: reveal failed: {e.reason.value}"]
    for at, v in hits:
        where = _where(a.path, at)
        if check == "equals" and not _same(v, a.equals):
            fails.append(f"{where}: expected {_show(a.equals)}, got {_show(v)}")
        elif check == "matches" and (not isinstance(v, str) or re.fullmatch(a.matches, v) is None):
            fails.append(f"{where}: expected to match /{a.matches}/, got {_show(v)}")
        elif check == "length":
            n = len(v) if isinstance(v, (str, list, dict)) else None
            if n != a.length:
                fails.append(f"{where}: expected length {a.length}, got " + (f"{n}" if n is not None else f"a {type(v).__name__}"))
        elif check == "not_equals_input":
            before = select(given, at)
            if not before:
                fails.append(f"{where}: not in the input, nothing to compare with")
            elif _same(v, before[0][1]):
                fails.append(f"{where}: expected to differ from the input, got it unchanged {_show(v)}")
        elif check == "decrypts_to":
            r = select(revealed, at)
            if _same(v, a.decrypts_to):
                fails.append(f"{where}: expected ciphertext that decrypts to {_show(a.decrypts_to)}, got it in clear")
            elif not r or not _same(r[0][1], a.decrypts_to):
                fails.append(f"{where}: expected to decrypt to {_show(a.decrypts_to)}, "
                             f"got {_show(r[0][1]) if r else 'nothing'}")
    return fails


def _input_part(path: str, inp) -> Any:
    """The input's ``@key`` / ``@headers.NAME`` text (``inp``: :class:`~proxy.policy.models.CaseInput`)."""
    if path == "@key":
        return inp.key
    return inp.headers.get(path[len("@headers."):])


def _diff(expected: Any, actual: Any) -> list[str]:
    exp = json.dumps(expected, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
    act = json.dumps(actual, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
    lines = list(difflib.unified_diff(exp, act, "expected", "actual", n=1, lineterm=""))
    return ["output differs (- expected, + actual):"] + lines[2:]


def _case_consent(route: CompiledRoute, case: PolicyTestCase) -> None:
    """A fresh consent table for the case: its ``consent:`` states for the input's subject (the
    value at the route's ``consent.subject_field``, when there is one string or integer)."""
    from .policy.consent import STATES, ConsentTable
    table = route.consent_table = ConsentTable()
    found: list = []
    if case.consent is not None and type(case.input.value) is dict:
        try:
            route._consent_visit(case.input.value, lambda c, k: found.append(c[k]))
        except Exception:  # noqa: BLE001 - a wrong shape: the route dead-letters the record itself
            found = []
    if len(found) == 1 and type(found[0]) in (str, int):
        table.apply(str(found[0]), {p: STATES[s] for p, s in case.consent.items()})


def run_case(route: CompiledRoute, case: PolicyTestCase) -> list[str]:
    """Run one case through ``route``'s reference path; its failures (``[]`` = pass)."""
    inp = case.input
    headers = [(k, v.encode("utf-8")) for k, v in inp.headers.items()]
    if route.consent is not None:
        _case_consent(route, case)
    out = route.process_record(_encode_value(inp.value), None if inp.key is None else inp.key.encode("utf-8"),
                               headers or None)
    if case.outcome is not None:
        want = ("blocked", case.outcome.blocked) if case.outcome.blocked else ("dead_letter", case.outcome.dead_letter)
        kind = BLOCK if want[0] == "blocked" else DEAD_LETTER
        if out.kind != kind or out.reason != want[1]:
            return [f"expected {'blocked' if kind == BLOCK else 'dead-lettered'} {want[1]}, got {_outcome_text(out)}"]
        return []
    if out.kind != SINK:
        return [f"expected the record at the sink, got {_outcome_text(out)}"]
    try:
        actual = None if out.value is None else orjson.loads(out.value)
    except orjson.JSONDecodeError:
        return ["the sink value is not JSON (schema formats are not run by dpp test)"]
    fails = []
    if "output" in case.model_fields_set and not _same(actual, case.output):
        fails += _diff(case.output, actual)
    for a in case.assert_ or ():
        if a.path.startswith("@") and a.check == "not_equals_input":
            hits, src = _part_hits(a.path, out), _input_part(a.path, inp)
            if not hits:
                fails.append(f"{a.path}: missing (expected not_equals_input)")
            elif src is not None and _same(hits[0][1], src):
                fails.append(f"{a.path}: expected to differ from the input, got it unchanged {_show(src)}")
            continue
        fails += check_assert(a, route, out, actual, inp.value)
    return fails


def run_suite(suite: Suite) -> list[CaseResult]:
    """Run every case of ``suite`` with test keys. Raises :class:`PolicyError` when a route the
    cases use is not a json route (schema formats need a registry and framed input) or cannot be
    compiled."""
    pol = suite.loaded.policy
    names = sorted({c.case.route or pol.routes[0].name for c in suite.cases})
    schema_routes = [(i, r) for i, r in enumerate(pol.routes) if r.name in names and r.format != "json"]
    if schema_routes:
        raise PolicyError([(suite.loaded.file, suite.loaded.line_of(("routes", i, "format")), f"routes[{i}].format",
                            f"dpp test runs json routes; route {r.name} reads {r.format} (its cases cannot run)")
                           for i, r in schema_routes])
    compiled = compile_for_tests(suite.loaded, suite.keys, names)
    results = []
    for c in suite.cases:
        route = compiled.route(c.case.route or pol.routes[0].name)
        t0 = time.perf_counter()
        fails = run_case(route, c.case)
        results.append(CaseResult(c.case.name, route.name, not fails, fails, time.perf_counter() - t0,
                                  f"{c.file}:{c.line}" if c.line else c.file))
    return results


def format_result(r: CaseResult) -> list[str]:
    """Runner lines of one result: ``PASS name`` or ``FAIL name (FILE:LINE)`` and indented failures."""
    if r.passed:
        return [f"PASS {r.name}"]
    return [f"FAIL {r.name} ({r.where})"] + ["    " + line for line in r.failures]


def summary_line(results: list[CaseResult]) -> str:
    """``N passed, M failed`` (no timing: the output of a run is reproducible; JUnit has the times)."""
    failed = sum(not r.passed for r in results)
    return f"{len(results) - failed} passed, {failed} failed"


def junit_xml(suites: list[tuple[str, list[CaseResult]]], errors: list[tuple[str, str]] = ()) -> str:
    """JUnit XML (one ``<testsuite>`` per policy file, one ``<testcase>`` per case, ``<failure>``
    with the failure lines) for CI test reports; each of ``errors`` (file, problem lines: a policy
    or test file that did not load) is a suite with one ``<testcase>`` holding an ``<error>``, so a
    CI report never shows an invalid file as green."""
    root = ET.Element("testsuites", name="dpp test")
    total = fails = 0
    for name, problem in errors:
        ts = ET.SubElement(root, "testsuite", name=name, tests="1", failures="0", errors="1", time="0")
        tc = ET.SubElement(ts, "testcase", classname=name, name="load", time="0")
        ee = ET.SubElement(tc, "error", message=problem.splitlines()[0][:200] if problem else "not loaded")
        ee.text = problem
        total += 1
    for name, results in suites:
        f = sum(not r.passed for r in results)
        total, fails = total + len(results), fails + f
        ts = ET.SubElement(root, "testsuite", name=name, tests=str(len(results)), failures=str(f), errors="0",
                           time=f"{sum(r.seconds for r in results):.6f}")
        for r in results:
            tc = ET.SubElement(ts, "testcase", classname=f"{name}.{r.route}", name=r.name, time=f"{r.seconds:.6f}")
            if not r.passed:
                fe = ET.SubElement(tc, "failure", message=r.failures[0][:200])
                fe.text = "\n".join(r.failures)
    root.set("tests", str(total))
    root.set("failures", str(fails))
    root.set("errors", str(len(errors)))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


__all__ = ["Case", "CaseResult", "Suite", "TestFile", "check_assert", "compile_for_tests", "derived_test_key",
           "format_result", "junit_xml", "key_versions", "load_suite", "load_test_file", "policy_of_test_file", "run_case", "run_suite", "select",
           "sidecar_path", "summary_line", "with_test_keys"]
