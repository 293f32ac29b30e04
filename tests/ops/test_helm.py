"""The Helm chart helm/data-protection-proxy, checked with the real tools that consume it (issue 6, item 7).

* ``helm lint --strict`` on the default values and on helm/ci/full-values.yaml (every optional
  feature on), and the chart's values.schema.json rejecting bad values;
* ``helm template`` on both, at the oldest Kubernetes the chart supports (Chart.yaml kubeVersion)
  and the newest whose schemas kubernetes-validate bundles: every built-in object is validated
  offline, in strict mode (unknown fields are errors), against the Kubernetes JSON schemas of
  that version (PyPI package kubernetes-validate);
* the CRD objects (ServiceMonitor, PrometheusRule, KEDA ScaledObject) are not in those schemas:
  they are checked structurally, and against what they must agree with (the Service, the
  Deployment, the policy's routes, deploy/prometheus/alerts.yml);
* cross-object contracts: probes on the metrics port, non-root and read-only root filesystem,
  the policy ConfigMap mounted as a directory (hot reload) and loadable by ``dpp``'s own loader,
  keys from Secrets, selectors and scale targets that match.

Helm is built with ``go install helm.sh/helm/v3/cmd/helm@v3.22.0`` (found on PATH, in
``$DPP_HELM``, ``$GOBIN``, ``$GOPATH/bin`` or ``~/go/bin``). Without it the tests skip, except
under ``CI`` where they fail.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from proxy.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "data-protection-proxy"
FULL_VALUES = ROOT / "helm" / "ci" / "full-values.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RELEASE, NAMESPACE = "rel", "dpp-test"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}


def _find_helm() -> str | None:
    candidates = [os.environ.get("DPP_HELM"), shutil.which("helm")]
    for d in (os.environ.get("GOBIN"), os.environ.get("GOPATH") and os.path.join(os.environ["GOPATH"], "bin"),
              os.path.expanduser("~/go/bin")):
        if d:
            candidates.append(os.path.join(d, "helm"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


HELM = _find_helm()
if HELM is None:
    _why = "helm not found: go install helm.sh/helm/v3/cmd/helm@v3.22.0 (then ~/go/bin/helm)"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{_why}; CI must install it", pytrace=False)
    pytestmark = pytest.mark.skip(reason=f"{_why}; CI=true makes this a failure")


def _kube_versions() -> tuple[str, str]:
    """(oldest supported by the chart, newest bundled by kubernetes-validate), as MAJOR.MINOR."""
    import kubernetes_validate.utils as kvu
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    m = re.match(r"^>=\s*(\d+\.\d+)", chart["kubeVersion"])
    assert m, "Chart.yaml kubeVersion must be '>=MAJOR.MINOR...'"
    return m.group(1), kvu.major_minor(kvu.latest_version())


OLDEST, NEWEST = _kube_versions()


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run helm; stderr lines about the alerts.yml symlink are expected and dropped."""
    p = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60)
    p.stderr = "\n".join(line for line in p.stderr.splitlines() if "found symbolic link" not in line)
    if check and p.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def render(*args: str, kube: str = NEWEST, chart: Path = CHART) -> list[dict]:
    """``helm template`` → list of manifests (dicts)."""
    out = helm("template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", f"{kube}.0", *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


VALUES = {"default": (), "full": ("-f", str(FULL_VALUES))}


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs).get(kind, [])
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def policy_configmap(docs: list[dict]) -> dict:
    """The policy ConfigMap (the chart may also render ``<fullname>-kafka``, the client properties)."""
    found = [d for d in by_kind(docs).get("ConfigMap", []) if not d["metadata"]["name"].endswith("-kafka")]
    assert len(found) == 1, f"expected one policy ConfigMap, found {len(found)}"
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ------------------------------------------------------------------------------------ lint
@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_lint_strict(values):
    p = helm("lint", "--strict", str(CHART), *VALUES[values], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 chart(s) failed" in p.stdout
    assert not re.search(r"\[(WARNING|ERROR)\]", p.stdout), p.stdout


@pytest.mark.parametrize("override, complaint", [
    (("--set", "replicaCount=-1"), "/replicaCount"),
    (("--set", "kafka.bootstrapServers=no-port"), "/kafka/bootstrapServers"),
    (("--set", "autoscalling.enabled=true"), "autoscalling"),                 # typo of a top-level key
    (("--set", "keda.lagThresold=10"), "lagThresold"),                       # typo inside a section
    (("--set", "policy.content=", "--set", "policy.existingConfigMap="), "/policy"),  # no policy at all
    (("--set", "keys.env[0].name=1BAD"), "/keys/env/0/name"),
])
def test_values_schema_rejects(override, complaint):
    p = helm("lint", "--strict", str(CHART), *override, check=False)
    assert p.returncode != 0, f"helm lint accepted {override}"
    assert complaint in p.stdout + p.stderr


# ------------------------------------------------------------------------------ k8s schemas
@pytest.mark.parametrize("kube", [OLDEST, NEWEST])
@pytest.mark.parametrize("values", sorted(VALUES))
def test_rendered_manifests_validate_against_kubernetes_schemas(values, kube):
    import kubernetes_validate
    docs = render(*VALUES[values], kube=kube)
    builtin = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert builtin
    errors = []
    for d in builtin:
        try:
            kubernetes_validate.validate(d, kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{d['kind']}/{d['metadata']['name']} at {'.'.join(map(str, e.path))}: {e.message[:300]}")
    assert not errors, f"invalid for Kubernetes {kube}:\n" + "\n".join(errors)
    expected = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    if values == "default":
        expected |= {"HorizontalPodAutoscaler"}
    else:  # KEDA replaces the HPA (its ScaledObject carries the CPU target)
        expected |= {"NetworkPolicy"} | CRD_KINDS
    assert set(by_kind(docs)) == expected


def test_kubernetes_validation_is_live():
    """The strict validation above rejects a misspelt field and a wrong type (it is not a no-op)."""
    import kubernetes_validate
    dep = one(render(*VALUES["full"]), "Deployment")
    kubernetes_validate.validate(dep, NEWEST, strict=True)
    typo = copy.deepcopy(dep)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    wrong_type = copy.deepcopy(dep)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9464"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, NEWEST, strict=True)


# ------------------------------------------------------------------------- object contracts
@pytest.mark.parametrize("values", sorted(VALUES))
def test_deployment_contract(values):
    vals = yaml.safe_load((CHART / "values.yaml").read_text())
    if values == "full":
        vals.update(yaml.safe_load(FULL_VALUES.read_text()))
    docs = render(*VALUES[values])
    dep, svc, cm = one(docs, "Deployment"), one(docs, "Service"), policy_configmap(docs)
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert selects(dep["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])

    # probes: /healthz and /readyz on the named metrics port, which is the port dpp serves
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
    assert f"--metrics-port={port}" in c["args"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"

    # non-root, read-only root filesystem, nothing extra; resources set
    sc, psc = c["securityContext"], spec["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert spec["automountServiceAccountToken"] is False

    # the policy ConfigMap is mounted as a directory (no subPath: ConfigMap updates reach the pod)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert volumes["policy"]["configMap"]["name"] == cm["metadata"]["name"]
    assert "subPath" not in mounts["policy"] and mounts["policy"]["readOnly"] is True
    policy_arg = next(a for a in c["args"] if a.startswith("--policy="))
    fname = vals["policy"]["fileName"]
    assert policy_arg == f"--policy={mounts['policy']['mountPath']}/{fname}" and fname in cm["data"]
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    assert f"--bootstrap-servers={vals['kafka']['bootstrapServers']}" in c["args"]
    assert [a for a in c["args"] if a.startswith("--route=")] == [f"--route={r}" for r in vals["dpp"]["routes"]]

    # keys only from Secrets: every key variable is a secretKeyRef as the values say
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    if vals["kafka"]["sasl"]["mechanism"]:   # checked in test_kafka_security_*
        refs.pop("DPP_KAFKA_SASL_PASSWORD")
    sr = vals.get("schemaRegistry", {})
    if sr.get("url"):   # the registry: URL in args, its password only from a Secret, CA/client certs mounted
        assert f"--schema-registry={sr['url']}" in c["args"][:c["args"].index("run")]
        if sr["basicAuth"]["existingSecret"]:
            assert refs.pop("DPP_SCHEMA_REGISTRY_AUTH") == {"name": sr["basicAuth"]["existingSecret"],
                                                            "key": sr["basicAuth"]["key"]}
            assert "--schema-registry-config=basic.auth.user.info=env:DPP_SCHEMA_REGISTRY_AUTH" in c["args"]
        if sr["tls"]["caSecret"]:
            assert volumes["schema-registry-tls"]["secret"]["secretName"] == sr["tls"]["caSecret"]
            assert mounts["schema-registry-tls"]["readOnly"] is True
        if sr["tls"]["clientSecret"]:
            assert volumes["schema-registry-client"]["secret"]["secretName"] == sr["tls"]["clientSecret"]
    else:
        assert not any(a.startswith("--schema-registry") for a in c["args"])
    assert refs == {k["name"]: {"name": k["secretName"], "key": k["secretKey"], **(
        {"optional": k["optional"]} if "optional" in k else {})} for k in vals["keys"]["env"]}
    assert not any(e["name"].startswith("DPP_KEY_") and "value" in e for e in c["env"])
    if vals["keys"]["mountSecret"]["secretName"]:
        assert volumes["keys"]["secret"]["secretName"] == vals["keys"]["mountSecret"]["secretName"]
        assert mounts["keys"]["readOnly"] is True
        assert volumes["keys"]["secret"]["defaultMode"] == 0o440
    else:
        assert "keys" not in volumes
    if vals["keys"].get("storeConfigMap", {}).get("name"):   # wrapped data keys only: a ConfigMap, read-only
        assert volumes["key-store"]["configMap"]["name"] == vals["keys"]["storeConfigMap"]["name"]
        assert mounts["key-store"]["readOnly"] is True and "subPath" not in mounts["key-store"]
        assert mounts["key-store"]["mountPath"] == vals["keys"]["storeConfigMap"]["mountPath"]
    else:
        assert "key-store" not in volumes

    # the metrics Service reaches the pods' metrics port
    assert selects(svc["spec"]["selector"], pod["metadata"]["labels"])
    (sp,) = svc["spec"]["ports"]
    assert sp["name"] == "metrics" and sp["targetPort"] == "metrics"

    # scaling and disruption budget point at this Deployment / its pods
    name = dep["metadata"]["name"]
    pdb = one(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert "replicas" not in dep["spec"], "an autoscaler owns the replica count"
    kinds = by_kind(docs)
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for obj in kinds.get(kind, []):
            assert obj["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    if "NetworkPolicy" in kinds:
        np = kinds["NetworkPolicy"][0]
        assert selects(np["spec"]["podSelector"]["matchLabels"], pod["metadata"]["labels"])
        assert {"port": "metrics", "protocol": "TCP"} in np["spec"]["ingress"][0]["ports"]
        egress_ports = {p["port"] for rule in np["spec"]["egress"] for p in rule.get("ports", [])}
        assert {53, *vals["networkPolicy"]["kafkaPorts"]} <= egress_ports


@pytest.mark.parametrize("values", sorted(VALUES))
def test_policy_configmap_loads_with_dpp(values, tmp_path):
    """The policy the chart ships is valid for dpp's own loader (what `dpp check` runs)."""
    docs = render(*VALUES[values])
    cm = policy_configmap(docs)
    ((fname, text),) = cm["data"].items()
    path = tmp_path / fname
    path.write_text(text)
    lp = load_policy(path)
    dep = one(docs, "Deployment")
    routes = [a.split("=", 1)[1] for a in dep["spec"]["template"]["spec"]["containers"][0]["args"]
              if a.startswith("--route=")]
    assert set(routes) <= {r.name for r in lp.policy.routes}
    # env keys the policy names are exactly the variables the Deployment takes from Secrets
    env_vars = {s.name for s in lp.policy.keys.values() if s.source == "env"}
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert env_vars <= {e["name"] for e in c["env"] if "valueFrom" in e}
    dirs = {s.path for s in lp.policy.keys.values() if s.source == "dir"}
    assert dirs <= {m["mountPath"] for m in c["volumeMounts"]}


def test_policy_from_existing_configmap():
    docs = render("--set", "policy.existingConfigMap=team-policy", "--set", "policy.content=")
    assert "ConfigMap" not in by_kind(docs)
    vol = next(v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "policy")
    assert vol["configMap"]["name"] == "team-policy"
    p = helm("template", RELEASE, str(CHART), "--kube-version", f"{NEWEST}.0", "--set",
             "policy.existingConfigMap=team-policy", "--set", "keda.enabled=true", check=False)
    assert p.returncode != 0 and "keda.triggers" in p.stderr


def test_restart_on_policy_change_is_opt_in():
    default_pod = one(render(), "Deployment")["spec"]["template"]["metadata"]
    assert "checksum/policy" not in default_pod.get("annotations", {}), "hot reload is the default"
    full_pod = one(render(*VALUES["full"]), "Deployment")["spec"]["template"]["metadata"]
    assert re.fullmatch(r"[0-9a-f]{64}", full_pod["annotations"]["checksum/policy"])


# ------------------------------------------------------------------------------------ CRDs
def test_service_monitor_scrapes_the_metrics_service():
    docs = render(*VALUES["full"])
    sm, svc = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]} and ep["path"] == "/metrics"
    for k in ("interval", "scrapeTimeout"):
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", ep[k])
    # the alert rules select job="dpp": the Service label named by jobLabel must say so
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "dpp"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_is_deploy_alerts_yml():
    docs = render(*VALUES["full"])
    pr = one(docs, "PrometheusRule")
    assert pr["apiVersion"] == "monitoring.coreos.com/v1"
    expected = yaml.safe_load(ALERTS.read_text())["groups"]
    assert pr["spec"]["groups"] == expected
    rules = [r for g in pr["spec"]["groups"] for r in g["rules"]]
    assert len(rules) >= 6
    for r in rules:
        assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert r["alert"] and r["expr"].strip() and r["labels"]["severity"] in {"warning", "critical", "info"}
        assert r["annotations"]["summary"] and r["annotations"]["runbook"]
        if "for" in r:
            assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", r["for"])
    # Prometheus' own template syntax survives Helm's templating untouched
    assert any("{{ $labels.route }}" in r["annotations"]["summary"] for r in rules)


def test_prometheus_rule_follows_job_name():
    docs = render("--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.serviceMonitor.enabled=true",
                  "--set", "metrics.serviceMonitor.jobName=dpp-eu")
    exprs = [r["expr"] for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    assert any('job="dpp-eu"' in e for e in exprs) and not any('job="dpp"' in e for e in exprs)
    svc, sm = one(docs, "Service"), one(docs, "ServiceMonitor")
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "dpp-eu"


def test_keda_scaled_object_watches_every_route():
    docs = render(*VALUES["full"])
    so = one(docs, "ScaledObject")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    full = yaml.safe_load(FULL_VALUES.read_text())
    policy = yaml.safe_load(full["policy"]["content"])
    wanted = {(r["source"], r.get("consumer_group") or f"dpp.{policy['name']}.{r['name']}")
              for r in policy["routes"] if r["name"] in full["dpp"]["routes"]}
    kafka = [t for t in spec["triggers"] if t["type"] == "kafka"]
    assert {(t["metadata"]["topic"], t["metadata"]["consumerGroup"]) for t in kafka} == wanted
    for t in kafka:
        md = t["metadata"]
        assert all(isinstance(v, str) for v in md.values()), "KEDA trigger metadata values are strings"
        assert md["bootstrapServers"] == full["kafka"]["bootstrapServers"]
        assert int(md["lagThreshold"]) == full["keda"]["lagThreshold"]
        assert t["authenticationRef"] == {"name": "kafka-sasl"}
    (cpu,) = [t for t in spec["triggers"] if t["type"] == "cpu"]
    assert cpu["metricType"] == "Utilization"
    assert cpu["metadata"]["value"] == str(full["autoscaling"]["targetCPUUtilizationPercentage"])
    # one route selected: one kafka trigger
    docs = render("--set", "keda.enabled=true", "--set", "dpp.routes[0]=crm-to-analytics")
    triggers = one(docs, "ScaledObject")["spec"]["triggers"]
    assert [t["metadata"]["topic"] for t in triggers if t["type"] == "kafka"] == ["crm.customers"]


# ------------------------------------------------------------------------------------ NOTES
@pytest.mark.parametrize("values", sorted(VALUES))
def test_notes_render(values, tmp_path):
    """NOTES.txt renders (rendered through a throw-away template in a copy of the chart)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=False)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data:\n  notes: {{ include "data-protection-proxy/templates/NOTES.txt" . | quote }}\n')
    docs = render(*VALUES[values], "--show-only", "templates/zz-notes.yaml", chart=chart)
    notes = docs[0]["data"]["notes"]
    assert "port-forward svc/" in notes and "/readyz" in notes
    assert "{{" not in notes.replace('{result="error"}', "")
    if values == "default":
        assert "create secret generic dpp-keys" in notes and "--from-literal=fpe=" in notes


# ------------------------------------------------------------------------------------- docs
def _leaf_paths(node: object, prefix: str = "") -> list[str]:
    """Dotted paths of values.yaml's leaves (lists, scalars and empty maps are leaves)."""
    if isinstance(node, dict) and node and prefix not in {"podSecurityContext", "securityContext", "resources"}:
        return [p for k, v in node.items() for p in _leaf_paths(v, f"{prefix}.{k}" if prefix else k)]
    return [prefix]


def test_readme_documents_every_value():
    """Each value of values.yaml has a row in the README's table, and each row names a real value."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    leaves = set(_leaf_paths(values))
    readme = (CHART / "README.md").read_text()
    rows = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, flags=re.M))
    assert leaves - rows == set(), "values missing from README.md"
    assert rows - leaves == set(), "README.md documents values that do not exist"
    # and the schema knows every top-level key
    import json
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"])


# ------------------------------------------------------------------------------ Kafka SASL/TLS
def test_kafka_security_values_render_into_a_properties_file(tmp_path):
    """full-values.yaml (SASL_SSL, SCRAM-SHA-512, CA and client certificate): a kafka.properties
    ConfigMap that dpp's own parser reads, mounted and passed with --kafka-config-file before the
    sub-command; the password only from a secretKeyRef (env:), the certificates from Secrets."""
    from proxy.stream.clientconfig import read_file
    k = yaml.safe_load(FULL_VALUES.read_text())["kafka"]
    docs = render(*VALUES["full"])
    dep = one(docs, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    (kcm,) = [d for d in by_kind(docs)["ConfigMap"] if d["metadata"]["name"].endswith("-kafka")]
    props = tmp_path / "kafka.properties"
    props.write_text(kcm["data"]["kafka.properties"])
    assert "env:DPP_KAFKA_SASL_PASSWORD" in props.read_text()
    cfg = read_file(props, {"DPP_KAFKA_SASL_PASSWORD": "from-the-secret"})
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}

    def secret_of(path: str) -> str:
        mount = mounts[str(Path(path).parent)]
        assert mount["readOnly"] is True
        return volumes[mount["name"]]["secret"]["secretName"]
    ca = cfg.pop("ssl.ca.location")
    assert ca.endswith("/" + k["tls"]["caKey"]) and secret_of(ca) == k["tls"]["caSecret"]
    assert secret_of(cfg.pop("ssl.certificate.location")) == k["tls"]["clientSecret"]
    assert secret_of(cfg.pop("ssl.key.location")) == k["tls"]["clientSecret"]
    assert cfg == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "dpp",
                   "sasl.password": "from-the-secret", **{key: str(v) for key, v in k["config"].items()}}
    arg = next(a for a in c["args"] if a.startswith("--kafka-config-file="))
    assert c["args"].index(arg) < c["args"].index("run"), "a group option: before the sub-command"
    path = Path(arg.split("=", 1)[1])
    assert volumes[mounts[str(path.parent)]["name"]]["configMap"]["name"] == kcm["metadata"]["name"]
    assert path.name == "kafka.properties"
    env = {e["name"]: e for e in c["env"]}
    assert env["DPP_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": k["sasl"]["passwordSecret"], "key": k["sasl"]["passwordKey"]}
    assert not any("password" in a.lower() for a in c["args"])
    assert re.fullmatch(r"[0-9a-f]{64}", dep["spec"]["template"]["metadata"]["annotations"]["checksum/kafka-config"])


def test_kafka_plaintext_by_default_renders_no_client_file():
    docs = render()
    assert [d["metadata"]["name"] for d in by_kind(docs)["ConfigMap"]] == [policy_configmap(docs)["metadata"]["name"]]
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not any(a.startswith("--kafka-config") for a in c["args"])
    assert "DPP_KAFKA_SASL_PASSWORD" not in {e["name"] for e in c["env"]}


def test_kafka_tls_only_renders_ssl_without_sasl(tmp_path):
    from proxy.stream.clientconfig import read_file
    docs = render("--set", "kafka.securityProtocol=SSL", "--set", "kafka.tls.caSecret=kafka-ca")
    (kcm,) = [d for d in by_kind(docs)["ConfigMap"] if d["metadata"]["name"].endswith("-kafka")]
    props = tmp_path / "kafka.properties"
    props.write_text(kcm["data"]["kafka.properties"])
    assert read_file(props, {}) == {"security.protocol": "SSL", "ssl.ca.location": "/etc/dpp/kafka-tls/ca.crt"}


@pytest.mark.parametrize("override, complaint", [
    (("--set", "kafka.securityProtocol=SASL_SSL"), "mechanism"),                       # SASL without a mechanism
    (("--set", "kafka.sasl.mechanism=PLAIN", "--set", "kafka.sasl.username=dpp",
      "--set", "kafka.sasl.passwordSecret=s"), "securityProtocol"),                   # a mechanism on PLAINTEXT
    (("--set", "kafka.securityProtocol=SASL_SSL", "--set", "kafka.sasl.mechanism=SCRAM-SHA-512",
      "--set", "kafka.sasl.username=dpp"), "passwordSecret"),                          # no password Secret
    (("--set", "kafka.securityProtocol=SASL_SSL", "--set", "kafka.sasl.mechanism=GSSAPI"), "mechanism"),
    (("--set", "kafka.securityProtocol=TLS"), "securityProtocol"),
    (("--set", "kafka.config.sasl\\.password=hunter2"), "sasl.password"),                  # passwords only from a Secret
])
def test_kafka_security_values_schema_rejects(override, complaint):
    p = helm("lint", "--strict", str(CHART), *override, check=False)
    assert p.returncode != 0, f"helm lint accepted {override}"
    assert complaint in p.stdout + p.stderr
