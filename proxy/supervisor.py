"""``dpp run --workers N``: a supervisor process and N worker processes of one policy.

The GIL makes threads useless for spreading the record path over cores, so each worker is a
process (``multiprocessing`` *spawn*: a fresh interpreter that runs the ``dpp run`` body with
``--workers 1``). Every worker joins the same consumer groups (one per route), so the partitions
of each source topic are split among them; worker ``i`` (0-based) gets

* the instance id ``<instance>-<i>`` (``--instance-id``, default the host name): on exactly_once
  routes its transactional id is ``dpp.<group>.<instance>-<i>``, unique among the live workers, and
  the same after a restart of that worker, so the restart fences the dead incarnation;
* its own metrics port, ``--metrics-port`` + 1 + ``i`` (with ``--metrics-port 0``: free ports
  picked by the supervisor), on which it serves its own ``/metrics`` and ``/readyz``.

The supervisor serves, on ``--metrics-port`` itself:

* ``/metrics``: every worker's metrics, read from the workers' ports at scrape time, each sample
  with the extra label ``worker="<i>"`` (bounded: 0..63), plus the supervisor's own
  ``dpp_workers_running`` and ``dpp_worker_restarts_total{worker}``;
* ``/readyz``: ready only when every worker answers ready (the reason names the first that is not);
* ``/healthz``: the supervisor is alive.

Signals: SIGTERM or SIGINT makes the supervisor send SIGTERM to every worker (each finishes its
in-flight batch, commits and exits 0), wait for them (``stop_timeout_s``, then SIGKILL) and exit
0, or 1 when a worker did not stop cleanly. A worker that exits while the supervisor is not
stopping (a crash, ``kill -9``, a route that failed) is restarted with exponential backoff
(:class:`Backoff`) and counted in ``dpp_worker_restarts_total``; the log line names the worker,
its pid, its exit code or signal and the delay, never a record or a key. Worker processes ask the
kernel for SIGTERM when the supervisor dies (Linux ``PR_SET_PDEATHSIG``), so none outlives it.

This module imports no Kafka client: the workers do.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("proxy.supervisor")

MAX_WORKERS = 64
"""Upper bound of ``--workers`` (a machine's cores; consumers beyond a topic's partitions sit idle)."""


def check_workers(n: int, metrics_port: int) -> str | None:
    """The problem with ``--workers n`` at ``--metrics-port metrics_port``, or ``None`` when fine."""
    if not 1 <= n <= MAX_WORKERS:
        return (f"{n} is not between 1 and {MAX_WORKERS} (worker processes on this machine; more consumers "
                "than a topic's partitions would sit idle)")
    if metrics_port and metrics_port + n > 65535:
        return (f"the workers' metrics ports {metrics_port + 1}..{metrics_port + n} (--metrics-port + 1 + i) "
                "go beyond 65535: choose a lower --metrics-port")
    return None


def worker_ports(metrics_port: int, n: int) -> list[int]:
    """Metrics ports of workers ``0..n-1``: ``metrics_port + 1 + i``; for ``metrics_port`` 0, ports
    the kernel reports free now (a port taken in between makes that worker fail and restart)."""
    if metrics_port:
        return [metrics_port + 1 + i for i in range(n)]
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def worker_instance_id(instance_id: str | None, i: int) -> str:
    """Instance id of worker ``i``: ``<instance_id or host name>-<i>``."""
    return f"{instance_id or socket.gethostname()}-{i}"


@dataclass(frozen=True)
class Backoff:
    """Delay before restarting a worker that exited: ``first_s`` after its first exit, doubling per
    exit that follows a run shorter than ``healthy_after_s``, at most ``max_s``. A worker that ran
    at least ``healthy_after_s`` before exiting starts again from ``first_s``. Seconds."""

    first_s: float = 1.0
    max_s: float = 30.0
    healthy_after_s: float = 60.0

    def next(self, previous_s: float | None, ran_s: float) -> float:
        """The delay after an exit, given the delay before this run (``None``: first run) and how long it ran."""
        if previous_s is None or ran_s >= self.healthy_after_s:
            return self.first_s
        return min(self.max_s, previous_s * 2)


class WorkerProcess(Protocol):
    """What the supervisor needs of a worker process (``multiprocessing.Process`` has it)."""

    pid: int | None
    exitcode: int | None

    def start(self) -> None: ...
    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


class WorkersCollector:
    """A Prometheus collector: the workers' ``/metrics`` (from their ports at collect time), each
    sample labelled ``worker="<i>"``; families of the same name are merged. A worker that does not
    answer (starting, restarting) adds nothing; ``dpp_workers_running`` says how many run."""

    def __init__(self, ports: list[int], timeout_s: float = 2.0):
        self.ports, self.timeout_s = ports, timeout_s

    def collect(self):
        families: dict[str, Metric] = {}
        for i, port in enumerate(self.ports):
            text = _get(port, "/metrics", self.timeout_s)[1]
            if text is None:
                continue
            for fam in text_string_to_metric_families(text):
                out = families.get(fam.name)
                if out is None:
                    out = families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                for s in fam.samples:
                    out.add_sample(s.name, {**s.labels, "worker": str(i)}, s.value, s.timestamp, s.exemplar)
        yield from families.values()


def _get(port: int, path: str, timeout_s: float) -> tuple[int, str | None]:
    """``(HTTP status, body)`` of ``http://127.0.0.1:port/path``; ``(0, None)`` when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as resp:  # noqa: S310
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return 0, None


def workers_ready(ports: list[int], timeout_s: float = 1.0) -> tuple[bool, str]:
    """``/readyz`` of the supervisor: ready when every worker's ``/readyz`` answers 200."""
    for i, port in enumerate(ports):
        status, body = _get(port, "/readyz", timeout_s)
        if status != 200:
            why = (body or "").strip() or "not answering"
            return False, f"worker {i} not ready: {why}"
    return True, f"ready: {len(ports)} workers"


class Supervisor:
    """Starts ``n`` workers (``make(i)`` builds worker ``i``'s process), restarts one that exits with
    :class:`Backoff`, and stops them all on :meth:`stop` (see the module doc).

    ``restarts(i)`` is called once per restart of worker ``i`` (the metric), ``running(n)`` whenever
    the number of live workers changes."""

    def __init__(self, n: int, make: Callable[[int], WorkerProcess], backoff: Backoff = Backoff(),
                 stop_timeout_s: float = 120.0, restarts: Callable[[int], Any] = lambda i: None,
                 running: Callable[[int], Any] = lambda n: None, poll_s: float = 0.2):
        self.n, self.make, self.backoff, self.stop_timeout_s = n, make, backoff, stop_timeout_s
        self.on_restart, self.on_running, self.poll_s = restarts, running, poll_s
        self.procs: list[WorkerProcess | None] = [None] * n
        self.started_at = [0.0] * n
        self.delay: list[float | None] = [None] * n
        self.restart_at = [0.0] * n
        self.restart_count = [0] * n
        self._stop = threading.Event()
        self._live = -1

    def stop(self, *_: Any) -> None:
        """Stop every worker and return from :meth:`run` (signal-handler safe)."""
        self._stop.set()

    def _start(self, i: int) -> None:
        p = self.make(i)
        p.start()
        self.procs[i], self.started_at[i] = p, time.monotonic()
        log.info("worker started", extra={"worker": i, "pid": p.pid})

    def _reap(self, i: int, p: WorkerProcess) -> None:
        """Worker ``i`` exited while the supervisor runs: schedule its restart."""
        p.join(0)
        now = time.monotonic()
        self.delay[i] = self.backoff.next(self.delay[i], now - self.started_at[i])
        self.restart_at[i] = now + self.delay[i]
        self.procs[i] = None
        self.restart_count[i] += 1
        self.on_restart(i)
        code = p.exitcode
        how = {"signal": signal.Signals(-code).name} if code is not None and code < 0 else {"exit_code": code}
        log.error("worker exited: restarting it", extra={"worker": i, "pid": p.pid, **how,
                                                        "restart_in_s": round(self.delay[i], 3),
                                                        "restarts": self.restart_count[i]})

    def _count_live(self) -> None:
        live = sum(1 for p in self.procs if p is not None and p.is_alive())
        if live != self._live:
            self._live = live
            self.on_running(live)

    def run(self) -> int:
        """Supervise until :meth:`stop`; returns 0 when every worker stopped cleanly, else 1."""
        for i in range(self.n):
            if not self._stop.is_set():
                self._start(i)
        while not self._stop.is_set():
            now = time.monotonic()
            for i, p in enumerate(self.procs):
                if self._stop.is_set():
                    break
                if p is None:
                    if now >= self.restart_at[i]:
                        self._start(i)
                elif not p.is_alive():
                    self._reap(i, p)
            self._count_live()
            self._stop.wait(self.poll_s)
        return self._stop_all()

    def _stop_all(self) -> int:
        live = [(i, p) for i, p in enumerate(self.procs) if p is not None]
        log.info("stopping workers", extra={"workers": [i for i, _ in live]})
        for _, p in live:
            if p.is_alive():
                p.terminate()  # SIGTERM
        deadline = time.monotonic() + self.stop_timeout_s
        clean = True
        for i, p in live:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                log.error("worker did not stop in time: killed", extra={"worker": i, "pid": p.pid,
                                                                          "timeout_s": self.stop_timeout_s})
                p.kill()
                p.join(10)
                clean = False
            elif p.exitcode != 0:
                code = p.exitcode
                how = {"signal": signal.Signals(-code).name} if code is not None and code < 0 else {"exit_code": code}
                log.error("worker stopped with an error", extra={"worker": i, "pid": p.pid, **how})
                clean = False
        self._count_live()
        return 0 if clean else 1


def die_with_parent() -> None:
    """In a worker: ask Linux for SIGTERM when the supervisor dies (no-op elsewhere)."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
