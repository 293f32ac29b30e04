"""Published pseudonym test vectors (tests/data/pseudonym_vectors.json, the table in
docs/pseudonymization.md) and binding/domain separation of pseudonymize, fpe and tokenize.

* Every vector is recomputed here with Python's ``hmac`` from the message format documented in
  docs/pseudonymization.md (not by calling dpp), and the canonical forms of the ``email`` and
  ``string`` kinds are recomputed with ``unicodedata``; then dpp's transform must produce the same.
* Rows of one canonical group give one pseudonym (``Jose.Doe@Example.com`` = ``jose.doe@example.com``,
  NFC = NFD ``josé@example.com``, three spellings of one Chinese mobile number).
* The same value in two fields gives different outputs unless the rules share a ``domain``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import unicodedata
from pathlib import Path

import orjson
import pytest

from proxy.crypto.keys import SecretKey
from proxy.policy.compiler import SINK, compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.models import PseudonymizeRule
from proxy.transforms import BuildContext, build_transform
from proxy.transforms.pseudonymize import canonical

ROOT = Path(__file__).resolve().parents[2]
DATA = json.loads((ROOT / "tests" / "data" / "pseudonym_vectors.json").read_text(encoding="utf-8"))
DOC = (ROOT / "docs" / "pseudonymization.md").read_text(encoding="utf-8")
VECTORS = DATA["vectors"]
KEY = bytes.fromhex(DATA["key_hex"])


def documented_hmac(binding: str, canon: str, key: bytes = KEY) -> bytes:
    """HMAC-SHA256(key, "dpp-pseudonym-v1" 0x00 binding 0x00 canonical), as docs/pseudonymization.md says."""
    msg = b"dpp-pseudonym-v1" + b"\x00" + binding.encode("utf-8") + b"\x00" + canon.encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).digest()


def transform_for(v: dict):
    """dpp's pseudonymize transform configured like vector ``v`` (hex, full length, no prefix)."""
    kind, _, rest = v["binding"].partition(":")
    opts = {"domain": rest, "field": "any.field"} if kind == "domain" else {"field": rest.split(":", 1)[1]}
    policy = DATA["policy"] if kind == "domain" else rest.split(":", 1)[0]
    ctx = BuildContext(policy_name=policy, route_name="r", keys={"p": SecretKey("p", KEY)})
    rule = PseudonymizeRule(action="pseudonymize", key="p", normalize=v["normalize"],
                            default_region=v["default_region"], **opts)
    return build_transform(rule, ctx)


# ----------------------------------------------------------------------------- the vector file
def test_published_key_and_required_cases_present():
    assert KEY == bytes(range(32))
    inputs = {(v["normalize"], v["input"]) for v in VECTORS}
    for needed in [("email", "Jose.Doe@Example.com"), ("email", "jose.doe@example.com"),
                   ("email", " JOSE.DOE@example.com "), ("email", "jos\u00e9@example.com"),
                   ("email", "jose\u0301@example.com"), ("phone", "+86 139 0000 1111"), ("phone", "13900001111"),
                   ("phone", "0086 139-0000-1111"), ("string", "Zo\u00eb"), ("string", "Zoe\u0308")]:
        assert needed in inputs, needed
    assert any(v["normalize"] == "phone" and v["default_region"] == "US" for v in VECTORS)
    assert any(v["binding"].startswith("domain:") for v in VECTORS)
    # the NFD inputs really are NFD (the file was not normalized by an editor)
    assert ("email", unicodedata.normalize("NFD", "jos\u00e9@example.com")) in inputs


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_matches_documented_hmac(v):
    assert documented_hmac(v["binding"], v["canonical"]).hex() == v["pseudonym_hex"]


@pytest.mark.parametrize("v", [v for v in VECTORS if v["normalize"] in ("email", "string")], ids=lambda v: v["id"])
def test_canonical_form_recomputed_independently(v):
    text = unicodedata.normalize("NFC", v["input"])
    if v["normalize"] == "email":
        text = text.strip().lower()
    assert text == v["canonical"]


@pytest.mark.parametrize("v", [v for v in VECTORS if v["normalize"] == "phone"], ids=lambda v: v["id"])
def test_phone_canonical_is_e164(v):
    assert re.fullmatch(r"\+[1-9]\d{6,14}", v["canonical"])
    assert v["canonical"][1:].endswith("".join(c for c in v["input"] if c.isdigit())[-10:])


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_dpp_reproduces_vector(v):
    assert canonical(v["input"], v["normalize"], v["default_region"]) == v["canonical"]
    assert transform_for(v).apply(v["input"]) == v["pseudonym_hex"]


@pytest.mark.parametrize("e", DATA["encodings"], ids=lambda e: f"{e['vector']}-{e['encoding']}-{e['length']}")
def test_encodings(e):
    v = next(x for x in VECTORS if x["id"] == e["vector"])
    d = documented_hmac(v["binding"], v["canonical"])
    text = {"hex": d.hex(), "base32": base64.b32encode(d).decode().rstrip("=").lower(),
            "base64url": base64.urlsafe_b64encode(d).decode().rstrip("=")}[e["encoding"]]
    assert e["output"] == e["prefix"] + (text[:e["length"]] if e["length"] else text)
    kind, _, rest = v["binding"].partition(":")
    opts = {"domain": rest, "field": "x"} if kind == "domain" else {"field": rest.split(":", 1)[1]}
    rule = PseudonymizeRule(action="pseudonymize", key="p", normalize=v["normalize"], default_region=v["default_region"],
                            encoding=e["encoding"], length=e["length"], prefix=e["prefix"], **opts)
    ctx = BuildContext(policy_name=DATA["policy"], route_name="r", keys={"p": SecretKey("p", KEY)})
    assert build_transform(rule, ctx).apply(v["input"]) == e["output"]


def _groups() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for v in VECTORS:
        out.setdefault(v["group"], []).append(v)
    return out


def test_equal_canonical_groups_give_one_pseudonym_and_groups_differ():
    groups = _groups()
    assert len(groups["email-jose-doe"]) == 3 and len(groups["email-jose-accent"]) == 3
    assert len(groups["phone-cn-13900001111"]) == 3
    per_group = {}
    for name, rows in groups.items():
        outs = {transform_for(v).apply(v["input"]) for v in rows}
        assert len(outs) == 1, f"group {name}: {len(outs)} different pseudonyms"
        assert len({v["input"] for v in rows}) == len(rows)
        per_group[name] = outs.pop()
    assert len(set(per_group.values())) == len(per_group), "two groups share a pseudonym"


def test_same_address_in_another_field_or_domain_differs():
    by_id = {v["id"]: v for v in VECTORS}
    field, other, dom = by_id["email-lower"], by_id["email-other-field"], by_id["email-domain"]
    assert field["canonical"] == other["canonical"] == dom["canonical"]
    assert len({field["pseudonym_hex"], other["pseudonym_hex"], dom["pseudonym_hex"]}) == 3


# ----------------------------------------------------------------------------- the docs table
def _doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("`") and cells[0] != "`id`":
            rows[cells[0].strip("`")] = cells
    return rows


def test_docs_table_lists_every_vector_exactly():
    rows = _doc_rows()
    assert set(rows) == {v["id"] for v in VECTORS}
    for v in VECTORS:
        ident, normalize, region, binding, inp, canon, digest = rows[v["id"]]
        assert normalize == v["normalize"] and region == v["default_region"]
        assert binding.strip("`") == v["binding"]
        assert json.loads(inp.strip("`")) == v["input"]
        assert json.loads(canon.strip("`")) == v["canonical"]
        assert digest.strip("`") == v["pseudonym_hex"]


def test_docs_encoding_table_matches():
    found = []
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[0] != "`vector`":
            found.append(cells)
    assert len(found) == len(DATA["encodings"])
    for cells, e in zip(found, DATA["encodings"]):
        assert cells[0].strip("`") == e["vector"] and cells[1] == e["encoding"]
        assert cells[2] == (str(e["length"]) if e["length"] else "–")
        assert cells[3] == (f"`{e['prefix']}`" if e["prefix"] else "none")
        assert cells[4].strip("`") == e["output"]


def test_docs_state_the_message_format_and_key():
    assert '"dpp-pseudonym-v1"  0x00  binding  0x00  canonical(value)' in DOC
    assert DATA["key_hex"] in DOC
    assert "field:<policy name>:<field path>" in DOC and "domain:<name>" in DOC


# ----------------------------------------------------------------------------- fields and domains
SEP_KEYS = {"P": "11" * 32, "F": "22" * 32, "T": "33" * 32, "D": "44" * 32}
ACTION_OPTS = {
    "pseudonymize": "key: p",
    "fpe": "key: f, alphabet: digits",
    "tokenize": "key: t",
}
VALUE = {"pseudonymize": "jose.doe@example.com", "fpe": "6222020200112233445", "tokenize": "张三"}


def _policy(action: str, name: str = "sep") -> str:
    o = ACTION_OPTS[action]
    return f"""
version: 1
name: {name}
keys:
  p: {{source: env, name: P}}
  f: {{source: env, name: F}}
  t: {{source: env, name: T}}
  dl: {{source: env, name: D}}
routes:
  - name: r
    source: s
    sink: k
    dead_letter: d
    dead_letter_key: dl
    rules:
      - {{field: a, action: {action}, {o}}}
      - {{field: b, action: {action}, {o}}}
      - {{field: c, action: {action}, {o}, domain: customer}}
      - {{field: "orders[*].customer", action: {action}, {o}, domain: customer}}
      - {{field: e, action: {action}, {o}, domain: supplier}}
"""


def _protect(action: str, policy_name: str = "sep") -> dict:
    route = compile_policy(load_policy_text(_policy(action, policy_name)), SEP_KEYS).route()
    v = VALUE[action]
    out = route.process(orjson.dumps({"a": v, "b": v, "c": v, "orders": [{"customer": v}], "e": v}))
    assert out.kind == SINK, out
    return orjson.loads(out.value)


@pytest.mark.parametrize("action", sorted(ACTION_OPTS))
def test_same_value_in_two_fields_differs_unless_shared_domain(action):
    rec = _protect(action)
    a, b, c, oc, e = rec["a"], rec["b"], rec["c"], rec["orders"][0]["customer"], rec["e"]
    v = VALUE[action]
    assert v not in (a, b, c, oc, e)
    assert a != b, "unrelated fields link"
    assert c == oc, "a shared domain must link"
    assert len({a, b, c, e}) == 4, "field, field, domain customer and domain supplier must all differ"


@pytest.mark.parametrize("action", sorted(ACTION_OPTS))
def test_shared_domain_links_across_policies_field_binding_does_not(action):
    one, two = _protect(action, "policy-one"), _protect(action, "policy-two")
    assert one["c"] == two["c"]            # domain: independent of the policy
    assert one["a"] != two["a"]            # field binding includes the policy name
