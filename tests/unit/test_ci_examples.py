"""Editor and CI integration files cannot rot: the pre-commit hooks (.pre-commit-hooks.yaml), the
GitHub Actions example (docs/examples/policy-ci.yml) and the schema store entry
(docs/examples/schemastore-catalog-entry.json) name dpp commands and options that exist, and the
hooks pass on this repository's own policies."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from proxy.cli import main

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / ".pre-commit-hooks.yaml"
WORKFLOW = ROOT / "docs" / "examples" / "policy-ci.yml"
CATALOG = ROOT / "docs" / "examples" / "schemastore-catalog-entry.json"

_CUT = re.compile(r"\|\||&&|[|;>)`]")


def dpp_invocations(script: str) -> list[list[str]]:
    """Every ``dpp ...`` command line in a shell script, as words up to a pipe, ``;``, ``&&``,
    ``||``, a redirection or the end of the line."""
    found = []
    for line in script.splitlines():
        for m in re.finditer(r"(?:^|[\s;|&(])dpp\s+(.*)", line):
            found.append(shlex.split(_CUT.split(m.group(1))[0], comments=True))
    return found


def check_invocation(words: list[str]) -> None:
    """``words`` (after ``dpp``) name a subcommand and options it has."""
    assert words, "dpp without a command"
    cmd = main.commands.get(words[0])
    assert isinstance(cmd, click.Command), f"dpp has no command {words[0]!r}"
    opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for w in words[1:]:
        if w.startswith("--"):
            assert w.split("=")[0] in opts, f"dpp {words[0]} has no option {w}"


@pytest.mark.parametrize("words,ok", [
    (["diff", "a", "b", "--format", "markdown"], True),
    (["diff", "a", "b", "--formats", "markdown"], False),
    (["nosuch"], False),
    (["test", "--skip-untested"], True),
])
def test_the_checker_itself(words, ok):
    if ok:
        check_invocation(words)
    else:
        with pytest.raises(AssertionError):
            check_invocation(words)


@pytest.fixture(scope="module")
def hooks() -> dict:
    data = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return {h["id"]: h for h in data}


def test_hooks_are_defined(hooks):
    assert set(hooks) == {"dpp-check", "dpp-test"}
    for h in hooks.values():
        assert h["language"] == "python" and h["name"] and h["entry"].startswith("dpp ")
        assert set(h) <= {"id", "name", "description", "entry", "language", "files", "exclude", "types", "args",
                          "pass_filenames", "require_serial"}
        check_invocation(shlex.split(h["entry"])[1:])
    assert shlex.split(hooks["dpp-check"]["entry"])[1] == "check"
    assert shlex.split(hooks["dpp-test"]["entry"])[1] == "test"


def hook_files(hook: dict) -> list[str]:
    """The repository's files pre-commit would pass to ``hook`` (its ``files``/``exclude``)."""
    files = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.y*ml") if ".cache" not in p.parts)
    inc, exc = re.compile(hook["files"]), re.compile(hook["exclude"]) if hook.get("exclude") else None
    return [f for f in files if inc.search(f) and not (exc and exc.search(f))]


@pytest.mark.parametrize("path,check,test", [
    ("policies/examples/customer-pii.yaml", True, True),
    ("policies/examples/customer-pii.tests.yaml", False, True),
    ("policies/team/orders.yml", True, True),
    ("tests/data/policies/broken/unknown-key.yaml", False, False),
    ("helm/dpp/values.yaml", False, False),
    ("policies/policy.schema.json", False, False),
])
def test_hook_file_patterns(hooks, path, check, test):
    for hid, want in (("dpp-check", check), ("dpp-test", test)):
        h = hooks[hid]
        hit = re.search(h["files"], path) is not None and not (h.get("exclude") and re.search(h["exclude"], path))
        assert hit == want, (hid, path)


@pytest.mark.parametrize("hid", ["dpp-check", "dpp-test"])
def test_hooks_pass_on_the_shipped_policies(hooks, hid, monkeypatch):
    monkeypatch.chdir(ROOT)
    files = hook_files(hooks[hid])
    assert "policies/examples/customer-pii.yaml" in files
    res = CliRunner().invoke(main, shlex.split(hooks[hid]["entry"])[1:] + files)
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_workflow_runs_check_test_coverage_and_posts_the_diff(workflow):
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in on
    assert workflow["permissions"]["pull-requests"] == "write"
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    runs = [s.get("run", "") for s in steps]
    commands = [w for r in runs for w in dpp_invocations(r)]
    assert {w[0] for w in commands} >= {"check", "test", "coverage", "diff"}
    diffs = [w for w in commands if w[0] == "diff"]
    assert diffs and all("--format" in w and w[w.index("--format") + 1] == "markdown" for w in diffs)
    assert any("--sample" in w for w in commands if w[0] == "coverage")
    assert any("gh pr comment" in r and "dpp-diff.md" in r for r in runs)
    for w in commands:
        check_invocation(w)


def test_schema_store_entry():
    entry = json.loads(CATALOG.read_text(encoding="utf-8"))
    assert set(entry) == {"name", "description", "fileMatch", "url"}
    assert entry["fileMatch"] and all(isinstance(p, str) for p in entry["fileMatch"])
    schema = json.loads((ROOT / "policies" / "policy.schema.json").read_text(encoding="utf-8"))
    assert entry["url"].endswith("/policies/policy.schema.json")
    assert entry["url"].split("/")[3:5] == schema["$id"].split("/")[3:5]  # the same owner/repository


def test_workflow_scripts_are_valid_bash(workflow):
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "run" in step:
                script = re.sub(r"\$\{\{[^}]*\}\}", "X", step["run"])  # GitHub expressions, filled in before bash runs
                res = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
                assert res.returncode == 0, (step.get("name"), res.stderr)
