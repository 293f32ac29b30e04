"""Benchmark row (e): a faust-streaming pass-through agent, for reference.

Run as a faust worker (the harness does this)::

    LT_FAUST_BROKER=127.0.0.1:9092 LT_FAUST_SOURCE=src LT_FAUST_SINK=dst LT_FAUST_APP_ID=group \\
    LT_FAUST_DATADIR=/tmp/faust-data python -m faust -A loadtests.faust_passthrough worker --without-web -l info

The agent copies each record's raw key, value and headers to the sink topic (``bytes`` topics, no
codec) -- the same work as row (a), written the way a faust application would write it. faust
commits the offsets of processed events every ``broker_commit_interval`` (0.5 s here) and its
producer (aiokafka) sends with ``acks=-1`` and a 5 ms linger, like the engine's producer.

On partition assignment it prints ``{"msg": "partitions assigned"}`` (the harness's readiness marker).
"""
from __future__ import annotations

import json
import os
import sys

import faust

app = faust.App(
    os.environ.get("LT_FAUST_APP_ID", "lt-faust-passthrough"),
    broker=f"kafka://{os.environ.get('LT_FAUST_BROKER', '127.0.0.1:9092')}",
    datadir=os.environ.get("LT_FAUST_DATADIR", "/tmp/lt-faust-data"),
    store="memory://",
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=False,     # the harness creates the topics
    topic_disable_leader=True,
    broker_commit_interval=0.5,
    producer_acks=-1,
    producer_linger=0.005,
)

source = app.topic(os.environ.get("LT_FAUST_SOURCE", "lt.source"), key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ.get("LT_FAUST_SINK", "lt.sink"), key_type=bytes, value_type=bytes,
                 key_serializer="raw", value_serializer="raw")


@app.on_partitions_assigned.connect
async def _assigned(sender, assigned, **kwargs) -> None:  # noqa: ANN001 - faust signal signature
    """Readiness marker for the harness."""
    if assigned:
        print(json.dumps({"msg": "partitions assigned", "partitions": sorted(tp.partition for tp in assigned)}),
              file=sys.stdout, flush=True)


@app.agent(source)
async def passthrough(stream) -> None:  # noqa: ANN001 - a faust stream
    """Copy every event (raw key, value, headers) to the sink topic."""
    async for event in stream.events():
        msg = event.message
        headers = msg.headers
        if isinstance(headers, dict):
            headers = list(headers.items())
        await sink.send(key=msg.key, value=msg.value, headers=list(headers or ()))
