"""Secured and replicated clusters, started once per session by ``deploy/kafka.sh``.

* A SASL_SSL broker (``DPP_KAFKA_SECURITY=sasl_ssl``, port ``DPP_TEST_SECURE_KAFKA_PORT``, default
  19292): the example route end to end with ``dpp run`` as ``User:dpp`` over SCRAM-SHA-512 holding
  only the ACLs of ``kafka.sh grant-dpp``, the sink read back with kafka-python over SASL_SSL;
  ``dpp scan``, ``reveal``, ``forget`` and ``dead-letter`` as the operator (``admin``; dead-letter
  over SASL/PLAIN). A wrong password and an untrusted CA: one error line, non-zero exit within
  seconds, no password anywhere. ``User:dpp`` without Write on the sink: a clear error naming the
  topic, nothing committed.
* A three-node KRaft cluster (``DPP_KAFKA_NODES=3``, ports ``DPP_TEST_CLUSTER_KAFKA_PORT``..+5,
  default 19300): replication 3, ``min.insync.replicas`` 2; the node leading a source and a sink
  partition is stopped mid-run: every record arrives, duplicates (at-least-once) byte-identical.
"""
from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from proxy.stream.clientconfig import read_file
from proxy.stream.control import AUDIT_TOPIC

from .helpers import (KAFKA_PYTHON_WARNINGS, ROOT, DppProcess, committed_offsets, create_topics, delete_topics, drain,
                      end_offsets, generated_records, personal_values, policy_copy, produce, read_topic, run_dpp,
                      wait_until)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

SCRIPT = ROOT / "deploy" / "kafka.sh"
SMALL_HEAP = "-Xms128m -Xmx512m"


def kafka_script(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=240,
                         env=dict(os.environ, DPP_KAFKA_HEAP=SMALL_HEAP, **env))
    if check:
        assert out.returncode == 0, f"kafka.sh {' '.join(args)}:\n{out.stderr}"
    return out


@dataclass(frozen=True)
class Secured:
    """The SASL_SSL broker: bootstrap, its state dir, the passwords and the script's environment."""

    bootstrap: str
    state: Path
    secrets: dict[str, str]
    script_env: dict[str, str]

    def props(self, user: str, plain: bool = False) -> Path:
        return self.state / "clients" / f"{user}{'-plain' if plain else ''}.properties"

    def client(self, user: str = "admin") -> dict[str, str]:
        """librdkafka properties of ``user`` (passwords resolved from :attr:`secrets`)."""
        return read_file(self.props(user), self.secrets)

    def kafka_python(self, user: str = "admin") -> dict:
        return {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user,
                "sasl_plain_password": self.secrets[f"DPP_KAFKA_{user.upper()}_PASSWORD"],
                "ssl_cafile": str(self.state / "tls" / "ca.pem")}

    def env(self, user: str, plain: bool = False, **extra: str) -> dict[str, str]:
        """Environment of a ``dpp`` subprocess running as ``user`` (``DPP_KAFKA_CONFIG_FILE``)."""
        return dict(os.environ, **self.secrets, DPP_KAFKA_CONFIG_FILE=str(self.props(user, plain)), **extra)


@contextmanager
def started_by_script(env: dict[str, str], what: str):
    """``kafka.sh fetch`` and ``start`` with ``env``, yielding the start's output; ``stop`` and ``reset``
    afterwards. Skips when the broker is external (``DPP_TEST_BOOTSTRAP``): ``what`` cannot be started."""
    if os.environ.get("DPP_TEST_BOOTSTRAP"):
        pytest.skip(f"the broker is external (DPP_TEST_BOOTSTRAP): cannot start {what}")
    kafka_script(env, "fetch")
    out = kafka_script(env, "start")
    try:
        yield out
    finally:
        kafka_script(env, "stop", check=False)
        kafka_script(env, "reset", check=False)


@pytest.fixture(scope="session")
def secured_broker():
    env = {"DPP_KAFKA_SECURITY": "sasl_ssl", "DPP_KAFKA_PORT": os.environ.get("DPP_TEST_SECURE_KAFKA_PORT", "19292")}
    with started_by_script(env, "a secured one") as out:
        info = dict(line.split("=", 1) for line in kafka_script(env, "env").stdout.splitlines())
        secrets_file = Path(info["secrets"])
        assert secrets_file.stat().st_mode & 0o077 == 0, "secrets.env must be readable by its owner only"
        secrets = dict(line.split("=", 1) for line in secrets_file.read_text().splitlines() if "=" in line)
        for value in secrets.values():
            assert value not in out.stdout + out.stderr, "kafka.sh start printed a password"
        yield Secured(out.stdout.strip().splitlines()[-1], secrets_file.parent, secrets, env)


@pytest.fixture(scope="session")
def kafka_cluster():
    env = {"DPP_KAFKA_NODES": "3", "DPP_KAFKA_PORT": os.environ.get("DPP_TEST_CLUSTER_KAFKA_PORT", "19300")}
    with started_by_script(env, "a cluster") as out:
        yield out.stdout.strip().splitlines()[-1], env


def no_secret_in(text: str, secrets: dict[str, str], *extra: str) -> None:
    for value in [*secrets.values(), *extra]:
        assert value not in text, "a password reached the output"


def secured_route(sec: Secured, tmp_path: Path, prefix: str, *, grant_sink: bool = True):
    """Example policy copy on ``prefix`` topics (created as admin) with ``grant-dpp`` ACLs for User:dpp
    (without ``grant_sink``, Write is granted on another topic name than the route's sink)."""
    policy, t = policy_copy(tmp_path, prefix)
    create_topics(sec.bootstrap, t.all, client=sec.client())
    if AUDIT_TOPIC not in AdminClient({"bootstrap.servers": sec.bootstrap, **sec.client()}).list_topics(timeout=30).topics:
        create_topics(sec.bootstrap, [AUDIT_TOPIC], partitions=1, client=sec.client())  # the records of processing
    kafka_script(sec.script_env, "grant-dpp", t.source, t.sink if grant_sink else t.sink + ".other",
                 t.dead_letter, t.group)
    return policy, t


def test_run_scan_reveal_forget_dead_letter_over_sasl_ssl(secured_broker, topic_prefix, demo_keys, tmp_path):
    sec = secured_broker
    policy, t = secured_route(sec, tmp_path, topic_prefix)
    records = generated_records(1000)
    bad = b'{"record_id": "broken", "mobile": "13900001111"'   # not JSON: dead-lettered, sealed
    produce(sec.bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in records]
            + [(b"broken", bad, None)], client=sec.client())
    kp = sec.kafka_python()
    with DppProcess(policy, sec.bootstrap, tmp_path, name="dpp-sasl", create_topics=False,
                    env=sec.env("dpp")) as dpp:
        dpp.wait_ready()
        dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= len(records) + 1, 120, "all records consumed")
        wait_until(lambda: sum(committed_offsets(sec.bootstrap, t.group, t.source, security=kp).values())
                   == len(records) + 1, 60, "the group's offsets committed", dpp.stderr_tail)
        assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr() + (tmp_path / "dpp-sasl.stdout").read_text()
    no_secret_in(logs, sec.secrets)
    assert '"level":"error"' not in logs and "Traceback" not in logs
    sink = read_topic(sec.bootstrap, t.sink, security=kp)                 # kafka-python over SASL_SSL/SCRAM
    src = {r["record_id"]: r for r in records}
    expected = {r["record_id"] for r in records if r["consent"]["analytics"] is not False}
    assert {orjson.loads(r.value)["record_id"] for r in sink} == expected
    for r in sink:
        for secret in personal_values(src[orjson.loads(r.value)["record_id"]]):
            assert secret.encode() not in r.value
    (dead,) = read_topic(sec.bootstrap, t.dead_letter, security=kp)
    assert b"13900001111" not in dead.value

    # dpp scan as the operator: fields found, no value printed
    res = run_dpp(["scan", "--topic", t.source, "--bootstrap-servers", sec.bootstrap, "--sample", "200", "--json",
                   "--timeout", "20"], env=sec.env("admin"), timeout_s=120)
    assert res.returncode == 0, res.stderr
    report = orjson.loads(res.stdout)
    assert report["records"] == 200
    assert any(f["path"] == "mobile" and f["kinds"] for f in report["fields"])
    no_secret_in(res.stdout + res.stderr, sec.secrets)

    # dpp reveal of the first sink records of partition 0 (FPE fields back to the source values)
    p0 = [r for r in sink if r.partition == 0][:5]
    res = run_dpp(["reveal", "--policy", str(policy), "--bootstrap-servers", sec.bootstrap, "--topic", t.sink,
                   "--partition", "0", "--offset", str(p0[0].offset), str(p0[-1].offset), "--reason", "ticket 7",
                   "--audit-file", str(tmp_path / "reveal-audit.jsonl")], env=sec.env("admin"), timeout_s=120)
    assert res.returncode == 0, res.stderr
    revealed = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert len(revealed) == len(p0)
    for doc in revealed:
        assert doc["id_number"] == src[doc["record_id"]]["id_number"]
        assert doc["bank_card"] == src[doc["record_id"]]["bank_card"]

    # dpp dead-letter over SASL/PLAIN: the sealed record opened (audited) to its original bytes
    res = run_dpp(["dead-letter", "--policy", str(policy), "--bootstrap-servers", sec.bootstrap,
                   "--partition", str(dead.partition), "--offset", str(dead.offset), str(dead.offset),
                   "--reason", "ticket 8", "--audit-file", str(tmp_path / "dl-audit.jsonl")],
                  env=sec.env("admin", plain=True), timeout_s=120)
    assert res.returncode == 0, res.stderr
    assert orjson.loads(res.stdout)["payload"].encode() == bad
    no_secret_in(res.stdout + res.stderr, sec.secrets)

    # dpp forget on a crypto-shredding route: the marker lands in the subject-key topic
    from .test_crypto_shredding import KEYS, policy_text, subject_ref
    key_topic = f"{topic_prefix}.subject-keys"
    create_topics(sec.bootstrap, [key_topic], partitions=1, client=sec.client())
    shred = tmp_path / "shredding.yaml"
    shred.write_text(policy_text(t, key_topic), encoding="utf-8")
    res = run_dpp(["forget", "C-1002", "--policy", str(shred), "--bootstrap-servers", sec.bootstrap,
                   "--reason", "erasure 9"], env=sec.env("admin", **KEYS), timeout_s=120)
    assert res.returncode == 0, res.stderr
    assert subject_ref("C-1002") in res.stdout and "C-1002" not in res.stdout
    marks = read_topic(sec.bootstrap, key_topic, security=kp)
    assert [m.key for m in marks] == [subject_ref("C-1002").encode()]


@pytest.mark.parametrize("case", ["wrong-password", "untrusted-ca"])
def test_bad_credentials_fail_fast_with_one_line_and_no_secret(secured_broker, topic_prefix, demo_keys, tmp_path,
                                                               case):
    sec = secured_broker
    policy, t = secured_route(sec, tmp_path, topic_prefix)
    wrong = "Wr0ng-" + os.urandom(8).hex()
    env = sec.env("dpp")
    if case == "wrong-password":
        env["DPP_KAFKA_DPP_PASSWORD"] = wrong
        cause = "Kafka authentication failed"
    else:  # a CA of our own: the broker's certificate is not signed by it
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other CA",
                        "-days", "1", "-keyout", str(tmp_path / "other.key"), "-out", str(tmp_path / "other.pem")],
                       check=True, capture_output=True)
        props = tmp_path / "dpp.properties"
        props.write_text(sec.props("dpp").read_text().replace(str(sec.state / "tls" / "ca.pem"),
                                                               str(tmp_path / "other.pem")))
        env["DPP_KAFKA_CONFIG_FILE"] = str(props)
        cause = "TLS handshake with the broker failed"
    started = time.monotonic()
    with DppProcess(policy, sec.bootstrap, tmp_path, name=f"dpp-{case}", create_topics=False, env=env) as dpp:
        code = dpp.wait_exit(60)
        took = time.monotonic() - started
        err = dpp.stderr()
        out = (tmp_path / f"dpp-{case}.stdout").read_text()
    assert code != 0
    assert took < 30, f"took {took:.1f} s to fail"
    errors = [orjson.loads(line) for line in err.splitlines() if '"level":"error"' in line]
    assert len(errors) == 1, err
    assert cause in errors[0]["msg"] and errors[0]["dependency"] == "kafka"
    assert "Traceback" not in err + out
    no_secret_in(err + out, sec.secrets, wrong)
    # an operator command with the same configuration: one line, exit 1, no traceback
    res = run_dpp(["scan", "--topic", t.source, "--bootstrap-servers", sec.bootstrap, "--timeout", "5"], env=env,
                  timeout_s=60)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and res.stderr.startswith(f"dpp scan: {cause}")
    no_secret_in(res.stderr, sec.secrets, wrong)


def test_missing_write_acl_on_the_sink_stops_and_commits_nothing(secured_broker, topic_prefix, demo_keys, tmp_path):
    sec = secured_broker
    policy, t = secured_route(sec, tmp_path, topic_prefix, grant_sink=False)
    records = generated_records(200)
    produce(sec.bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in records],
            client=sec.client())
    with DppProcess(policy, sec.bootstrap, tmp_path, name="dpp-noacl", create_topics=False,
                    env=sec.env("dpp")) as dpp:
        code = dpp.wait_exit(60)
        err = dpp.stderr()
    assert code != 0
    errors = [orjson.loads(line) for line in err.splitlines() if '"level":"error"' in line]
    assert len(errors) == 1, err
    assert "not authorized" in errors[0]["msg"] and t.sink in errors[0]["msg"]
    kp = sec.kafka_python()
    assert sum(committed_offsets(sec.bootstrap, t.group, t.source, security=kp).values()) == 0
    assert sum(end_offsets_secured(sec, t.sink).values()) == 0
    no_secret_in(err, sec.secrets)


def end_offsets_secured(sec: Secured, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({**sec.client(), "bootstrap.servers": sec.bootstrap, "group.id": "it-end-offsets"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def test_leader_change_on_a_three_node_cluster_loses_nothing(kafka_cluster, topic_prefix, demo_keys, tmp_path):
    bootstrap, env = kafka_cluster
    policy, t = policy_copy(tmp_path, topic_prefix)
    create_topics(bootstrap, t.all, replication=3, topic_config={"min.insync.replicas": "2"})
    records = generated_records(20_000)
    produce(bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in records])
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def leaders(topic):
        return {p: m.leader for p, m in admin.list_topics(topic, timeout=10).topics[topic].partitions.items()}
    victim = leaders(t.source)[0]
    assert victim in leaders(t.sink).values()
    with DppProcess(policy, bootstrap, tmp_path, name="dpp-cluster", create_topics=False) as dpp:
        dpp.wait_ready()
        dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= 3000, 120, "3000 records consumed")
        kafka_script(env, "stop-node", str(victim))                        # mid-run: its partitions move
        try:
            wait_until(lambda: victim not in leaders(t.source).values() and victim not in leaders(t.sink).values(),
                       60, f"leadership moved away from node {victim}")
            dpp.assert_running()
            drain(dpp, bootstrap, t, len(records), timeout_s=240)
        finally:
            kafka_script(env, "start-node", str(victim))
        assert dpp.stop() == 0, dpp.stderr_tail()
    sink = read_topic(bootstrap, t.sink)
    expected = {r["record_id"] for r in records if r["consent"]["analytics"] is not False}
    first: dict[bytes, bytes] = {}
    for r in sink:
        first.setdefault(r.key, r.value)
        assert r.value == first[r.key], f"duplicate of {r.key!r} differs from its first copy"
    assert {orjson.loads(v)["record_id"] for v in first.values()} == expected
    assert not read_topic(bootstrap, t.dead_letter)
    assert sum(end_offsets(bootstrap, t.source).values()) == len(records)


def test_create_topics_on_a_three_node_cluster_replicates_them(kafka_cluster, topic_prefix):
    """``dpp run --create-topics`` (``ensure_topics``) asks for the cluster's default replication
    factor, not 1: on the three-node cluster every partition has three replicas."""
    from confluent_kafka.admin import AdminClient

    from proxy.stream.admin import ensure_topics
    bootstrap, _ = kafka_cluster
    name = f"{topic_prefix}.created"
    try:
        assert ensure_topics(bootstrap, {name: 2}) == [name]
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=name, timeout=30).topics[name]
        assert len(md.partitions) == 2
        assert all(len(p.replicas) == 3 for p in md.partitions.values())
    finally:
        delete_topics(bootstrap, [name])
