"""Sample producer for deploy/docker-compose.yml: JSON lines on stdin -> one Kafka topic.

    dpp generate --count 500 --seed 7 | python sample_producer.py --bootstrap-servers kafka:19092 --topic crm.customers

Each input line becomes one record, byte for byte, keyed by its ``record_id`` when the line is a
JSON object that has one (else unkeyed). With ``--malformed-every N`` every N-th line is also sent
cut in half (invalid JSON), so the dead-letter path and its alert show up in the demo.
Prints one JSON summary line on stderr (counts only, never a value). Exit 0 when the broker
acknowledged every record, 1 otherwise.

Only confluent-kafka (a dpp dependency) and the standard library: it runs in the dpp image.
"""
from __future__ import annotations

import argparse
import json
import sys

from confluent_kafka import Producer


def main(argv: list[str] | None = None) -> int:
    """Produce stdin's lines to ``--topic``; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap-servers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--malformed-every", type=int, default=0, help="also send every N-th line truncated (0: never)")
    args = ap.parse_args(argv)

    failed: list[int] = []
    producer = Producer({"bootstrap.servers": args.bootstrap_servers, "enable.idempotence": True,
                         "linger.ms": 20})

    def on_delivery(err, _msg):
        if err is not None:
            failed.append(1)

    def send(value: bytes, key: bytes | None) -> None:
        while True:
            try:
                producer.produce(args.topic, value, key, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.1)

    sent = malformed = 0
    for n, raw in enumerate(sys.stdin.buffer, 1):
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        key = None
        try:
            doc = json.loads(line)
            if isinstance(doc, dict) and isinstance(doc.get("record_id"), str):
                key = doc["record_id"].encode()
        except ValueError:
            pass
        send(line, key)
        sent += 1
        if args.malformed_every and n % args.malformed_every == 0:
            send(line[: len(line) // 2], None)
            malformed += 1
        producer.poll(0)
    remaining = producer.flush(60)
    ok = not failed and remaining == 0
    print(json.dumps({"msg": "sample batch produced", "topic": args.topic, "records": sent,
                      "malformed": malformed, "unacknowledged": len(failed) + remaining}), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
