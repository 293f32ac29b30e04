"""``dpp --kafka-config`` / ``--kafka-config-file``: librdkafka properties for every client."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from proxy.cli import main
from proxy.stream import clientconfig as cc


@pytest.fixture(autouse=True)
def _reset():
    yield
    cc.set_extra({})


@pytest.mark.parametrize("items,env,expected", [
    (["security.protocol=SASL_SSL"], {}, {"security.protocol": "SASL_SSL"}),
    ([" sasl.username = dpp "], {}, {"sasl.username": "dpp"}),
    (["sasl.password=env:KP"], {"KP": "s3cr3t"}, {"sasl.password": "s3cr3t"}),
    (["a=1", "a=2"], {}, {"a": "2"}),
    (["ssl.key.password="], {}, {"ssl.key.password": ""}),
])
def test_parse_items(items, env, expected):
    assert cc.parse_items(items, env) == expected


@pytest.mark.parametrize("items,needle", [
    (["novalue"], "KEY=VALUE"),
    (["=x"], "KEY=VALUE"),
    (["sasl.password=env:MISSING"], "MISSING is not set"),
    (["bootstrap.servers=h:1"], "--bootstrap-servers"),
])
def test_parse_items_errors_never_echo_values(items, needle):
    with pytest.raises(cc.ClientConfigError) as ei:
        cc.parse_items(items, {})
    assert needle in str(ei.value)


def test_read_file_and_client_config(tmp_path):
    f = tmp_path / "kafka.properties"
    f.write_text("# comment\n! also a comment\n\nsecurity.protocol=SASL_SSL\nsasl.password=env:KP\n")
    cfg = cc.read_file(f, {"KP": "pw"})
    assert cfg == {"security.protocol": "SASL_SSL", "sasl.password": "pw"}
    cc.set_extra(cfg)
    assert cc.client_config("h:9092", **{"group.id": "g"}) == {
        "bootstrap.servers": "h:9092", "security.protocol": "SASL_SSL", "sasl.password": "pw", "group.id": "g"}


def test_cli_installs_properties_and_refuses_bad_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("KP", "hunter2")
    res = CliRunner().invoke(main, ["--kafka-config", "client.id=x", "--kafka-config", "sasl.password=env:KP",
                                    "schema"])
    assert res.exit_code == 0
    assert cc.client_config("b:1") == {"bootstrap.servers": "b:1", "client.id": "x", "sasl.password": "hunter2"}
    res = CliRunner().invoke(main, ["--kafka-config", "sasl.password=env:NOT_SET_ANYWHERE", "schema"])
    assert res.exit_code == 2 and "NOT_SET_ANYWHERE is not set" in res.output
    assert "hunter2" not in res.output
