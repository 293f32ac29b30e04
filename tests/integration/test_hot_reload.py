"""Policy hot reload on the real broker, with the policy mounted the way Kubernetes mounts a
ConfigMap (``policy.yaml`` → ``..data/policy.yaml``, ``..data`` → ``..<version>``; an update swaps
the ``..data`` symlink atomically).

Records produced before the swap follow the old policy, records after it the new one, none is
lost; a broken update is refused (counted, logged with its location), the running policy stays.
"""
from __future__ import annotations

import os
import re

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, drain, metric, produce, read_topic,  # noqa: F401
                      route_setup)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

N = 300


def _records(start: int, n: int) -> list[dict]:
    return [{"record_id": f"hr-{i}", "customer_id": f"C{i:010d}", "name": f"Person Number{i}",
             "consent": {"analytics": True}} for i in range(start, start + n)]


def _configmap(root, text: str, version: str) -> None:
    """Write ``text`` as a new ConfigMap version and swap the ``..data`` symlink to it atomically."""
    vdir = root / f"..{version}"
    vdir.mkdir()
    (vdir / "policy.yaml").write_text(text, encoding="utf-8")
    tmp = root / "..data_tmp"
    tmp.symlink_to(vdir.name)
    os.replace(tmp, root / "..data")
    if not (root / "policy.yaml").is_symlink():
        (root / "policy.yaml").symlink_to("..data/policy.yaml")


@pytest.mark.parametrize("plane", ["auto", "python"])  # auto: the native data plane where it is built
def test_hot_reload_swaps_between_batches_via_configmap_symlink(route_setup, tmp_path, plane):
    rs = route_setup
    t = rs.topics
    base = rs.policy.read_text(encoding="utf-8")
    assert "{field: name, action: mask, keep_first: 1}" in base
    v2 = base.replace("{field: name, action: mask, keep_first: 1}", '{field: name, action: redact, value: "[gone]"}')
    broken = v2.replace('action: redact, value: "[gone]"', 'action: redact, valeu: "[gone]"')
    cm = tmp_path / "configmap"
    cm.mkdir()
    _configmap(cm, base, "v1")
    policy = cm / "policy.yaml"

    with DppProcess(policy, rs.bootstrap, rs.workdir, extra=["--reload-interval", "0.5", "--data-plane", plane],
                    name="dpp-reload") as dpp:
        dpp.wait_ready()
        old = _records(0, N)
        produce(rs.bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in old])
        drain(dpp, rs.bootstrap, t, N, 60)
        old_version = {labels["version"] for labels, v in dpp.scrape()["dpp_policy_info"] if v == 1}

        _configmap(cm, v2, "v2")
        dpp.wait_metric("dpp_policy_reloads_total", lambda v: v >= 1, 30, "a successful reload", result="success")
        new_version = {labels["version"] for labels, v in dpp.scrape()["dpp_policy_info"] if v == 1}
        assert new_version and new_version != old_version

        new = _records(N, N)
        produce(rs.bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in new])
        drain(dpp, rs.bootstrap, t, 2 * N, 60)

        _configmap(cm, broken, "v3")
        dpp.wait_metric("dpp_policy_reloads_total", lambda v: v >= 1, 30, "a refused reload", result="error")
        after = _records(2 * N, N)
        produce(rs.bootstrap, t.source, [(r["record_id"].encode(), orjson.dumps(r), None) for r in after])
        samples = drain(dpp, rs.bootstrap, t, 3 * N, 60)
        assert metric(samples, "dpp_policy_reloads_total", result="success") == 1
        assert metric(samples, "dpp_policy_reloads_total", result="error") == 1
        assert {labels["version"] for labels, v in samples["dpp_policy_info"] if v == 1} == new_version
        stderr = dpp.stderr()

    sink = {r.key: r for r in read_topic(rs.bootstrap, t.sink)}
    assert len(sink) == 3 * N, "every record reached the sink exactly once (by key)"
    for r in old:
        rec = sink[r["record_id"].encode()]
        assert orjson.loads(rec.value)["name"] == "P" + re.sub(r"[A-Za-z0-9]", "*", r["name"][1:])
        assert rec.header("dpp-policy").endswith("@" + next(iter(old_version)))
    for r in new + after:
        rec = sink[r["record_id"].encode()]
        assert orjson.loads(rec.value)["name"] == "[gone]"
        assert rec.header("dpp-policy").endswith("@" + next(iter(new_version)))
    # the refused update is logged with its location, and no value is in the log
    assert re.search(r'"policy reload failed; keeping the running policy".*"line":\s*\d+.*valeu', stderr)
    assert "Person Number" not in stderr
