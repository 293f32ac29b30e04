"""The schema registry, through the Confluent REST API (``confluent_kafka.schema_registry``).

:class:`Registry` is the :class:`~proxy.formats.base.SchemaSource` the codecs use. It works with
any registry that speaks the Confluent API: Confluent Schema Registry, Apicurio Registry's
``/apis/ccompat/v7`` (the one ``deploy/registry.sh`` runs for the demo and the tests), Karapace,
Redpanda. Configuration (``dpp run --schema-registry URL --schema-registry-config KEY=VALUE``):
the client's own keys, ``basic.auth.user.info`` (``USER:PASSWORD``), ``ssl.ca.location``,
``ssl.certificate.location``, ``ssl.key.location``, ``timeout``; a value ``env:NAME`` is read from
the environment (never logged).

Errors: an id or version the registry does not hold (HTTP 404) → ``KeyError``; a schema the
registry refuses (409 incompatible, 422 invalid) → ``ValueError``; the registry unreachable, a
timeout, a 5xx or an authentication failure (401/403) → :class:`~proxy.errors.DependencyUnavailable`
(``schema-registry``): the engine then produces nothing and commits nothing until it answers.
Fetched schemas are cached by id (a schema id never changes meaning); registrations by
``(subject, schema)``.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Mapping

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from .errors import DependencyUnavailable
from .formats.base import RegisteredSchema

log = logging.getLogger("proxy.schemaregistry")

DEPENDENCY = "schema-registry"


def resolve_config(url: str, pairs: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict:
    """Client configuration from ``url`` and ``KEY=VALUE`` pairs; ``env:NAME`` values from the
    environment (``ValueError`` naming the variable, never its value, when it is unset)."""
    env = os.environ if environ is None else environ
    conf: dict = {"url": url, "max.retries": 1}
    for k, v in pairs.items():
        if isinstance(v, str) and v.startswith("env:"):
            name = v[4:]
            if name not in env:
                raise ValueError(f"schema registry option {k}: environment variable {name} is not set")
            v = env[name]
        conf[k] = float(v) if k == "timeout" else v
    conf.setdefault("timeout", 10.0)
    return conf


class Registry:
    """:class:`~proxy.formats.base.SchemaSource` over a Confluent-API registry (module doc)."""

    def __init__(self, conf: dict):
        self._client = SchemaRegistryClient(conf)
        self.url = conf["url"]
        self._by_id: dict[int, RegisteredSchema] = {}
        self._registered: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the configuration (it may hold a password)
        return f"Registry(url={self.url!r})"

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except SchemaRegistryError as e:
            status = e.http_status_code
            if status == 404:
                raise KeyError(e.error_code) from None
            if status in (409, 422):
                raise ValueError(f"schema registry refused the schema (HTTP {status}, code {e.error_code})") from None
            raise DependencyUnavailable(DEPENDENCY, f"HTTP {status}") from None
        except (KeyError, ValueError):
            raise
        except Exception as e:  # noqa: BLE001 - transport errors (connection refused, timeout, TLS)
            raise DependencyUnavailable(DEPENDENCY, type(e).__name__) from None

    @staticmethod
    def _of(s) -> RegisteredSchema:
        refs = tuple((r.name, r.subject, r.version) for r in (s.references or []))
        return RegisteredSchema(s.schema_type or "AVRO", s.schema_str, refs)

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        hit = self._by_id.get(schema_id)
        if hit is not None:
            return hit
        out = self._of(self._call(self._client.get_schema, schema_id))
        self._by_id[schema_id] = out
        return out

    def schema_by_version(self, subject: str, version: int) -> RegisteredSchema:
        return self._of(self._call(self._client.get_version, subject, version).schema)

    def register(self, subject: str, schema: RegisteredSchema) -> int:
        key = (subject, schema.schema_type, schema.schema_str)
        with self._lock:
            hit = self._registered.get(key)
            if hit is not None:
                return hit
        refs = [SchemaReference(n, s, v) for n, s, v in schema.references]
        sid = self._call(self._client.register_schema, subject, Schema(schema.schema_str, schema.schema_type, refs))
        with self._lock:
            self._registered[key] = sid
        return sid
