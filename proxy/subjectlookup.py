"""``dpp subject``: the pseudonyms and tokens a data subject's identifiers get, per route and rule.

For an access or erasure request (PIPL Art. 45, 47; GDPR Art. 15, 17): downstream stores hold
the protected values, so a team looks up the subject's rows there by these values and deletes
them. Only deterministic rules have a value to look for: ``pseudonymize``, ``fpe``, ``tokenize``
and ``detect`` with ``replace: pseudonymize | fpe``; each is computed with the route's own
compiled transform (the policy's real keys, current versions), so it is the value the route
writes for a record holding that input. On a crypto-shredding route (``subject_keys``) the
``fpe``/``tokenize`` values depend on the subject's own key: they are listed as ``subject-key``
without a value (``dpp forget`` makes them unreadable).

:func:`lookup` returns ``[{"route", "rule", "field", "action", "input", "value" | "note"}]``;
``input`` names the value used (``subject`` for SUBJECT_ID, else the ``--field`` name). The
inputs themselves are never in the result, the audit record or a log.
"""
from __future__ import annotations

from typing import Mapping

from .errors import TransformError
from .policy.compiler import CompiledPolicy, CompiledRoute

DETERMINISTIC = ("pseudonymize", "fpe", "tokenize")
"""Actions whose output is the same for the same input (under one key version)."""


def deterministic(rule) -> bool:
    """Whether ``rule`` gives one input always the same output (see module doc)."""
    return rule.action in DETERMINISTIC or (rule.action == "detect" and getattr(rule, "replace", None)
                                            in ("pseudonymize", "fpe"))


def subject_field(route: CompiledRoute, model_route) -> str | None:
    """The field of ``route`` that holds the subject id: ``subject_keys.field``, else the
    ``consent.subject_field`` when the route declares one, else ``None``."""
    sk = getattr(model_route, "subject_keys", None)
    if sk is not None:
        return sk.field
    consent = getattr(model_route, "consent", None)
    return getattr(consent, "subject_field", None)


def lookup(cp: CompiledPolicy, subject_id: str, values: Mapping[str, str] | None = None,
           field: str | None = None, routes: list[str] | None = None) -> list[dict]:
    """The deterministic outputs for ``subject_id`` (in the route's subject field, or ``field``)
    and ``values`` (field path or rule name → the subject's value), per route and rule."""
    values = dict(values or {})
    models = {r.name: r for r in cp.loaded.policy.routes}
    out = []
    for route in cp.routes:
        if routes and route.name not in routes:
            continue
        inputs = dict(values)
        sf = field or subject_field(route, models.get(route.name))
        if sf:
            inputs.setdefault(sf, subject_id)
        for rule, label, t in zip(route.rules, route.rule_labels, route.transforms):
            name = rule.field if rule.field in inputs else label if label in inputs else None
            if name is None or not deterministic(rule):
                continue
            row = {"route": route.name, "rule": label, "field": rule.field, "action": rule.action,
                   "input": "subject" if name == sf and name not in values else name}
            if route.subject_mode and t.reversible:
                row["note"] = "subject-key"
            else:
                try:
                    row["value"] = t.apply(inputs[name])
                except TransformError as e:
                    row["note"] = e.reason.value
            out.append(row)
    return out


def format_text(rows: list[dict]) -> str:
    """One line per row: ``ROUTE  RULE (ACTION, from INPUT): VALUE``."""
    if not rows:
        return "no deterministic rule of the selected routes applies to the given identifiers"
    lines = []
    for r in rows:
        shown = r["value"] if "value" in r else {
            "subject-key": "(per-subject key: erased by dpp forget, not computable here)"}.get(r["note"], f"({r['note']})")
        lines.append(f"{r['route']}  {r['rule']} ({r['action']}, from {r['input']}): {shown}")
    return "\n".join(lines)
