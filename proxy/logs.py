"""Structured logs: one JSON object per line on stderr.

Fields: ``ts``, ``level``, ``logger``, ``msg`` and whatever ``extra={...}`` adds (route, topic,
partition, offset, rule, reason, error_class). Callers never pass record values; the formatter
also drops exception messages (only the exception class is logged), because an exception raised
deep in a library may quote its input.
"""
from __future__ import annotations

import logging
import sys
import time

import orjson

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a ``LogRecord`` as a JSON line (see module doc); ``fields`` are added to every line
    (``{"worker": 1}`` in a worker process of ``dpp run --workers N``)."""

    def __init__(self, fields: dict | None = None):
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self.fields,
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                doc[k] = v
        if record.exc_info and record.exc_info[0] is not None:
            doc["error_class"] = record.exc_info[0].__name__
        return orjson.dumps(doc, default=str).decode()


def setup(level: str = "INFO", stream=None, fields: dict | None = None) -> None:
    """Route the ``proxy`` loggers to ``stream`` (default stderr) as JSON lines (plus ``fields``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(fields))
    root = logging.getLogger("proxy")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
