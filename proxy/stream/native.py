"""The native data plane seen from Python: ``proxy._dataplane`` (``proxy/_dataplane.c``).

The consume → produce loop of a route in C on librdkafka's batch API, with no Python object per
record (issue 13, item 1; the C-or-Rust decision and its figures are in docs/performance.md,
"Native data plane: C or Rust"). Today it passes records through unchanged, with dpp's client
settings and guarantees (consumer group, idempotent ``acks=all`` producer, offsets committed
only after every record of the batch was acknowledged): benchmark row (a'), the cost of the
Kafka loop itself, which the rules will be measured against as they move into native code.

The extension is optional (built by ``pip install`` where librdkafka's headers are: Debian's
``librdkafka-dev``): :func:`available` says why it is missing, :func:`require` raises then, and
``DPP_REQUIRE_NATIVE=1`` (CI) makes :func:`require_if_asked` a failure instead of a skip.
"""
from __future__ import annotations

import os

try:
    from .. import _dataplane
except ImportError as e:  # optional: built only where librdkafka's headers are
    _dataplane = None
    _MISSING = f"proxy._dataplane is not built ({e.__class__.__name__}; pip install needs librdkafka-dev)"
else:
    _MISSING = None


def available() -> str | None:
    """``None`` when the native data plane is built, else why not (no record data in it)."""
    return _MISSING


def require() -> None:
    """Raise ``RuntimeError`` (why) when the native data plane is not built."""
    if _MISSING is not None:
        raise RuntimeError(_MISSING)


def required_by_environment() -> bool:
    """Whether ``DPP_REQUIRE_NATIVE=1`` (CI) asks that the native modules be built."""
    return os.environ.get("DPP_REQUIRE_NATIVE") == "1"


def librdkafka_version() -> str:
    """The librdkafka version the native data plane is linked with (e.g. ``"2.0.2"``)."""
    require()
    return _dataplane.librdkafka_version()


def run(bootstrap: str, source: str, sink: str, group: str, batch_size: int = 1000, timeout_s: float = 0.5,
        linger_s: float = 0.005, max_records: int = 0) -> int:
    """Pass records from ``source`` to ``sink`` in consumer group ``group`` until ``max_records``
    have gone through (0: until a Python signal handler raises, checked between batches; the
    exception then propagates after the consumer closed). Batches: what is already fetched, up
    to ``batch_size``; when nothing is, the first record within ``timeout_s`` and more within
    ``linger_s`` (seconds). Each batch: produce key, value and headers unchanged, wait for every
    acknowledgement, commit the batch's offsets synchronously. Prints
    ``{"msg": "partitions assigned", ...}`` on assignment. Returns the records passed through.
    Errors: ``RuntimeError("kafka: <where>: <librdkafka error name>")`` (no record content);
    a failed delivery commits nothing (the batch is consumed again by the group's next member)."""
    require()
    return _dataplane.run(bootstrap, source, sink, group, batch_size, timeout_s, linger_s, max_records)


def plane(consumer_conf: dict[str, str], producer_conf: dict[str, str], source: str, sink: str, plan=None,
          time_budget_s: float = 1e9):
    """A route's native data plane, ``proxy._dataplane.Plane`` (driven by
    :class:`proxy.stream.nativeworker.NativeRouteWorker`, one batch per ``step``): a librdkafka
    consumer and idempotent producer from the same property dicts the Python worker gives
    confluent-kafka (strings), and the route's ``JsonPlan`` (``None``: every record is handed
    back). ``ValueError`` names a property librdkafka does not know (never a value)."""
    require()
    return _dataplane.Plane(consumer_conf, producer_conf, source, sink, plan, time_budget_s)
