"""Adversarial records through ``dpp run`` on the real broker (the engine's batch path).

Findings of the adversarial review that reached the sink or stopped the worker before their fix:

* ``cards[1]`` (fpe) + ``cards[0]`` (drop): the batch path deleted ``cards[0]`` before writing the
  batch's FF1 results back by index, so the sink held ``cards[1]`` in clear;
* ``nums[*]`` (fpe) + ``nums[0]`` (drop): the write-back raised ``IndexError`` out of the batch, the
  worker stopped without committing, and every restart died on the same record;
* allow-list: ``pair[1]`` (mask) + ``pair[2]`` (keep) ran on the compacted array, so the sink held
  ``pair[1]`` in clear and ``pair[2]`` masked; an object member named ``*`` passed as ``[*]``;
* FPE over digits left full-width digits in place: ``4111１１１１11111111`` kept four in clear.

The test checks every record's outcome, that no source value is in clear in the sink, the
dead-letter topic (payload or headers) or the proxy's stderr, that the dead-lettered record opens
to its exact bytes, and that the worker committed everything and stops cleanly (exit 0).
"""
from __future__ import annotations

import os
import secrets

import orjson
import pytest

from proxy.crypto.ff1 import FF1
from proxy.stream.deadletter import open_envelope

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, create_topics, delete_group, delete_topics, drain,
                      metric, produce, read_topic)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

CARDS = ["4000000000000002", "4111111111111111", "5500000000000004"]
NUMS = ["6222021234567890", "6222029876543210", "6222025555555555"]
PAIR = ["13900001111", "13912345678", "13987654321"]
VARIANT = "4111１１１１11111111"
STAR = "sekret-star-value"
ALL_SECRETS = CARDS + NUMS + PAIR[:2] + [VARIANT, "11111111", STAR]

POLICY = """version: 1
name: adv-broker
keys:
  fpe: {{source: env, name: ADV_KEY_FPE}}
  dlq: {{source: env, name: ADV_KEY_DLQ}}
routes:
  - name: adv
    source: {p}.src
    sink: {p}.sink
    dead_letter: {p}.dlq
    dead_letter_key: dlq
    consumer_group: {p}.dpp
    unlisted_fields: drop
    rules:
      - {{field: id, action: keep}}
      - {{field: "cards[1]", action: fpe, key: fpe}}
      - {{field: "cards[0]", action: drop}}
      - {{field: "nums[*]", action: fpe, key: fpe}}
      - {{field: "nums[0]", action: drop}}
      - {{field: "pair[1]", action: mask}}
      - {{field: "pair[2]", action: keep}}
      - {{field: card, action: fpe, key: fpe}}
      - {{field: "a[*]", action: keep}}
"""


@pytest.fixture
def adv_route(kafka_bootstrap, topic_prefix, tmp_path):
    p = topic_prefix
    topics = [f"{p}.src", f"{p}.sink", f"{p}.dlq"]
    create_topics(kafka_bootstrap, topics, partitions=1)
    path = tmp_path / "adv.yaml"
    path.write_text(POLICY.format(p=p), encoding="utf-8")
    keys = {"ADV_KEY_FPE": secrets.token_hex(32), "ADV_KEY_DLQ": secrets.token_hex(32)}
    try:
        yield p, path, keys
    finally:
        delete_topics(kafka_bootstrap, topics)
        delete_group(kafka_bootstrap, f"{p}.dpp")


def test_adversarial_records_on_the_broker(kafka_bootstrap, adv_route, tmp_path):
    p, policy, keys = adv_route
    records = [
        {"id": 1, "cards": CARDS},
        {"id": 2, "nums": NUMS},
        {"id": 3, "pair": PAIR},
        {"id": 4, "card": VARIANT},
        {"id": 5, "a": {"*": STAR}, "b": STAR},
        {"id": 6, "card": "4111-1111-1111-1111"},
    ]
    payloads = [orjson.dumps(r) for r in records]
    produce(kafka_bootstrap, f"{p}.src", [(str(r["id"]).encode(), v, None) for r, v in zip(records, payloads)])

    with DppProcess(policy, kafka_bootstrap, tmp_path, env=dict(os.environ, **keys)) as dpp:
        dpp.wait_ready()
        samples = drain(dpp, kafka_bootstrap, _Topics(p), len(records), timeout_s=90)
        assert metric(samples, "dpp_records_produced_total", route="adv") == 5
        assert metric(samples, "dpp_records_dead_lettered_total", route="adv", reason="fpe-variant-characters") == 1
        assert dpp.stop() == 0, dpp.stderr_tail()
        stderr = dpp.stderr()

    sink = {int(r.key): r for r in read_topic(kafka_bootstrap, f"{p}.sink")}
    dead = read_topic(kafka_bootstrap, f"{p}.dlq")
    assert sorted(sink) == [1, 2, 3, 5, 6] and len(dead) == 1

    ff1 = FF1(bytes.fromhex(keys["ADV_KEY_FPE"]), "0123456789")
    out = {k: orjson.loads(r.value) for k, r in sink.items()}
    assert len(out[1]["cards"]) == 1
    assert ff1.decrypt(out[1]["cards"][0], b"field:adv-broker:cards[1]") == CARDS[1]
    assert [ff1.decrypt(v, b"field:adv-broker:nums[*]") for v in out[2]["nums"]] == NUMS[1:]
    assert out[3] == {"id": 3, "pair": ["*" * 11, PAIR[2]]}
    assert out[5] == {"id": 5, "a": {}}
    assert out[6]["card"] != "4111-1111-1111-1111" and len(out[6]["card"]) == 19

    d = dead[0]
    headers = {k: v.decode() for k, v in d.headers}
    assert headers["dpp.reason"] == "fpe-variant-characters" and headers["dpp.rule"] == "card"
    assert open_envelope(bytes.fromhex(keys["ADV_KEY_DLQ"]), d.value, headers) == payloads[3]

    for secret in ALL_SECRETS:
        enc = secret.encode()
        for r in sink.values():
            assert enc not in r.value, f"{secret!r} in clear in the sink"
        assert enc not in d.value and all(enc not in v for _, v in d.headers), f"{secret!r} in the dead letter"
        assert secret not in stderr, f"{secret!r} in the proxy's stderr"


class _Topics:
    """The two attributes :func:`helpers.drain` reads."""

    def __init__(self, p: str):
        self.group, self.source = f"{p}.dpp", f"{p}.src"
