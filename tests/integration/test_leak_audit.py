"""Leak audit on the broker path: no personal value, key or password anywhere ``dpp run`` writes.

One real ``dpp run`` (``--log-level debug``) on the real broker runs the shipped example policies side by
side, each route on its own topics: ``customer-pii.yaml`` (mask, FF1, pseudonymize, drop, redact, a
consent block), ``support-minimum-necessary.yaml`` (an allow-list and ``detect`` on free text),
``crypto-shredding.yaml`` (tokenize, per-subject keys in a compacted topic) and the key and header
rules of ``customer-pii-avro.yaml`` on a JSON route (the mobile number as record key, the e-mail and
phone numbers in headers), run ``exactly_once`` so the transactional path is audited too. Every route gets the corpus of ``tests/leakkit.py``: generated customers,
notes with the detectors' test identifiers, consent-withdrawn records, every malformed payload of
``proxy.generator.malformed_cases`` and wrong-typed, wrong-shaped and hostile JSON around personal
values, keys and headers the key/header rules cannot read.

Read back with kafka-python, then searched (``leakkit.search``: every variant and encoding, each
place also decoded) for every original personal value, the hex keys of the environment and the
Kafka password given to the worker:

* per route: the sink's values, keys and headers, the dead-letter topic's keys, for the values that
  route protects (a route may pass a field by design: ``crm-to-fraud`` keys and keeps ``customer_id``
  and ``birth_date``, the support route keeps the note's words around what ``detect`` replaced);
* everywhere, for every value: the dead-letter payloads and headers, the subject-key topic, the
  worker's stdout and stderr, ``/metrics``, ``/healthz`` and ``/readyz``.

Zero found. The same search over the source topics finds every value (the positive control), and
tests/unit/test_leakkit.py shows it finds planted values in every encoding it claims.
"""
from __future__ import annotations

import os
import secrets
from collections import Counter
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml

from leakkit import Case, Secret, all_secrets, corpus, count_forms, search

from .helpers import (KAFKA_PYTHON_WARNINGS, ROOT, DppProcess, create_topics, delete_group, delete_topics, group_lag,
                      metric, parse_metrics, produce, read_topic, wait_until)

pytestmark = [pytest.mark.integration, *KAFKA_PYTHON_WARNINGS]

EXAMPLES = ROOT / "policies" / "examples"
KEY_VARS = ("DPP_KEY_PSEUDONYM", "DPP_KEY_FPE", "DPP_KEY_DEAD_LETTER", "DPP_KEY_TOKEN", "DPP_KEY_SUBJECT_KEK")
PASSWORD_VAR = "DPP_LEAK_AUDIT_PASSWORD"

ANALYTICS, SUPPORT, FRAUD, KEYED = "crm-to-analytics", "crm-to-support-quality", "crm-to-fraud", "crm-to-analytics-keyed"
#: (example file, route in it, route name here)
ROUTES = [("customer-pii.yaml", ANALYTICS, ANALYTICS), ("support-minimum-necessary.yaml", SUPPORT, SUPPORT),
          ("crypto-shredding.yaml", FRAUD, FRAUD), ("customer-pii-avro.yaml", "crm-to-analytics-avro", KEYED)]
EVERY_KIND = {"customer_id", "name", "id_number", "mobile", "email", "bank_card", "birth_date", "street", "postcode",
              "card_number", "note", "note_pii", "malformed", "key-header:mobile", "key-header:email"}
#: What each route passes on purpose (its policy says so), so its sink and dead-letter keys are not
#: searched for it: the fraud route is keyed by customer_id and has no rule for it or birth_date; the
#: support route keeps the words of the note around the identifiers ``detect`` replaces.
PASSED_BY_POLICY = {ANALYTICS: set(), SUPPORT: {"note"}, FRAUD: {"customer_id", "birth_date"}, KEYED: set()}


def audit_policy(directory: Path, prefix: str) -> tuple[Path, dict[str, dict]]:
    """One policy file with the routes of :data:`ROUTES` on topics ``<prefix>.<route>.<name>``; returns
    its path and ``{route: its topics}``. The keyed route is the Avro example's on JSON values."""
    keys: dict = {}
    routes, topics = [], {}
    for file, name, new_name in ROUTES:
        doc = yaml.safe_load((EXAMPLES / file).read_text(encoding="utf-8"))
        for k, spec in doc["keys"].items():
            assert keys.setdefault(k, spec) == spec, f"key {k} differs between the examples"
        (route,) = [r for r in doc["routes"] if r["name"] == name]
        route.pop("format", None)
        route["name"] = new_name
        if new_name == KEYED:   # the transactional producer's path is audited too
            route["processing_guarantee"] = "exactly_once"
        t = {k: f"{prefix}.{new_name}.{route[k]}" for k in ("source", "sink", "dead_letter")}
        route.update(t, consumer_group=f"{prefix}.{new_name}.dpp")
        if "subject_keys" in route:
            route["subject_keys"]["topic"] = t["subject_keys"] = f"{prefix}.{new_name}.{route['subject_keys']['topic']}"
        t["group"] = route["consumer_group"]
        routes.append(route)
        topics[new_name] = t
    assert {spec["name"] for spec in keys.values()} == set(KEY_VARS)
    path = directory / "leak-audit.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "leak-audit", "keys": keys, "routes": routes},
                                   allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, topics


def messages(route: str, cases: list[Case]):
    """The corpus as ``route`` gets it: the keyed route with the cases' keys and headers; the others
    (no key or header rules: both pass unchanged) keyed by the case name, or the crypto-shredding route
    by customer_id as its example says, with a trace header only."""
    for c in cases:
        if route == KEYED:
            yield c.key, c.value, c.headers
            continue
        key = c.name.encode()
        if route == FRAUD:
            try:
                key = orjson.loads(c.value)["customer_id"].encode()
            except Exception:  # noqa: BLE001 - malformed or wrong-shaped: keep the case name
                pass
        yield key, c.value, [("trace-id", c.name.encode())]


def key_material(env: dict[str, str]) -> list[Secret]:
    """The hex keys (as text, and their bytes) and the password, as secrets."""
    out = []
    for var in KEY_VARS:
        out += [Secret("key", env[var], var), Secret("key", bytes.fromhex(env[var]), var),
                Secret("key", env[var][:16], var + "[:16]")]
    out.append(Secret("password", env[PASSWORD_VAR], PASSWORD_VAR))
    return out


def _headers_blob(r) -> bytes:
    return b"\n".join(k.encode("utf-8", "surrogateescape") + b"=" + (v or b"") for k, v in r.headers)


def _http(port: int, path: str) -> bytes:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:   # /readyz answers 503 when not ready: its body is what we search
        return e.read()


def test_no_personal_value_key_or_password_leaves_dpp_in_clear(kafka_bootstrap, topic_prefix, tmp_path):
    bootstrap = kafka_bootstrap
    env = dict(os.environ, **{v: secrets.token_hex(32) for v in KEY_VARS},
               **{PASSWORD_VAR: secrets.token_urlsafe(24)})
    policy, topics = audit_policy(tmp_path, topic_prefix)
    cases = corpus()
    personal = all_secrets(cases)
    assert {s.kind for s in personal} == EVERY_KIND
    keys = key_material(env)
    audit_topic = f"{topic_prefix}.audit"   # the records of processing, written every second
    created = [t[k] for t in topics.values() for k in ("source", "sink", "dead_letter", "subject_keys") if k in t]
    created.append(audit_topic)
    create_topics(bootstrap, [t["source"] for t in topics.values()], partitions=1)
    try:
        for route, t in topics.items():
            produce(bootstrap, t["source"], messages(route, cases))
        # the password reaches the Kafka client as configured (env:NAME, the documented way)
        extra = ["--log-level", "debug", "--reload-interval", "0", "--audit-topic", audit_topic,
                 "--processing-record-interval", "1s"]
        cmd_env = dict(env, DPP_KAFKA_CONFIG_FILE=str(_kafka_config(tmp_path)))
        with DppProcess(policy, bootstrap, tmp_path, extra=extra, env=cmd_env) as dpp:
            port = dpp.wait_ready()
            dpp.wait_metric("dpp_records_consumed_total", lambda v: v >= len(cases) * len(topics), 180,
                            "every route to consume the corpus")
            for t in topics.values():
                wait_until(lambda t=t: group_lag(bootstrap, t["group"], t["source"]) == 0, 60,
                           f"lag 0 on {t['source']}", dpp.stderr_tail)
            metrics_text = _http(port, "/metrics")
            health = [_http(port, "/healthz"), _http(port, "/readyz")]
            assert dpp.stop() == 0, dpp.stderr_tail()
        logs = dpp.stderr_path.read_bytes() + b"\n" + dpp.stdout_path.read_bytes()

        read = {route: {k: read_topic(bootstrap, t[k]) for k in ("source", "sink", "dead_letter", "subject_keys")
                        if k in t} for route, t in topics.items()}

        # -- the run did what the audit needs: records in every outcome, counts that add up ----------
        samples = parse_metrics(metrics_text.decode())
        for route in topics:
            consumed = metric(samples, "dpp_records_consumed_total", route=route)
            produced = metric(samples, "dpp_records_produced_total", route=route)
            blocked = metric(samples, "dpp_records_blocked_total", route=route)
            dead = metric(samples, "dpp_records_dead_lettered_total", route=route)
            assert consumed == len(cases) == produced + blocked + dead, (route, consumed, produced, blocked, dead)
            assert len(read[route]["sink"]) == produced > 0 and len(read[route]["dead_letter"]) == dead > 0
            if route != FRAUD:   # the crypto-shredding example has no block rule
                assert blocked > 0, f"{route}: no record blocked (the corpus has consent withdrawals)"
            assert dead >= sum(c.expect == "dead-letter" for c in cases), route
        audit_docs = read_topic(bootstrap, audit_topic)
        processing = [orjson.loads(r.value) for r in audit_docs]
        assert {d["route"] for d in processing if d["type"] == "processing"} == set(topics)
        keyed_stages = {r.header("dpp.stage") for r in read[KEYED]["dead_letter"]}
        assert {"key", "headers"} <= keyed_stages, f"key and header failures not dead-lettered: {keyed_stages}"
        assert read[FRAUD]["subject_keys"], "the crypto-shredding route wrote no subject key"
        for route in topics:   # the record over limits.max_depth went where it must, sealed
            assert "limit-depth" in {r.header("dpp.reason") for r in read[route]["dead_letter"]}, route
        assert logs.count(b"\n") > 20 and b'"level":"debug"' in logs, "no debug log lines to search"
        assert b"dpp_records_consumed_total" in metrics_text
        assert metric(samples, "dpp_delivery_failures_total", route=KEYED, topic_kind="transaction") == 0
        assert any(lab == {"route": KEYED, "topic_kind": "transaction"}
                   for lab, _ in samples["dpp_delivery_failures_total"]), "exactly_once route without its series"

        # -- positive control: the same search finds every value in the source topics ---------------
        sources = {f"{route}/source": [x for r in read[route]["source"] for x in (r.key, r.value, _headers_blob(r))]
                   for route in topics}
        control = search(personal, sources)
        found = {h.index for h in control}
        assert found == set(range(len(personal))), (
            f"the search misses {len(personal) - len(found)} of {len(personal)} values in the source topics")

        # -- the audit --------------------------------------------------------------------------------
        per_route_hits = []
        for route in topics:
            protected = [s for s in personal if s.kind not in PASSED_BY_POLICY[route]]
            sink, dead = read[route]["sink"], read[route]["dead_letter"]
            per_route_hits += search(protected, {
                f"{route}/sink.value": [r.value for r in sink], f"{route}/sink.key": [r.key for r in sink],
                f"{route}/sink.headers": [_headers_blob(r) for r in sink],
                f"{route}/dead_letter.key": [r.key for r in dead]})
        everywhere = {f"{route}/dead_letter.value": [r.value for r in read[route]["dead_letter"]] for route in topics}
        everywhere |= {f"{route}/dead_letter.headers": [_headers_blob(r) for r in read[route]["dead_letter"]]
                       for route in topics}
        everywhere[f"{FRAUD}/subject_keys"] = [x for r in read[FRAUD]["subject_keys"]
                                               for x in (r.key, r.value, _headers_blob(r))]
        everywhere["records of processing (audit topic)"] = [r.value for r in audit_docs]
        everywhere |= {"worker log (stdout+stderr, debug)": [logs], "/metrics": [metrics_text],
                       "/healthz+/readyz": health}
        global_hits = search(personal, everywhere)
        every_place = {f"{route}/{part}": [x for r in read[route][topic] for x in (r.key, r.value, _headers_blob(r))]
                       for route in topics for topic, part in (("sink", "sink"), ("dead_letter", "dead_letter"))}
        every_place |= everywhere
        key_hits = search(keys, every_place)

        n_places = 4 * len(topics) + len(everywhere)
        print(f"\nleak audit: {len(cases)} cases x {len(topics)} routes; {len(personal)} personal values "
              f"({count_forms(personal)} variant forms), {len(keys)} key/password secrets "
              f"({count_forms(keys)} forms); {n_places} places; records read: "
              + ", ".join(f"{r}: sink {len(read[r]['sink'])}, dead-letter {len(read[r]['dead_letter'])}" for r in topics)
              + f"; log {len(logs)} bytes, /metrics {len(metrics_text)} bytes; "
              f"found: {len(per_route_hits)} + {len(global_hits)} personal, {len(key_hits)} key/password")
        for route in topics:
            reasons = Counter(f"{r.header('dpp.stage')}/{r.header('dpp.reason')}" for r in read[route]["dead_letter"])
            print(f"  {route} dead letters: " + ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())))
        hits = per_route_hits + global_hits + key_hits
        assert not hits, "leaked (place, kind, form, case; values not shown):\n" + "\n".join(
            sorted({f"  {h.place}: {h.kind} as {h.form} from {h.case}" for h in hits}))
    finally:
        delete_topics(bootstrap, created)
        for t in topics.values():
            delete_group(bootstrap, t["group"])


def _kafka_config(directory: Path) -> Path:
    """librdkafka properties with a SASL user and password (``env:``): unused on the plaintext broker,
    but the worker holds the password, so it is searched for like the keys. ``debug=conf,msg``: the
    clients log their configuration and every message event at debug level, into the searched log."""
    path = directory / "kafka.properties"
    path.write_text(f"sasl.username=leak-audit\nsasl.password=env:{PASSWORD_VAR}\ndebug=conf,msg\n",
                    encoding="utf-8")
    return path
