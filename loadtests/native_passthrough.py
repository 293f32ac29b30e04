"""Benchmark row (a'): the pass-through through the native data plane, no rules.

::

    python -m loadtests.native_passthrough --source SRC --sink DST --group G [--bootstrap 127.0.0.1:9092]
    python -m loadtests.native_passthrough --impl rust ...   # prototype (R), see below

Row (a) (:mod:`loadtests.passthrough`) with the loop in native code instead of Python: the same
client settings, batches and guarantees (consumer group, manual commit after the batch's produce
acknowledgements, ``acks=all``, idempotent producer, ``linger.ms=5``), no Python object per record.
``--impl c`` (default) runs :mod:`proxy.stream.native` (``proxy/_dataplane.c``, built by ``pip
install``); ``--impl rust`` runs prototype (R), ``loadtests/native/rust_dataplane`` (PyO3 + the
``rdkafka`` crate, built by hand with maturin), kept to re-measure the decision in
docs/performance.md ("Native data plane: C or Rust").

On partition assignment the native code prints ``{"msg": "partitions assigned", …}`` (the
harness's readiness marker). SIGTERM ends the loop between batches (the batch in flight is
finished and committed) and exits 0.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys

from .passthrough import loop_arguments


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler; the native loop returns between batches."""


def _raise_stop(*_):
    raise Stop()


def runner(impl: str):
    """The ``run`` function of implementation ``impl`` (``c`` or ``rust``); ``RuntimeError`` when
    it is not built."""
    if impl == "c":
        from proxy.stream import native
        native.require()
        return native.run
    if impl == "rust":
        try:
            import dpp_rust_dataplane
        except ImportError as e:
            raise RuntimeError("prototype (R) is not built: maturin develop --release -m "
                               "loadtests/native/rust_dataplane/Cargo.toml") from e
        return dpp_rust_dataplane.run
    raise ValueError(f"unknown implementation {impl!r}")


def main(argv: list[str] | None = None) -> int:
    ap = loop_arguments(argparse.ArgumentParser(prog="python -m loadtests.native_passthrough",
                                                description=__doc__.split("\n")[0]))
    ap.add_argument("--max-records", type=int, default=0, help="return after this many records (0: until SIGTERM)")
    ap.add_argument("--impl", choices=["c", "rust"], default="c")
    a = ap.parse_args(argv)
    run = runner(a.impl)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        n = run(a.bootstrap, a.source, a.sink, a.group, a.batch_size, max_records=a.max_records)
    except Stop:
        n = None  # the count of an interrupted run is not returned by the native loop
    print(json.dumps({"msg": "stopped", "records": n}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
