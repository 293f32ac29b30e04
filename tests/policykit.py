"""Small policies for the unit tests: one route (``in.t`` → ``out.t``, dead letters to ``dlq.t``)
with the rules and block conditions given as YAML flow mappings, keys ``k`` (env ``K``) and ``dlq``
(env ``DLQ``). ``tests/conftest.py`` puts this directory on ``sys.path``, so tests ``import policykit``."""
from __future__ import annotations

from proxy.policy.compiler import CompiledRoute, compile_policy
from proxy.policy.loader import load_policy_text

KEYS = {"K": "11" * 32, "DLQ": "22" * 32}
"""Environment holding the two keys every policy of :func:`policy_text` names (32-byte AES keys, hex)."""


def policy_text(rules: list[str], *, block: list[str] = (), unlisted: str = "keep", name: str = "unit",
                keys: str = "", extra_routes: str = "", route: str = "") -> str:
    """Policy YAML: ``rules``/``block`` are flow mappings (``"{field: a, action: mask}"``),
    ``keys`` extra lines under ``keys:`` (indented two spaces), ``extra_routes`` more route items,
    ``route`` extra lines of the route (indented four spaces: ``"    format: avro\n"``)."""
    blk = ("    block:\n" + "".join(f"      - {b}\n" for b in block)) if block else ""
    return f"""version: 1
name: {name}
keys:
  k: {{source: env, name: K}}
  dlq: {{source: env, name: DLQ}}
{keys}routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: dlq
    unlisted_fields: {unlisted}
{route}{blk}    rules:
""" + "".join(f"      - {r}\n" for r in rules) + extra_routes


def compiled_route(rules: list[str], *, file: str = "<policy>", environ: dict | None = None, schema_source=None,
                   **kw) -> CompiledRoute:
    """:func:`policy_text` loaded (as ``file``) and compiled with :data:`KEYS` (and a schema
    registry ``schema_source`` for schema formats); its route ``r``."""
    return compile_policy(load_policy_text(policy_text(rules, **kw), file), environ=environ or KEYS,
                          schema_source=schema_source).route()


def load_error_lines(text: str, file: str = "<policy>") -> list[str]:
    """The ``FILE:LINE: PATH: message`` lines of loading policy YAML ``text`` (as ``file``);
    ``AssertionError`` when it loads."""
    from proxy.errors import PolicyError
    try:
        load_policy_text(text, file)
    except PolicyError as e:
        return str(e).splitlines()
    raise AssertionError(f"{file} loaded, but a problem was expected")


def routes_on_every_path(text: str, monkeypatch, file: str = "<policy>", prepare=None) -> list:
    """The route of policy ``text`` compiled for the reference path (``DPP_NATIVE=0``), then for the
    C accelerator when this build has it; ``prepare(route)`` sets each one up (a clock, a table)."""
    from proxy.policy.compiler import compile_policy
    out = []
    for native in ("0", "1"):
        monkeypatch.setenv("DPP_NATIVE", native)
        r = compile_policy(load_policy_text(text, file), environ=KEYS).route()
        if prepare is not None:
            prepare(r)
        if native == "0" or r.record_path.startswith("native"):  # native or native-json
            out.append(r)
    return out


def route_counters(route) -> tuple:
    """The route's counters since the last drain: consumed, produced, blocked, dead-lettered, transforms, unmatched."""
    s = route.stats.drain()
    return s.consumed, s.produced, s.blocked, s.dead_lettered, s.transforms, s.unmatched


def same_on_every_path(routes: list, values: list) -> list:
    """Run ``values`` through the first route's reference path, then every route's batch path:
    same outcomes and counters on each (``AssertionError`` naming the path otherwise); the outcomes."""
    ref = routes[0]
    want = [ref.process(v) for v in values]
    want_counts = route_counters(ref)
    for r in routes:
        assert r.process_batch(values) == want, r.record_path
        assert route_counters(r) == want_counts, r.record_path
    return want
