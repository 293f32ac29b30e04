"""librdkafka client properties shared by every Kafka client dpp creates (security, timeouts).

Set once per process from ``dpp --kafka-config KEY=VALUE`` (repeatable) and/or
``--kafka-config-file FILE`` (Java-style ``key=value`` lines, ``#`` comments), or the environment
variable ``DPP_KAFKA_CONFIG_FILE``. A value written ``env:NAME`` is read from the environment
variable ``NAME``, so passwords (``sasl.password``) never appear on a command line or in a file.
Values are never logged. Example for a SASL/SSL cluster::

    security.protocol=SASL_SSL
    sasl.mechanism=SCRAM-SHA-512
    sasl.username=dpp
    sasl.password=env:KAFKA_PASSWORD
    ssl.ca.location=/etc/dpp/kafka/ca.pem
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

_EXTRA: dict[str, str] = {}
_ONE_SHOT: dict = {"on": False, "error": None}
"""One-shot commands (``scan``, ``reveal``, ``forget``, ``dead-letter``): librdkafka's own log lines
off (a failed handshake repeats every few ms), and the first authentication/TLS error kept for the
command's one error line (:func:`access_error`)."""


class ClientConfigError(ValueError):
    """A malformed ``KEY=VALUE`` item or an ``env:`` reference to an unset variable (the message
    names the key and the variable, never a value)."""


def parse_items(items: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``["k=v", "k2=env:VAR"]`` → ``{"k": "v", "k2": <value of VAR>}``. Raises :class:`ClientConfigError`."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ClientConfigError(f"expected KEY=VALUE, got an item without '=' (key {key or '?'!r})")
        if key == "bootstrap.servers":
            raise ClientConfigError("set bootstrap.servers with --bootstrap-servers")
        if value.startswith("env:"):
            var = value[4:]
            if var not in env:
                raise ClientConfigError(f"{key}: environment variable {var} is not set")
            value = env[var]
        out[key] = value
    return out


def read_file(path: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parse a ``key=value`` properties file (see module doc). Raises :class:`ClientConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ClientConfigError(f"cannot read {path} ({type(e).__name__})") from None
    lines = [l.strip() for l in text.splitlines()]
    return parse_items([l for l in lines if l and not l.startswith(("#", "!"))], environ)


def set_extra(config: Mapping[str, str]) -> None:
    """Install the properties every client of this process gets."""
    _EXTRA.clear()
    _EXTRA.update(config)


def extra() -> dict[str, str]:
    """A copy of the properties :func:`set_extra` installed (handed to ``dpp run``'s worker processes)."""
    return dict(_EXTRA)


def set_one_shot(on: bool) -> None:
    """Clients made from now on log nothing themselves and note authentication/TLS errors (see ``_ONE_SHOT``)."""
    _ONE_SHOT.update(on=on, error=None)


def _note_error(err) -> None:
    from confluent_kafka import KafkaError
    if _ONE_SHOT["error"] is None and err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
        _ONE_SHOT["error"] = err


def access_error():
    """The first ``KafkaError`` ``_AUTHENTICATION``/``_SSL`` a one-shot client reported (served when
    it polls or closes), or ``None``."""
    return _ONE_SHOT["error"]


def client_config(bootstrap: str, **overrides) -> dict:
    """``{"bootstrap.servers": bootstrap, **extra properties, **overrides}`` for one client."""
    quiet = {"log_level": 2, "error_cb": _note_error} if _ONE_SHOT["on"] else {}
    return {"bootstrap.servers": bootstrap, **quiet, **_EXTRA, **overrides}
