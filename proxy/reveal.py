"""Authorized re-identification (``dpp reveal``) with an audit trail.

FPE and token fields are reversible with the key (and the key version recorded in the record's
``dpp-key-versions`` header); HMAC pseudonyms, masks, redactions and drops are one-way and
cannot be revealed. Every attempt writes one audit record, before the revealed data is output:

``{"ts", "actor", "reason", "policy", "route", "record": {"topic","partition","offset"} | {"line": N},
"fields": [rule labels], "result": "revealed" | "failed", "error": reason code}``

An audit record never holds a value (neither protected nor revealed).
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Mapping

import orjson

from .errors import RecordError
from .formats.json import dumps_record, loads_record
from .policy.compiler import CompiledRoute


def parse_key_versions(header: bytes | str | None, strict: bool = False) -> dict[str, int]:
    """Parse a ``dpp-key-versions`` header (``fpe=2,pseudonym=1``) into ``{name: version}``.

    Spaces around names and numbers are allowed. Malformed items raise ``ValueError`` when
    ``strict`` (user input), else they are ignored (the current version is then used)."""
    if not header:
        return {}
    text = header.decode("ascii", "replace") if isinstance(header, bytes) else header
    out = {}
    for item in text.split(","):
        name, _, v = (x.strip() for x in item.partition("="))
        if name and v.isdigit() and int(v) >= 1:
            out[name] = int(v)
        elif strict:
            raise ValueError(f"expected NAME=VERSION items like fpe=2, got {item.strip()!r}")
    return out


def one_way_rules(route: CompiledRoute) -> list[str]:
    """Labels of the route's rules that cannot be reversed (pseudonymize, mask, redact, drop)."""
    return [label for label, t, a in zip(route.rule_labels, route.transforms, route.rule_actions)
            if not t.reversible and a != "keep"]


class Revealer:
    """Reveals records of one route and writes the audit trail through ``audit(doc_bytes)``."""

    def __init__(self, route: CompiledRoute, policy: str, actor: str, reason: str,
                 audit: Callable[[bytes], None], fields: list[str] | None = None):
        if not reason.strip():
            raise ValueError("a reason is required for re-identification")
        reversible = [l for l, t in zip(route.rule_labels, route.transforms) if t.reversible]
        if fields:
            bad = [f for f in fields if f not in route.rule_labels]
            if bad:
                raise ValueError(f"no rule named {bad[0]!r} in route {route.name!r}")
            one_way = [f for f in fields if f not in reversible]
            if one_way:
                raise ValueError(f"rule {one_way[0]!r} is one-way (HMAC pseudonym, mask, redact or drop): "
                                 "it cannot be revealed")
        self.route, self.policy, self.actor, self.reason = route, policy, actor, reason
        self.audit = audit
        self.fields = fields or reversible

    def reveal(self, value: bytes, where: Mapping[str, Any], key_versions: Mapping[str, int] | None = None,
               subject_ref: str | None = None) -> bytes:
        """Reveal one protected JSON record; returns the revealed JSON bytes.

        Raises :class:`proxy.errors.RecordError` (after auditing the failure) when a field cannot
        be revealed (wrong key version, forgotten subject, tampered token) or the record is not JSON.
        """
        doc = {"ts": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
               "actor": self.actor, "reason": self.reason, "policy": self.policy, "route": self.route.name,
               "record": dict(where), "fields": list(self.fields)}
        try:
            obj = loads_record(value)
            if type(obj) is not dict:
                raise ValueError("not an object")
            obj, done = self.route.reveal(obj, self.fields, key_versions, subject_ref)
        except RecordError as e:
            self.audit(orjson.dumps({**doc, "result": "failed", "error": e.reason.value, "rule": e.rule}))
            raise
        except (orjson.JSONDecodeError, ValueError):
            self.audit(orjson.dumps({**doc, "result": "failed", "error": "invalid-json"}))
            raise
        self.audit(orjson.dumps({**doc, "fields": done, "result": "revealed"}))
        return dumps_record(obj)
