"""deploy/docker-compose.yml, the Dockerfile and the sample producer.

* ``docker compose config`` (the real compose CLI; it needs only the client, no engine) accepts the
  file when the keys are set, and refuses it, naming each variable, when they are not;
* structure and cross-file consistency, read with PyYAML (runs without Docker): services and images
  (official ``apache/kafka`` in KRaft mode), healthchecks and ``depends_on`` conditions, every bind
  mount's source exists, Prometheus scrapes the dpp service on the port dpp listens on and loads the
  alert rules it mounts, Grafana's provisioning points at the Prometheus service and at the directory
  the dashboards are mounted in, kafka-init creates the example policy's topics, dpp gets exactly the
  key variables the policy names; the embedded shell scripts parse (``sh -n``);
* the sample producer's compose command, run as written (``dpp generate | sample_producer.py`` in a
  loop) against the local broker, produces generated records keyed by record_id plus truncated ones;
* the Dockerfile: slim Python 3.11 base, non-root user, entrypoint ``dpp``; what it copies exists and
  is not excluded by .dockerignore, secrets and caches are; that build context builds a wheel with the
  ``dpp`` entry point.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from .tools import DEPLOY, ROOT, require_docker_compose

COMPOSE = DEPLOY / "docker-compose.yml"
EXAMPLE_POLICY = ROOT / "policies" / "examples" / "customer-pii.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SERVICES = {"kafka", "kafka-init", "schema-registry", "dpp", "producer", "prometheus", "grafana"}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _policy() -> dict:
    return yaml.safe_load(EXAMPLE_POLICY.read_text())


def _policy_key_vars() -> set[str]:
    return {k["name"] for k in _policy()["keys"].values() if k.get("source") == "env"}


def _env(svc: dict) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def _unescape(script: str) -> str:
    """Compose's ``$$`` is a literal ``$`` in the container."""
    return script.replace("$$", "$")


def _bind_mounts(svc: dict) -> list[tuple[Path, str]]:
    """``(host path, container path)`` of a service's bind mounts (short syntax, relative to deploy/)."""
    out = []
    for v in svc.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith((".", "/")):
            out.append(((DEPLOY / src).resolve(), dst))
    return out


# ---------------------------------------------------------------------------- docker compose config
def _compose_config(tmp_path: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = require_docker_compose()
    empty_env_file = tmp_path / "empty.env"      # ignore a developer's deploy/.env
    empty_env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPP_KEY_")} | env_extra
    return subprocess.run(cmd + ["-f", str(COMPOSE), "--env-file", str(empty_env_file), "config", "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_docker_compose_config_accepts_the_file(tmp_path):
    keys = {v: os.urandom(32).hex() for v in _policy_key_vars()}
    r = _compose_config(tmp_path, keys)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    services = cfg["services"]
    assert set(services) == SERVICES
    assert services["kafka"]["image"].startswith("apache/kafka:")
    # keys reach the worker, and the registry's URL: nothing else
    assert services["dpp"]["environment"] == {**keys, "DPP_SCHEMA_REGISTRY_URL": "http://schema-registry:8080/apis/ccompat/v7"}
    for name in ("kafka", "dpp", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            if v["type"] == "bind":
                assert Path(v["source"]).exists(), f"{name}: bind mount source {v['source']} does not exist"
                assert v.get("read_only"), f"{name}: bind mount {v['source']} is writable"
            else:
                assert v["type"] == "volume" and v["source"] in cfg["volumes"], (name, v)
    deps = {n: {d: c["condition"] for d, c in s.get("depends_on", {}).items()} for n, s in services.items()}
    assert deps["kafka-init"] == {"kafka": "service_healthy"}
    assert deps["dpp"] == {"kafka-init": "service_completed_successfully", "schema-registry": "service_healthy"}
    assert deps["producer"]["kafka-init"] == "service_completed_successfully"
    assert deps["grafana"] == {"prometheus": "service_healthy"}


def test_docker_compose_config_refuses_missing_keys(tmp_path):
    r = _compose_config(tmp_path, {})
    assert r.returncode != 0
    for var in _policy_key_vars():
        assert re.search(rf"required variable {var} is missing a value", r.stderr), f"not refused for {var}: {r.stderr}"


# ---------------------------------------------------------------------------- structure (PyYAML)
def test_services_images_and_kraft():
    c = _compose()
    svcs = c["services"]
    assert set(svcs) == SERVICES
    kafka = svcs["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"]), "pin the official image's version"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env), "KRaft mode: no ZooKeeper"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert len(env["CLUSTER_ID"].split()[0]) == 22           # base64 of a 16-byte UUID
    assert svcs["kafka-init"]["image"] == kafka["image"]
    for name in ("dpp", "producer"):
        assert svcs[name]["build"]["context"] == ".." and (DEPLOY / ".." / svcs[name]["build"]["dockerfile"]).is_file()
    for name in ("prometheus", "grafana"):
        assert re.fullmatch(r"[a-z/]+:v?\d+\.\d+\.\d+", svcs[name]["image"]), f"{name}: pin a version"
    # the same registry as deploy/registry.sh (Apicurio 2.6.x), its Confluent API given to dpp
    assert re.fullmatch(r"apicurio/apicurio-registry-mem:2\.6\.\d+\.Final", svcs["schema-registry"]["image"])
    assert _env(svcs["dpp"])["DPP_SCHEMA_REGISTRY_URL"] == "http://schema-registry:8080/apis/ccompat/v7"
    assert svcs["dpp"]["depends_on"]["schema-registry"]["condition"] == "service_healthy"


def test_healthchecks_and_start_order():
    svcs = _compose()["services"]
    for name in ("kafka", "dpp", "prometheus", "grafana"):
        hc = svcs[name]["healthcheck"]
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and hc["interval"] and hc["retries"] >= 3, name
    assert "/readyz" in " ".join(svcs["dpp"]["healthcheck"]["test"])       # ready = partitions assigned
    assert svcs["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert svcs["dpp"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert svcs["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, svc in svcs.items():
        for dep in svc.get("depends_on", {}):
            assert dep in svcs, f"{name} depends on unknown service {dep}"


def test_bind_mounts_exist_and_are_read_only():
    c = _compose()
    named = set(c.get("volumes", {}))
    for name, svc in c["services"].items():
        for v in svc.get("volumes", []):
            parts = v.split(":")
            if parts[0].startswith((".", "/")):
                assert (DEPLOY / parts[0]).exists(), f"{name}: {parts[0]} does not exist"
                assert parts[-1] == "ro", f"{name}: bind mount {v} should be read-only"
            else:
                assert parts[0] in named, f"{name}: undeclared volume {parts[0]}"


def test_worker_runs_the_example_policy_with_its_keys_from_the_environment():
    dpp = _compose()["services"]["dpp"]
    args = dict(a.split("=", 1) for a in dpp["command"] if a.startswith("--"))
    assert dpp["command"][0] == "run"
    policy_in_container = args["--policy"]
    host = [h / Path(policy_in_container).relative_to(dst) for h, dst in _bind_mounts(dpp)
            if policy_in_container.startswith(dst + "/")]
    assert host and host[0].resolve() == EXAMPLE_POLICY.resolve()
    env = {k: v for k, v in _env(dpp).items() if k != "DPP_SCHEMA_REGISTRY_URL"}
    assert set(env) == _policy_key_vars()
    for var, value in env.items():
        assert re.fullmatch(r"\$\{" + var + r":\?[^}]+\}", value), f"{var} must be required (${{{var}:?...}})"
    kafka_env = _env(_compose()["services"]["kafka"])
    internal = [a for a in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
                if a.startswith(kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"] + "://")]
    assert internal == [f"{kafka_env['KAFKA_INTER_BROKER_LISTENER_NAME']}://{args['--bootstrap-servers']}"]
    assert dpp.get("read_only") is True and dpp.get("cap_drop") == ["ALL"]


def test_kafka_init_creates_the_policy_topics():
    init = _compose()["services"]["kafka-init"]
    script = _unescape(init["command"][0])
    r = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    loop = re.search(r"for t in ([^;]+);", script)
    assert loop, "kafka-init: no topic loop"
    route = _policy()["routes"][0]
    assert set(loop.group(1).split()) == {route["source"], route["sink"], route["dead_letter"]}


def test_prometheus_scrapes_dpp_and_loads_the_mounted_rules():
    c = _compose()
    svcs = c["services"]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = {dst: h for h, dst in _bind_mounts(svcs["prometheus"])}
    config_arg = next(a for a in svcs["prometheus"]["command"] if a.startswith("--config.file="))
    config_path = config_arg.split("=", 1)[1]
    assert mounts[config_path] == (DEPLOY / "prometheus" / "prometheus.yml").resolve()
    for rule_file in prom["rule_files"]:
        in_container = str(Path(config_path).parent / rule_file)
        assert in_container in mounts, f"rule file {rule_file} is not mounted next to the config"
        assert mounts[in_container].is_file()
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    targets = [t for sc in jobs["dpp"]["static_configs"] for t in sc["targets"]]
    dpp_args = dict(a.split("=", 1) for a in svcs["dpp"]["command"] if a.startswith("--"))
    assert targets == [f"dpp:{dpp_args['--metrics-port']}"]


def test_grafana_provisioning_matches_the_mounts():
    svcs = _compose()["services"]
    mounts = {dst: h for h, dst in _bind_mounts(svcs["grafana"])}
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert "9090" in " ".join(svcs["prometheus"]["ports"])
    assert mounts["/etc/grafana/provisioning/datasources"] == (DEPLOY / "grafana/provisioning/datasources").resolve()
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/dpp.yml").read_text())["providers"][0]
    dash_dir = prov["options"]["path"]
    assert (mounts[dash_dir] / "dpp.json").is_file(), "the provider's path is not where the dashboards are mounted"
    home = _env(svcs["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dash_dir}/dpp.json"


# ---------------------------------------------------------------------------- the sample producer
def _end_offset(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def _consume_all(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list:
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=2000)
    out: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(out) < count:
            out.extend(c)
    finally:
        c.close()
    return out


@pytest.mark.integration
def test_sample_producer_command_runs_as_written(kafka_bootstrap):
    """The producer service's shell loop, with only the addresses swapped for the local broker."""
    from proxy.stream.admin import ensure_topics
    svc = _compose()["services"]["producer"]
    topic = f"t{uuid.uuid4().hex[:10]}.crm.customers"
    ensure_topics(kafka_bootstrap, {topic: 1})
    script = (_unescape(svc["command"][0])
              .replace("/opt/dpp/sample_producer.py", shlex.quote(str(DEPLOY / "sample_producer.py")))
              .replace("kafka:19092", kafka_bootstrap)
              .replace("--topic crm.customers", f"--topic {topic}"))
    assert kafka_bootstrap in script and topic in script
    bindir = Path(sys.executable).parent
    env = dict(os.environ, SAMPLE_BATCH="25", SAMPLE_INTERVAL_S="0.5", SAMPLE_MALFORMED_EVERY="10",
               PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    per_batch = 25 + 2                                   # lines 10 and 20 are also sent truncated
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if _end_offset(kafka_bootstrap, topic) >= 2 * per_batch:
                break
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    n = _end_offset(kafka_bootstrap, topic)
    assert n >= 2 * per_batch, f"{n} records in 60 s; producer stderr: {err.decode(errors='replace')[-2000:]}"
    msgs = _consume_all(kafka_bootstrap, topic, n)
    assert len(msgs) == n
    seeds: dict[str, int] = {}
    for i, m in enumerate(msgs):
        if m.key is not None:                            # a generated record, byte for byte, keyed by record_id
            rec = json.loads(m.value)
            assert rec["record_id"].encode() == m.key
            _, seed, idx = rec["record_id"].split("-")
            seeds[seed] = seeds.get(seed, 0) + 1
        else:                                            # the truncated copy of the record before it
            prev = msgs[i - 1]
            assert prev.key is not None and m.value == prev.value[: len(prev.value) // 2]
            assert int(json.loads(prev.value)["record_id"].split("-")[2]) % 10 == 9
            with pytest.raises(ValueError):
                json.loads(m.value)
    assert seeds.get("1") == 25 and seeds.get("2") == 25, f"one batch per loop turn, a new seed each: {seeds}"


# ---------------------------------------------------------------------------- Dockerfile
def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex: ``**/`` any directories, ``*`` and ``?`` within one, ``[...]``."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            j = pattern.index("]", i)
            out, i = out + pattern[i:j + 1], j + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: a pattern excludes a path it matches or any path under a directory it
    matches; ``!pattern`` re-includes; the last matching pattern wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    hit = False
    for pat in patterns:
        neg = pat.startswith("!")
        rx = _pattern_regex((pat[1:] if neg else pat).strip("/"))
        if any(rx.match(p) for p in prefixes):
            hit = not neg
    return hit


def _dockerignore() -> list[str]:
    return [l.strip() for l in DOCKERIGNORE.read_text().splitlines() if l.strip() and not l.startswith("#")]


def test_dockerfile_builds_and_requires_the_native_accelerator():
    ins = _dockerfile_instructions()
    runs = " ".join(a for op, a in ins if op == "RUN")
    assert "libssl-dev" in runs and "gcc" in runs
    assert "native_available()" in runs and "proxy._native not built" in runs


def test_dockerfile_slim_non_root_entrypoint_dpp():
    ins = _dockerfile_instructions()
    args = dict(a.split("=", 1) for op, a in ins if op == "ARG" and "=" in a)
    froms = [a.split()[0].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")) for op, a in ins if op == "FROM"]
    assert froms and all(re.fullmatch(r"python:3\.11-slim(-\w+)?", f) for f in froms), froms
    users = [a for op, a in ins if op == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root") and uid.isdigit() and int(uid) >= 1000, users[-1]
    assert json.loads(next(a for op, a in ins if op == "ENTRYPOINT")) == ["dpp"]
    assert "9464" in [a for op, a in ins if op == "EXPOSE"][0].split()
    assert any(op == "HEALTHCHECK" and "/healthz" in a for op, a in ins)


def test_dockerfile_copies_exist_and_survive_dockerignore():
    pats = _dockerignore()
    sources = []
    for op, a in _dockerfile_instructions():
        if op == "COPY" and "--from" not in a:
            words = [w for w in a.split() if not w.startswith("--")]
            sources += words[:-1]
    assert {"pyproject.toml", "proxy", "policies"} <= set(sources)
    for s in sources:
        assert (ROOT / s).exists(), f"COPY {s}: not in the repository"
        assert not _ignored(s, pats), f"COPY {s}: excluded by .dockerignore"
    for secret in (".env", "deploy/.env", "keys/fpe.key", ".git/config", ".cache/demo-keys.env",
                   "tests/conftest.py", "proxy/__pycache__/cli.cpython-311.pyc",
                   "proxy/_native.cpython-311-x86_64-linux-gnu.so"):  # built for this host, not the image
        assert _ignored(secret, pats), f"{secret} would be sent to the Docker build"


def test_build_context_builds_a_wheel_with_the_dpp_entry_point(tmp_path):
    """What the Dockerfile's build stage copies is enough to build the package (pip wheel, as the
    build stage does; the build backend comes from PyPI)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for op, a in _dockerfile_instructions():
        if op == "COPY" and "--from" not in a:
            words = [w for w in a.split() if not w.startswith("--")]
            for s in words[:-1]:
                if s == "policies":          # copied into the final image only
                    continue
                src = ROOT / s
                if src.is_dir():
                    shutil.copytree(src, ctx / s, ignore=lambda d, names: [n for n in names if n == "__pycache__"
                                                                           or n.endswith(".so")])
                else:
                    (ctx / s).write_bytes(src.read_bytes())
    out = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "-w", str(out), str(ctx)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next(out.glob("data_protection_proxy-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "proxy/cli.py" in names and "proxy/stream/engine.py" in names
        # built from proxy/_native.c (a compiler and libssl-dev are here, as in the build stage)
        assert any(n.startswith("proxy/_native") and n.endswith(".so") for n in names), names
        ep = next(n for n in names if n.endswith("entry_points.txt"))
        assert re.search(r"^dpp\s*=\s*proxy\.cli:main$", z.read(ep).decode(), flags=re.M)
