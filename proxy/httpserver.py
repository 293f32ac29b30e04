"""The worker's HTTP endpoint: ``/metrics`` (Prometheus text format), ``/healthz`` (process alive)
and ``/readyz`` (policy loaded, every route joined its consumer group, no route failed).

A small WSGI dispatcher on the standard library's threading WSGI server; the Prometheus text
comes from ``prometheus_client.generate_latest``.
"""
from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - no access log on stderr
        pass


def make_app(registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]]):
    """WSGI app for the three paths; ``ready()`` returns ``(ok, reason)`` for ``/readyz``."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path in ("/metrics", "/"):
            body = generate_latest(registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok, why = ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [(why + "\n").encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


def serve(registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]], port: int, addr: str = "0.0.0.0"):
    """Serve in a daemon thread; returns the server (``server.server_port`` is the bound port)."""
    httpd = make_server(addr, port, make_app(registry, ready), _Server, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, name="dpp-http", daemon=True).start()
    return httpd
