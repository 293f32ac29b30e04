"""KMS key sources in a policy: load-time validation (FILE:LINE: PATH: message), and envelope
encryption end to end offline: the example policy with every key in a KMS (moto's stand-in for AWS
KMS, a local server) protects records byte-identically to the same DEKs given as plain hex, through
the reference and the batch path; an unreachable KMS is KmsUnavailable (no fallback), a refused
one a policy problem; dpp keys init/rotate/rewrap from the command line."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from proxy.cli import main as cli
from proxy.crypto import kms as kms_pkg
from proxy.errors import KmsUnavailable, PolicyError
from proxy.generator import generate_records
from proxy.policy.compiler import SINK, compile_policy
from proxy.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policies" / "examples" / "customer-pii.yaml"
KEYS = ("pseudonym", "fpe", "dead-letter")


@pytest.fixture(autouse=True)
def _fresh_clients():
    kms_pkg.reset()
    yield
    kms_pkg.reset()


def with_keys(tmp_path: Path, keys: dict, name: str = "p.yaml") -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["keys"] = keys
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return p


@pytest.mark.parametrize("spec, path, message", [
    ({"source": "gcp", "key": "k", "store": "s.json"}, "keys.fpe", "unknown source 'gcp'"),
    ({"source": "vault", "key": "k", "store": "s.json"}, "keys.fpe.address", "required key is missing"),
    ({"source": "vault", "key": "k", "store": "s.json", "address": "vault:8200"}, "keys.fpe.address", ""),
    ({"source": "vault", "address": "http://v:8200", "store": "s.json"}, "keys.fpe.key", "required key is missing"),
    ({"source": "aws", "key": "alias/k"}, "keys.fpe.store", "required key is missing"),
    ({"source": "vault", "key": "k", "store": "s.json", "address": "http://v:8200",
      "auth": {"method": "approle", "secret_id_env": "S"}}, "keys.fpe.auth", "role_id"),
    ({"source": "vault", "key": "k", "store": "s.json", "address": "http://v:8200", "tokn_env": "X"},
     "keys.fpe.tokn_env", "unknown key"),
    ({"source": "aws", "key": "alias/k", "store": "s.json", "size": 20}, "keys.fpe.size", ""),
])
def test_bad_kms_specs_fail_at_load_with_file_line_path(tmp_path, spec, path, message):
    keys = {"pseudonym": {"source": "env", "name": "P"}, "fpe": spec, "dead-letter": {"source": "env", "name": "D"}}
    p = with_keys(tmp_path, keys)
    with pytest.raises(PolicyError) as e:
        load_policy(p)
    lines = [l for l in str(e.value).splitlines() if f": {path}:" in l]
    assert lines, str(e.value)
    file_, line, _ = lines[0].split(":", 2)
    assert file_ == str(p) and line.isdigit() and int(line) > 1
    assert message in lines[0]


def aws_keys(moto_kms: str, store: Path, kek: str) -> dict:
    return {k: {"source": "aws", "key": kek, "store": str(store), "region": "us-east-1", "endpoint_url": moto_kms}
            for k in KEYS}


@pytest.fixture
def aws_kek(moto_kms) -> str:
    import boto3
    c = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_kms)
    alias = f"alias/dpp-{uuid.uuid4().hex[:8]}"
    c.create_alias(AliasName=alias, TargetKeyId=c.create_key()["KeyMetadata"]["KeyId"])
    return alias


def test_kms_keys_give_the_same_bytes_as_the_same_deks_in_plain(tmp_path, moto_kms, aws_kek):
    store = tmp_path / "keys.json"
    policy = with_keys(tmp_path, aws_keys(moto_kms, store, aws_kek))
    r = CliRunner().invoke(cli, ["keys", "init", "--policy", str(policy)])
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(l)["key"] for l in r.output.splitlines()) == sorted(KEYS)
    via_kms = compile_policy(load_policy(policy)).route()
    deks = {k: ring.key.material.hex() for k, ring in via_kms._keyrings.items()}
    plain = compile_policy(load_policy(with_keys(tmp_path, {k: {"source": "env", "name": f"K_{i}"}
                                                           for i, k in enumerate(KEYS)}, "plain.yaml")),
                           environ={f"K_{i}": deks[k] for i, k in enumerate(KEYS)}).route()
    values = [json.dumps(rec, ensure_ascii=False).encode() for rec in generate_records(300, 7)]
    values += [b"{not json", b'{"customer_id": "C1", "id_number": [1, 2]}']
    ref_kms = [via_kms.process(v) for v in values]
    ref_plain = [plain.process(v) for v in values]
    assert [(o.kind, o.value, o.reason) for o in ref_kms] == [(o.kind, o.value, o.reason) for o in ref_plain]
    assert sum(o.kind == SINK for o in ref_kms) > 200
    batch = via_kms.process_batch(values)
    assert [(o.kind, o.value) for o in batch] == [(o.kind, o.value) for o in ref_kms]


def test_unreachable_kms_raises_kms_unavailable_not_a_fallback(tmp_path, moto_kms, aws_kek):
    store = tmp_path / "keys.json"
    policy = with_keys(tmp_path, aws_keys(moto_kms, store, aws_kek))
    assert CliRunner().invoke(cli, ["keys", "init", "--policy", str(policy)]).exit_code == 0
    kms_pkg.reset()
    dead = with_keys(tmp_path, aws_keys("http://127.0.0.1:9", store, aws_kek), "dead.yaml")
    with pytest.raises(KmsUnavailable):
        compile_policy(load_policy(dead))
    r = CliRunner().invoke(cli, ["apply", "--policy", str(dead)], input="{}\n")
    assert r.exit_code == 1 and "the KMS cannot be reached" in r.output


def test_refused_kms_key_is_a_policy_problem(tmp_path, moto_kms, aws_kek):
    store = tmp_path / "keys.json"
    assert CliRunner().invoke(cli, ["keys", "init", "--policy",
                                    str(with_keys(tmp_path, aws_keys(moto_kms, store, aws_kek)))]).exit_code == 0
    doc = json.loads(store.read_text())
    for k in KEYS:
        doc["keys"][k]["kek"] = "alias/dpp-other"
    store.write_text(json.dumps(doc))
    other = with_keys(tmp_path, aws_keys(moto_kms, store, "alias/dpp-other"), "other.yaml")
    with pytest.raises(PolicyError) as e:
        compile_policy(load_policy(other))
    assert all(f"keys.{k}:" in str(e.value) for k in KEYS)


def test_keys_cli_rotate_and_rewrap(tmp_path, moto_kms, aws_kek):
    import boto3
    store = tmp_path / "keys.json"
    policy = with_keys(tmp_path, aws_keys(moto_kms, store, aws_kek))
    run = lambda *a: CliRunner().invoke(cli, ["keys", *a, "--policy", str(policy)])  # noqa: E731
    assert run("init").exit_code == 0
    before = compile_policy(load_policy(policy)).route()
    c = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_kms)
    c.rotate_key_on_demand(KeyId=c.describe_key(KeyId=aws_kek)["KeyMetadata"]["KeyId"])
    r = run("rotate", "--key", "fpe")
    assert r.exit_code == 0 and json.loads(r.output) == {"key": "fpe", "store": str(store), "version": 2,
                                                         "kek_version": 2, "action": "rotated"}
    r = run("rewrap")
    assert r.exit_code == 0
    assert {json.loads(l)["key"]: json.loads(l)["versions"] for l in r.output.splitlines()}["fpe"] == {"1": 2, "2": 2}
    kms_pkg.reset()
    after = compile_policy(load_policy(policy)).route()
    assert after._keyrings["fpe"].current == 2
    assert after._keyrings["fpe"].version(1).material == before._keyrings["fpe"].key.material
    assert after._keyrings["pseudonym"].key.material == before._keyrings["pseudonym"].key.material
    r = run("rotate", "--key", "nope")
    assert r.exit_code == 1 and "not in the policy" in r.output


def test_a_rotated_key_store_is_hot_reloaded(tmp_path, moto_kms, aws_kek):
    import threading

    from proxy.metrics import Metrics
    from proxy.stream.reload import PolicyWatcher

    store = tmp_path / "keys.json"
    policy = with_keys(tmp_path, aws_keys(moto_kms, store, aws_kek))
    assert CliRunner().invoke(cli, ["keys", "init", "--policy", str(policy)]).exit_code == 0

    class Engine:                      # what the watcher uses of proxy.stream.engine.Engine
        metrics, stop_event = Metrics(), threading.Event()

        def __init__(self, policy):
            self.policy = policy

        def reload(self, policy):
            self.policy = policy

    eng = Engine(compile_policy(load_policy(policy)))
    w = PolicyWatcher(eng, policy)
    assert w.check_once() is None                               # nothing changed
    assert CliRunner().invoke(cli, ["keys", "rotate", "--policy", str(policy), "--key", "fpe"]).exit_code == 0
    assert w.check_once() == "success"
    route = eng.policy.route()
    assert route._keyrings["fpe"].current == 2 and route.key_versions["fpe"] == 2
    assert w.check_once() is None
