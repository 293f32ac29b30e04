"""Consent on the real broker (route ``consent:``): 20 withdrawals written to the consent topic while
50,000 records of those subjects and others stream through; no record of a subject written to the
source after its withdrawal was acknowledged reaches the sink, records of other subjects are all
there, every record is accounted for (sink or a counted consent block), and the time from each
withdrawal to its application in the worker is reported (p99 under 2 s). A worker started after
withdrawals applies them from its first record. Sink and source are read back with kafka-python."""
from __future__ import annotations

import os
import threading
import time

import orjson
import pytest

from .helpers import (KAFKA_PYTHON_WARNINGS, DppProcess, create_topics, delete_topics, drain, generated_records,
                      metric, produce, read_topic, route_setup)  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

ROUTE = "crm-to-analytics"
N = 50_000
SUBJECTS = [f"S{i:04d}" for i in range(400)]
WITHDRAWN = SUBJECTS[:20]
COMPACT = {"cleanup.policy": "compact"}


def _consent_policy(rs, topic: str) -> None:
    text = rs.policy.read_text(encoding="utf-8")
    anchor = "    dead_letter_key: dead-letter\n"
    assert text.count(anchor) == 1
    rs.policy.write_text(text.replace(anchor, anchor + "    purpose: marketing\n"
                                      f"    consent: {{subject_field: customer_id, topic: {topic}, unknown: block}}\n"),
                         encoding="utf-8")


def _consent(bootstrap: str, topic: str, subject: str, state: str) -> None:
    from proxy.policy.consent import consent_document
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    produce(bootstrap, topic, [(subject.encode(), consent_document(subject, {"marketing": state}, now), None)],
            client={"partitioner": "murmur2_random"})


class _ConsentWriter:
    """One connected producer for consent records (acks=all, no linger), so a record's Kafka
    timestamp is the moment it is sent, not the moment a new client started connecting."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import Producer
        self.topic = topic
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
                           "partitioner": "murmur2_random"})
        self.p.list_topics(topic, timeout=10)

    def write(self, subject: str, state: str) -> float:
        """Write one consent record; returns the time (epoch s) the broker acknowledged it."""
        from proxy.policy.consent import consent_document
        errs: list = []
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        self.p.produce(self.topic, consent_document(subject, {"marketing": state}, now), subject.encode(),
                       on_delivery=lambda e, m: errs.append(e) if e else None)
        assert self.p.flush(30) == 0 and not errs, errs
        return time.time()


def _records(n: int, offset: int = 0) -> list[dict]:
    out = []
    for i, r in enumerate(generated_records(n)):
        r = dict(r, customer_id=SUBJECTS[(i + offset) % len(SUBJECTS)], record_id=f"{r['record_id']}-{offset}")
        r["consent"] = dict(r["consent"], analytics=True)  # the example's own block rule never fires here
        out.append(r)
    return out


def test_withdrawals_during_a_run_apply_to_every_later_record(route_setup, topic_prefix):
    rs = route_setup
    t = rs.topics
    topic = f"{topic_prefix}.consent"
    create_topics(rs.bootstrap, [topic], topic_config=COMPACT)
    try:
        _consent_policy(rs, topic)
        produce(rs.bootstrap, topic, [(s.encode(), orjson.dumps({"subject": s, "purposes": {"marketing": "granted"},
                                                                 "updated_at": "2026-01-01T00:00:00Z"}), None)
                                      for s in SUBJECTS], client={"partitioner": "murmur2_random"})
        records = _records(N)
        emitted: dict[bytes, float] = {}   # record key -> time its produce() call started (after every earlier ack)
        withdrawn_at: dict[str, float] = {}  # subject -> time the withdrawal was acknowledged

        def stream():
            for i in range(0, N, 500):
                chunk = records[i:i + 500]
                now = time.time()
                for r in chunk:
                    emitted[r["record_id"].encode()] = now
                produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in chunk))
                time.sleep(0.03)

        with DppProcess(rs.policy, rs.bootstrap, rs.workdir, extra=["--batch-size", "500"], name="dpp-consent") as dpp:
            dpp.wait_ready()
            dpp.wait_metric("dpp_consent_subjects", lambda v: v == len(SUBJECTS), 60, "the consent table read")
            producer = threading.Thread(target=stream)
            producer.start()
            dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= 3000, 120, "3000 records consumed")
            writer = _ConsentWriter(rs.bootstrap, topic)
            for s in WITHDRAWN:  # 20 withdrawals while the records stream through
                withdrawn_at[s] = writer.write(s, "withdrawn")
                time.sleep(0.25)
            producer.join(300)
            assert not producer.is_alive()
            samples = drain(dpp, rs.bootstrap, t, N, timeout_s=300)
        source = read_topic(rs.bootstrap, t.source)
        sink = read_topic(rs.bootstrap, t.sink)
        dead = read_topic(rs.bootstrap, t.dead_letter) if metric(samples, "dpp_records_dead_lettered_total") else []
        assert len(source) == N and not dead
        by_key = {r["record_id"].encode(): r for r in records}
        in_sink = {m.key for m in sink}
        assert len(in_sink) == len(sink), "a record reached the sink twice"
        leaked, kept_others = [], 0
        for key, r in by_key.items():
            s = r["customer_id"]
            if s in withdrawn_at and emitted[key] > withdrawn_at[s]:
                if key in in_sink:
                    leaked.append((s, emitted[key] - withdrawn_at[s]))
            elif s not in withdrawn_at:
                assert key in in_sink, "a record of a consenting subject is missing"
                kept_others += 1
        assert not leaked, f"{len(leaked)} records of withdrawn subjects reached the sink after the withdrawal"
        blocked = metric(samples, "dpp_records_blocked_total", route=ROUTE, reason="consent-withdrawn")
        assert blocked + len(sink) == N, "a record is neither in the sink nor a counted consent block"
        assert blocked >= sum(1 for k, r in by_key.items() if r["customer_id"] in withdrawn_at
                              and emitted[k] > withdrawn_at[r["customer_id"]])
        assert kept_others == N - sum(1 for r in records if r["customer_id"] in withdrawn_at)
        # withdrawal -> applied in the worker (Kafka timestamp of the consent record -> table), from the histogram
        count = metric(samples, "dpp_consent_apply_lag_seconds_count")
        within_2s = metric(samples, "dpp_consent_apply_lag_seconds_bucket", le="2.0")
        lag_sum = metric(samples, "dpp_consent_apply_lag_seconds_sum")
        assert count == len(WITHDRAWN), count
        assert within_2s >= 0.99 * count, "p99 of withdrawal -> effect is over 2 s"
        buckets = " ".join(f"<={le}s:{metric(samples, 'dpp_consent_apply_lag_seconds_bucket', le=le):.0f}"
                           for le in ("0.05", "0.1", "0.25", "0.5", "1.0", "2.0"))
        print(f"\nconsent: {len(WITHDRAWN)} withdrawals, mean apply lag {lag_sum / count * 1000:.1f} ms, "
              f"cumulative {buckets}; blocked {blocked:.0f}, sink {len(sink)}, load {os.getloadavg()[0]:.1f}")

        # a worker started after more withdrawals applies them from its first record
        late = SUBJECTS[20:40]
        for s in late:
            _consent(rs.bootstrap, topic, s, "withdrawn")
        more = _records(4000, offset=7)
        produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in more))
        with DppProcess(rs.policy, rs.bootstrap, rs.workdir, extra=["--batch-size", "500"], name="dpp-consent-2") as dpp:
            dpp.wait_ready()
            samples = drain(dpp, rs.bootstrap, t, len(more), timeout_s=180)
        sink2 = {m.key for m in read_topic(rs.bootstrap, t.sink)} - in_sink
        stopped = set(WITHDRAWN) | set(late)
        want = {r["record_id"].encode() for r in more if r["customer_id"] not in stopped}
        assert sink2 == want, (len(sink2), len(want))
        assert metric(samples, "dpp_records_blocked_total", route=ROUTE, reason="consent-withdrawn") == len(more) - len(want)
    finally:
        delete_topics(rs.bootstrap, [topic])


def test_a_missing_consent_topic_holds_the_route(route_setup, topic_prefix):
    """No consent topic: the route waits (/readyz names it), nothing reaches the sink; once the
    topic exists with a grant, the records flow, and only the consenting subject's."""
    import urllib.request
    rs = route_setup
    t = rs.topics
    topic = f"{topic_prefix}.consent-missing"
    _consent_policy(rs, topic)
    records = _records(600)
    produce(rs.bootstrap, t.source, ((r["record_id"].encode(), orjson.dumps(r), None) for r in records))
    try:
        with DppProcess(rs.policy, rs.bootstrap, rs.workdir, name="dpp-consent-missing", create_topics=False) as dpp:
            dpp.wait_ready()
            time.sleep(4)
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://127.0.0.1:{dpp.port}/readyz", timeout=5)
            assert "consent topic" in e.value.read().decode()
            assert metric(dpp.scrape(), "dpp_records_consumed_total") == 0
            create_topics(rs.bootstrap, [topic], topic_config=COMPACT)
            _consent(rs.bootstrap, topic, SUBJECTS[1], "granted")
            samples = drain(dpp, rs.bootstrap, t, len(records), timeout_s=120)
        sink = read_topic(rs.bootstrap, t.sink)
        want = {r["record_id"].encode() for r in records if r["customer_id"] == SUBJECTS[1]}
        assert {m.key for m in sink} == want
        assert metric(samples, "dpp_records_blocked_total", route=ROUTE, reason="consent-missing") == len(records) - len(want)
    finally:
        delete_topics(rs.bootstrap, [topic])
