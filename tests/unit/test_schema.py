"""policies/policy.schema.json is the JSON Schema generated from the policy models, and every shipped
policy validates against it with an independent validator (jsonschema)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from proxy.policy.models import policy_json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "policies" / "policy.schema.json"
DATA = ROOT / "tests" / "data" / "policies"
SHIPPED = sorted(p for ext in ("*.yaml", "*.yml") for p in (ROOT / "policies").rglob(ext)
                 if not p.name.endswith(".tests.yaml"))  # dpp test files (tests/unit/test_policytest.py)
REGENERATE = "policies/policy.schema.json is stale: regenerate it with `dpp schema > policies/policy.schema.json`"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_schema_file_matches_the_models():
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == policy_json_schema(), REGENERATE


def test_schema_is_draft_2020_12():
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"version", "name", "routes"}


@pytest.mark.parametrize("path", SHIPPED + sorted(DATA.glob("valid-*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_valid_policies_validate(validator, path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]


# Broken files whose problem the schema can express, with where the validator must point.
SCHEMA_BROKEN = {
    "unknown-key.yaml": [["routes", 0, "rules", 1]],
    "unknown-action.yaml": [["routes", 0, "rules", 0]],
    "missing-required.yaml": [["routes", 0, "rules", 0]],
    "several-problems.yaml": [["keys", "k"], ["name"], ["routes", 0, "rules", 0]],
}


@pytest.mark.parametrize("name", sorted(SCHEMA_BROKEN))
def test_schema_rejects_structural_errors(validator, name):
    data = yaml.safe_load((DATA / "broken" / name).read_text(encoding="utf-8"))
    paths = sorted(list(e.absolute_path) for e in validator.iter_errors(data))
    assert paths == SCHEMA_BROKEN[name]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(version=2),
        lambda d: d.update(extra=1),
        lambda d: d.update(routes=[]),
        lambda d: d["routes"][0].update(unlisted_fields="maybe"),
        lambda d: d["routes"][0].update(sink="bad topic name"),
        lambda d: d["routes"][0]["rules"][0].update(keep_first=-1),
        lambda d: d["routes"][0]["block"][0]["when"].update(field=3),
        lambda d: d["routes"][0].update(use="contact"),                            # use: a list of set names
        lambda d: d.update(rule_sets={"contact": [{"use": ["other"]}]}),          # sets cannot use sets
        lambda d: d.update(rule_sets={"Contact!": [{"field": "a", "action": "drop"}]}),
        lambda d: d.update(rule_sets={"contact": []}),
    ],
)
def test_schema_rejects_mutations_of_a_valid_policy(validator, mutate):
    data = yaml.safe_load((DATA / "valid-all-actions.yaml").read_text(encoding="utf-8"))
    assert validator.is_valid(data)
    mutate(data)
    assert not validator.is_valid(data)
