"""A tiny faust-streaming app that protects one dpp route, run as a real worker by
``tests/integration/test_faust_integration.py``::

    python -m faust -A tests.integration.faust_app worker --without-web -l warning

Configuration (environment, all set by the test):

* ``DPP_FAUST_BROKER``: bootstrap ``host:port`` of the Kafka broker;
* ``DPP_FAUST_POLICY``: policy YAML file (its route's topics are the test's unique topics);
* ``DPP_FAUST_APP_ID``: faust app id (= consumer group of the source topic);
* ``DPP_FAUST_DATADIR``: faust's data directory (a temporary folder);
* ``DPP_FAUST_METRICS_PORT``: port of the dpp ``/metrics`` endpoint this app serves on 127.0.0.1;
* the policy's key variables (``DPP_KEY_*``).

The app has an agent of its own besides dpp's, like an existing application would.
"""
from __future__ import annotations

import os

import faust

from proxy.integrations.faust import protect_stream
from proxy.metrics import Metrics
from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy

app = faust.App(
    os.environ.get("DPP_FAUST_APP_ID", "dpp-faust-test"),
    broker=f"kafka://{os.environ.get('DPP_FAUST_BROKER', '127.0.0.1:9092')}",
    datadir=os.environ.get("DPP_FAUST_DATADIR", "/tmp/dpp-faust-data"),
    store="memory://",
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=False,      # the test creates every topic; the app must not invent any
    topic_disable_leader=True,      # no leader-election topic needed for this app
    broker_commit_interval=0.5,
    producer_acks=-1,
)

policy = compile_policy(load_policy(os.environ["DPP_FAUST_POLICY"]))
metrics = Metrics()
protected = protect_stream(app, policy, metrics=metrics, publish_interval_s=0.2)

# An agent the application already had: counts heartbeats on a topic of its own (unused here),
# to show dpp's agent living next to other agents of the same app.
heartbeats = app.topic(f"{policy.routes[0].source}.heartbeat", value_type=bytes, value_serializer="raw")


@app.agent(heartbeats)
async def existing_agent(stream):  # pragma: no cover - no records are sent to it
    async for _ in stream:
        pass


@app.task
async def serve_metrics() -> None:
    """Serve dpp's metrics when the worker starts (the test polls them)."""
    port = int(os.environ.get("DPP_FAUST_METRICS_PORT", "0"))
    metrics.serve(port, addr="127.0.0.1")
