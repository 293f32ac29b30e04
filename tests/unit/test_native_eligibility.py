"""Which routes the native data plane runs (proxy.stream.nativeworker), without a broker: the
eligibility table, ``data_plane`` choices, the configuration handed to librdkafka, and the
Plane's errors for options librdkafka does not know (naming the property, never its value)."""
from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from proxy.stream import native, nativeworker
from proxy.stream.engine import EngineConfig

built = pytest.mark.skipif(native.available() is not None, reason=str(native.available()))

CFG = EngineConfig(bootstrap_servers="127.0.0.1:1")


def route(**over):
    base = dict(name="r", format="json", exactly_once=False, has_parts=False, subject_mode=False, consent=None,
                uses_record_timestamp=False)
    return SimpleNamespace(**{**base, **over})


@pytest.mark.parametrize("over, built_why, why", [
    ({}, "", None),
    ({}, "proxy._dataplane is not built (ImportError)", "not built"),
    ({"format": "avro"}, "", "format avro"),
    ({"format": "string"}, "", "format string"),
    ({"exactly_once": True}, "", "exactly_once"),
    ({"has_parts": True}, "", "key or header rules"),
    ({"subject_mode": True}, "", "subject_keys"),
    ({"consent": object()}, "", "consent"),
    ({"uses_record_timestamp": True}, "", "record timestamps"),
])
def test_eligibility_table(over, built_why, why):
    got = nativeworker.ineligible(route(**over), CFG, built=built_why)
    if why is None:
        assert got is None
    else:
        assert got is not None and why in got


@pytest.mark.parametrize("props, why", [
    ({"security.protocol": "SASL_SSL"}, "SASL"),
    ({"security.protocol": "sasl_plaintext"}, "SASL"),
    ({"security.protocol": "SSL"}, None),
    ({}, None),
])
def test_eligibility_by_client_security(props, why, monkeypatch):
    monkeypatch.setattr(nativeworker.clientconfig, "_EXTRA", dict(props))
    got = nativeworker.ineligible(route(), CFG, built="")
    assert (got is None) if why is None else (why in got)


@pytest.mark.parametrize("conf, want", [
    ({"a": True, "b": False}, {"a": "true", "b": "false"}),
    ({"n": 5, "f": 0.5, "s": "x"}, {"n": "5", "f": "0.5", "s": "x"}),
    ({"error_cb": print, "logger": logging.getLogger("x"), "k": "v"}, {"k": "v"}),
])
def test_librdkafka_conf_table(conf, want):
    assert nativeworker.librdkafka_conf(conf) == want


def test_native_on_an_ineligible_route_fails_at_start_with_the_reason():
    cfg = EngineConfig(bootstrap_servers="127.0.0.1:1", data_plane="native")
    with pytest.raises(ValueError, match="route r: data_plane native is not possible: .*exactly_once"):
        nativeworker.make_worker(route(exactly_once=True), None, cfg, None, threading.Event())


def test_an_unknown_data_plane_is_refused():
    cfg = EngineConfig(bootstrap_servers="127.0.0.1:1", data_plane="turbo")
    with pytest.raises(ValueError, match="auto, python, native"):
        nativeworker.make_worker(route(), None, cfg, None, threading.Event())


def test_plan_for_uses_the_compilers_json_plan_when_it_has_one():
    assert nativeworker.plan_for(route()) is None
    plan = object()
    assert nativeworker.plan_for(route(json_plan=plan)) is plan


def test_the_b_policy_gets_a_json_plan_the_plane_accepts(monkeypatch):
    """The bench's (b) policy compiles to a JsonPlan (when proxy._native is built) and the plane
    takes it: the native plane then runs the rules, not only the Kafka loop."""
    from proxy.policy import jsonplan
    from proxy.policy.compiler import compile_policy
    from proxy.policy.loader import load_policy
    if not jsonplan.enabled():
        pytest.skip("proxy._native without JsonPlan")
    monkeypatch.setenv("DPP_KEY_PSEUDONYM", "00" * 32)
    monkeypatch.setenv("DPP_KEY_DEAD_LETTER", "11" * 32)
    r = compile_policy(load_policy("loadtests/policies/b-no-fpe.yaml")).routes[0]
    assert r.record_path == "native-json"
    assert nativeworker.plan_for(r) is r.json_plan is not None


@built
@pytest.mark.parametrize("consumer, producer, match", [
    ({"group.id": "g", "no.such.option": "secret-value"}, {}, "consumer property no.such.option"),
    ({"group.id": "g"}, {"sasl.kerberos.bogus": "secret-value"}, "producer property sasl.kerberos.bogus"),
    ({"group.id": "g", "session.timeout.ms": "secret-value"}, {}, "invalid value for the consumer property"),
])
def test_plane_names_an_unknown_option_never_its_value(consumer, producer, match):
    with pytest.raises(ValueError, match=match) as e:
        native.plane({"bootstrap.servers": "127.0.0.1:1", **consumer},
                     {"bootstrap.servers": "127.0.0.1:1", **producer}, "s", "d")
    assert "secret-value" not in str(e.value)


@built
def test_plane_refuses_an_object_that_is_not_a_json_plan():
    """TypeError once proxy._native exports its C API; RuntimeError (rebuild) while it does not."""
    with pytest.raises((TypeError, RuntimeError), match="JsonPlan"):
        native.plane({"group.id": "g", "bootstrap.servers": "127.0.0.1:1"}, {"bootstrap.servers": "127.0.0.1:1"},
                     "s", "d", plan={"not": "a plan"})


@pytest.fixture
def policy_b(monkeypatch):
    from proxy.policy.compiler import compile_policy
    from proxy.policy.loader import load_policy
    monkeypatch.setenv("DPP_KEY_PSEUDONYM", "11" * 32)
    monkeypatch.setenv("DPP_KEY_DEAD_LETTER", "22" * 32)
    from pathlib import Path
    return compile_policy(load_policy(Path(__file__).parents[2] / "loadtests" / "policies" / "b-no-fpe.yaml"))


@pytest.mark.parametrize("mode, want", [("auto", "native"), ("python", "python"), ("native", "native")])
def test_make_worker_chooses_the_data_plane(policy_b, mode, want):
    from proxy.metrics import Metrics
    if native.available() is not None and want == "native":
        pytest.skip(str(native.available()))
    cfg = EngineConfig(bootstrap_servers="127.0.0.1:1", data_plane=mode)
    w = nativeworker.make_worker(policy_b.routes[0], policy_b, cfg, Metrics(), threading.Event())
    try:
        assert w.data_plane == want
        assert isinstance(w, nativeworker.NativeRouteWorker) == (want == "native")
    finally:
        w._close()


@built
@pytest.mark.parametrize("mode", ["auto", "native"])
def test_an_option_the_system_librdkafka_lacks_falls_back_or_fails(policy_b, mode, monkeypatch, caplog):
    """confluent-kafka bundles a newer librdkafka than the system's (2.0.2): an option only it
    knows makes the Plane refuse; auto runs the Python worker after one warning, native fails."""
    from proxy.metrics import Metrics

    def refuse(*a, **k):
        raise ValueError("librdkafka 2.0.2 does not know the consumer property newer.option")
    monkeypatch.setattr(native, "plane", refuse)
    cfg = EngineConfig(bootstrap_servers="127.0.0.1:1", data_plane=mode)
    if mode == "native":
        with pytest.raises(ValueError, match="newer.option"):
            nativeworker.make_worker(policy_b.routes[0], policy_b, cfg, Metrics(), threading.Event())
        return
    with caplog.at_level(logging.WARNING, logger="proxy.stream"):
        w = nativeworker.make_worker(policy_b.routes[0], policy_b, cfg, Metrics(), threading.Event())
    try:
        assert w.data_plane == "python"
        lines = [r for r in caplog.records if r.getMessage() == "route runs on the Python data plane"]
        assert len(lines) == 1 and "newer.option" in lines[0].reason
    finally:
        w._close()
