"""Load generator: the project's generated customer records, at a target rate or as fast as possible.

::

    python -m loadtests.generator --topic crm.customers --records 100000 --size 0.5k        # max speed
    python -m loadtests.generator --topic crm.customers --rate 20000 --seconds 60 --size 2k  # fixed rate

Records are :class:`loadtests.common.Dataset` records (``proxy.generator.generate_records``, sized
with ``note_chars``), keyed by their ``record_id`` (``lt-<i>``). With ``--stamp`` (default on) each
record carries the header ``lt-produced-ns``: ``time.time_ns()`` when ``produce()`` was called, 8
bytes big-endian, for end-to-end latency measured at the sink. The producer is idempotent with
``acks=all`` and ``linger.ms=1`` (``--linger-ms``) so the generator itself adds little latency.

Pacing (``--rate R``): record ``i`` is due ``i / R`` seconds after the start; the generator
produces every due record, then sleeps until the next one is due (records leave in bursts of
about ``R / 1000`` per millisecond). When it falls behind (the machine is saturated) it produces
as fast as it can and reports the rate it achieved.

The last line on stdout is a JSON summary: ``{"produced", "seconds", "rate", "first", "start"}``.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import orjson

from .common import DEFAULT_BOOTSTRAP, SIZES, STAMP_HEADER, Dataset, progress_bar


def generate(bootstrap: str, topic: str, data: Dataset, *, count: int | None = None, rate: float | None = None,
             seconds: float | None = None, start: int = 0, stamp: bool = True, linger_ms: float = 1.0,
             stop: threading.Event | None = None, progress: bool = False) -> dict:
    """Produce records ``start, start+1, …`` of ``data`` to ``topic``.

    Stops after ``count`` records, after ``seconds`` seconds, or when ``stop`` is set (at least
    one of them must be given). ``rate`` in records/s (``None`` = as fast as possible). Waits for
    every acknowledgement before returning. Returns ``{"produced", "seconds", "rate", "start",
    "failed"}`` (``seconds`` from the first produce to the last acknowledgement).
    """
    if count is None and seconds is None and stop is None:
        raise ValueError("give count, seconds or stop")
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": linger_ms, "batch.num.messages": 10000, "queue.buffering.max.messages": 500000,
                  "queue.buffering.max.kbytes": 1048576})
    failed = [0]

    def on_delivery(err, _msg):
        if err is not None:
            failed[0] += 1
    pool, npool = data.pool, len(data.pool)
    dumps = orjson.dumps
    bar = progress_bar(count, f"produce {topic}") if progress else None
    i = start
    end = start + count if count is not None else None
    t0 = time.perf_counter()
    deadline = t0 + seconds if seconds is not None else None
    produced = 0
    while True:
        now = time.perf_counter()
        if (end is not None and i >= end) or (deadline is not None and now >= deadline) or (stop and stop.is_set()):
            break
        if rate:
            due = start + int((now - t0) * rate) + 1
            if end is not None:
                due = min(due, end)
        else:
            due = i + 1000 if end is None else min(i + 1000, end)
        n0 = i
        while i < due:
            rec = dict(pool[i % npool])
            rid = f"lt-{i}"
            rec["record_id"] = rid
            value = dumps(rec)
            headers = [(STAMP_HEADER, time.time_ns().to_bytes(8, "big"))] if stamp else None
            while True:
                try:
                    p.produce(topic, value, rid.encode(), headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.01)
            i += 1
        produced += i - n0
        p.poll(0)
        if bar is not None and i - n0:
            bar.update(i - n0)
        if rate:
            wait = t0 + (i - start) / rate - time.perf_counter()
            if wait > 0:
                time.sleep(min(wait, 0.05))  # wake up at least every 50 ms to check the deadline and stop
    left = p.flush(120)
    elapsed = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return {"produced": produced, "seconds": round(elapsed, 3), "rate": round(produced / elapsed, 1) if elapsed else 0.0,
            "start": start, "failed": failed[0] + left}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtests.generator", description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="Kafka bootstrap servers (default %(default)s)")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--size", choices=sorted(SIZES), default="0.5k", help="record size preset (default %(default)s)")
    ap.add_argument("--note-chars", type=int, default=None, help="override the preset's note length")
    ap.add_argument("--records", type=int, default=None, help="records to produce")
    ap.add_argument("--seconds", type=float, default=None, help="produce for this long")
    ap.add_argument("--rate", type=float, default=None, help="records per second (default: as fast as possible)")
    ap.add_argument("--start", type=int, default=0, help="index of the first record (default 0)")
    ap.add_argument("--no-stamp", action="store_true", help="no produce-time header")
    ap.add_argument("--linger-ms", type=float, default=1.0)
    a = ap.parse_args(argv)
    if a.records is None and a.seconds is None:
        ap.error("give --records and/or --seconds")
    preset = SIZES[a.size]
    data = Dataset(a.note_chars if a.note_chars is not None else preset.note_chars, preset.max_orders)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    res = generate(a.bootstrap, a.topic, data, count=a.records, rate=a.rate, seconds=a.seconds, start=a.start,
                   stamp=not a.no_stamp, linger_ms=a.linger_ms, stop=stop, progress=True)
    print(orjson.dumps(res).decode(), flush=True)
    return 1 if res["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
