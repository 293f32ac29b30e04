"""``dpp run --workers N``: argument checks, the supervisor's restart and stop logic (on fake and on
real spawned processes), the aggregated ``/metrics`` and ``/readyz``."""
from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, generate_latest

from proxy.cli import main
from proxy.metrics import SupervisorMetrics
from proxy.supervisor import (MAX_WORKERS, Backoff, Supervisor, WorkersCollector, check_workers, worker_instance_id,
                              worker_ports, workers_ready)
from proxy.httpserver import serve


@pytest.mark.parametrize("n, port, problem", [
    (1, 9464, None),
    (2, 9464, None),
    (MAX_WORKERS, 9464, None),
    (MAX_WORKERS, 0, None),
    (0, 9464, "0 is not between 1 and 64"),
    (-3, 9464, "-3 is not between 1 and 64"),
    (65, 9464, "65 is not between 1 and 64"),
    (2, 65533, None),                               # workers on 65534, 65535
    (3, 65533, "65534..65536"),
])
def test_check_workers(n, port, problem):
    got = check_workers(n, port)
    assert got is None if problem is None else problem in got


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "0 is not between 1 and 64"),
    (["--workers", "65"], "65 is not between 1 and 64"),
    (["--workers", "2", "--metrics-port", "65535"], "go beyond 65535"),
    (["--workers", "two"], "'two' is not a valid integer"),
])
def test_dpp_run_rejects_a_bad_worker_count(args, message, tmp_path):
    res = CliRunner().invoke(main, ["run", "--policy", str(tmp_path / "p.yaml"), "--bootstrap-servers", "x:1", *args])
    assert res.exit_code == 2
    assert message in res.output and "--workers" in res.output


def test_dpp_run_workers_from_the_environment(tmp_path):
    res = CliRunner().invoke(main, ["run", "--policy", str(tmp_path / "p.yaml"), "--bootstrap-servers", "x:1"],
                             env={"DPP_WORKERS": "99"})
    assert res.exit_code == 2 and "99 is not between 1 and 64" in res.output


def test_a_bad_policy_fails_once_in_the_supervisor(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nroutes:\n  - name: r\n    source: a\n    sink: a\n    bogus: 1\n")
    res = CliRunner().invoke(main, ["run", "--policy", str(bad), "--bootstrap-servers", "127.0.0.1:1",
                                    "--workers", "2", "--metrics-port", "0"])
    assert res.exit_code == 1
    assert f"{bad}:" in res.output and "worker started" not in res.output


def test_worker_ports_follow_the_base_port():
    assert worker_ports(9464, 3) == [9465, 9466, 9467]
    free = worker_ports(0, 4)
    assert len(set(free)) == 4 and all(0 < p < 65536 for p in free)


@pytest.mark.parametrize("base, i, want", [("pod-a", 0, "pod-a-0"), ("pod-a", 12, "pod-a-12"),
                                           (None, 1, f"{socket.gethostname()}-1")])
def test_worker_instance_ids_are_unique_and_stable(base, i, want):
    assert worker_instance_id(base, i) == want


@pytest.mark.parametrize("previous, ran, want", [
    (None, 0.0, 1.0),    # first exit
    (1.0, 0.5, 2.0),     # died again soon: doubles
    (8.0, 10.0, 16.0),
    (16.0, 1.0, 30.0),   # capped
    (30.0, 1.0, 30.0),
    (16.0, 60.0, 1.0),   # ran long enough: starts over
])
def test_backoff(previous, ran, want):
    assert Backoff(first_s=1.0, max_s=30.0, healthy_after_s=60.0).next(previous, ran) == want


class FakeProc:
    """A worker process the test controls: ``die(code)`` ends it; SIGTERM ends it with ``on_term``."""

    pids = iter(range(1000, 10**6))

    def __init__(self, i: int, on_term: int | None = 0):
        self.i, self.on_term, self.pid, self.exitcode = i, on_term, None, None
        self.started = self.terminated = self.killed = False

    def start(self):
        self.started, self.pid = True, next(self.pids)

    def is_alive(self):
        return self.started and self.exitcode is None

    def join(self, timeout=None):
        if self.exitcode is None and timeout:
            time.sleep(min(timeout, 0.05))

    def terminate(self):
        self.terminated = True
        if self.on_term is not None and self.exitcode is None:
            self.exitcode = self.on_term

    def kill(self):
        self.killed, self.exitcode = True, -signal.SIGKILL

    def die(self, code: int):
        self.exitcode = code


class Harness:
    def __init__(self, n: int, backoff=Backoff(first_s=0.05, max_s=0.2, healthy_after_s=60.0), **proc_kw):
        self.made: list[FakeProc] = []
        self.restarts: list[int] = []
        self.running: list[int] = []

        def make(i):
            p = FakeProc(i, **proc_kw)
            self.made.append(p)
            return p
        self.sup = Supervisor(n, make, backoff, stop_timeout_s=0.3, restarts=self.restarts.append,
                              running=self.running.append, poll_s=0.01)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        self.code = self.sup.run()

    def live(self, i: int) -> FakeProc:
        return [p for p in self.made if p.i == i][-1]

    def wait(self, cond, timeout=5.0):
        end = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < end, "condition not reached"
            time.sleep(0.01)

    def stop(self) -> int:
        self.sup.stop()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.code


def test_supervisor_starts_n_workers_and_stops_them_cleanly():
    h = Harness(3)
    h.wait(lambda: len(h.made) == 3 and h.running and h.running[-1] == 3)
    assert h.stop() == 0
    assert all(p.terminated for p in h.made) and not any(p.killed for p in h.made)
    assert h.restarts == [] and h.running[-1] == 0


def test_a_dead_worker_is_restarted_with_backoff_and_counted(caplog):
    h = Harness(2)
    h.wait(lambda: len(h.made) == 2)
    first = h.live(1)
    t0 = time.monotonic()
    first.die(-signal.SIGKILL)
    h.wait(lambda: len(h.made) == 3)
    assert time.monotonic() - t0 >= 0.05 - 0.01         # waited the first backoff
    assert h.made[-1].i == 1 and h.restarts == [1]
    h.live(1).die(1)                                     # dies again at once: twice the delay
    t1 = time.monotonic()
    h.wait(lambda: len(h.made) == 4)
    assert time.monotonic() - t1 >= 0.1 - 0.01
    assert h.restarts == [1, 1] and h.sup.restart_count == [0, 2]
    assert h.stop() == 0
    lines = [r for r in caplog.records if r.getMessage() == "worker exited: restarting it"]
    assert [(r.worker, getattr(r, "signal", None), getattr(r, "exit_code", None)) for r in lines] == \
        [(1, "SIGKILL", None), (1, None, 1)]


def test_a_worker_that_exits_0_unasked_is_restarted_too():
    h = Harness(1)
    h.wait(lambda: len(h.made) == 1)
    h.live(0).die(0)
    h.wait(lambda: len(h.made) == 2)
    assert h.restarts == [0]
    assert h.stop() == 0


def test_a_worker_that_ignores_sigterm_is_killed_and_the_exit_code_says_so():
    h = Harness(2, on_term=None)
    h.wait(lambda: len(h.made) == 2)
    assert h.stop() == 1
    assert all(p.killed for p in h.made)


def test_a_worker_failing_on_stop_makes_the_exit_code_1():
    h = Harness(2, on_term=1)
    h.wait(lambda: len(h.made) == 2)
    assert h.stop() == 1


def test_stop_during_backoff_does_not_start_the_worker_again():
    h = Harness(1, backoff=Backoff(first_s=10.0))
    h.wait(lambda: len(h.made) == 1)
    h.live(0).die(1)
    h.wait(lambda: h.restarts == [0])
    assert h.stop() == 0 and len(h.made) == 1


# -- real processes (spawn) ------------------------------------------------------------------

def _sleeper(stop_file: str) -> None:
    """A worker stand-in: exits 0 on SIGTERM, writes ``stop_file`` first (so the test sees it stopped cleanly)."""
    def term(*_):
        with open(stop_file, "a") as f:
            f.write(f"{os.getpid()}\n")
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, term)
    while True:
        time.sleep(0.05)


def test_real_worker_processes_killed_with_sigkill_are_restarted(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    stopped = tmp_path / "stopped"
    restarts: list[int] = []
    sup = Supervisor(2, lambda i: spawn.Process(target=_sleeper, args=(str(stopped),)),
                     Backoff(first_s=0.1), stop_timeout_s=20, restarts=restarts.append, poll_s=0.05)
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(sup.run()))
    t.start()
    try:
        end = time.monotonic() + 30
        while not all(p is not None and p.is_alive() for p in sup.procs):
            assert time.monotonic() < end
            time.sleep(0.05)
        victim = sup.procs[0].pid
        os.kill(victim, signal.SIGKILL)
        while not (restarts and sup.procs[0] is not None and sup.procs[0].is_alive()):
            assert time.monotonic() < end, "worker 0 not restarted"
            time.sleep(0.05)
        assert sup.procs[0].pid != victim and restarts == [0]
        time.sleep(1.0)  # let the restarted interpreter install its SIGTERM handler
    finally:
        sup.stop()
        t.join(30)
    assert out == [0]
    assert len(stopped.read_text().split()) == 2  # both live workers stopped through their handler


# -- aggregated /metrics and /readyz ------------------------------------------------------------

def _worker_endpoint(i: int, ready: bool):
    reg = CollectorRegistry()
    c = Counter("dpp_records_consumed", "Records consumed", ["route"], registry=reg)
    c.labels("r").inc(10 * (i + 1))
    return serve(reg, lambda: (ready, "ready: policy p" if ready else "waiting for partition assignment: r"), 0,
                 "127.0.0.1")


def test_supervisor_metrics_merge_the_workers_with_a_worker_label():
    servers = [_worker_endpoint(0, True), _worker_endpoint(1, True)]
    try:
        ports = [s.server_port for s in servers]
        sm = SupervisorMetrics(2)
        sm.registry.register(WorkersCollector(ports))
        sm.restarts.labels("1").inc()
        text = generate_latest(sm.registry).decode()
        assert 'dpp_records_consumed_total{route="r",worker="0"} 10.0' in text
        assert 'dpp_records_consumed_total{route="r",worker="1"} 20.0' in text
        assert text.count("# TYPE dpp_records_consumed_total counter") == 1  # one family, not one per worker
        assert 'dpp_worker_restarts_total{worker="1"} 1.0' in text
        assert "dpp_workers_configured 2.0" in text
        assert workers_ready(ports) == (True, "ready: 2 workers")
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def test_supervisor_is_ready_only_when_every_worker_is():
    servers = [_worker_endpoint(0, True), _worker_endpoint(1, False)]
    gone = worker_ports(0, 1)[0]  # nothing listens there
    try:
        ports = [s.server_port for s in servers]
        assert workers_ready(ports) == (False, "worker 1 not ready: waiting for partition assignment: r")
        assert workers_ready([ports[0], gone]) == (False, "worker 1 not ready: not answering")
        sup = serve(CollectorRegistry(), lambda: workers_ready(ports), 0, "127.0.0.1")
        try:
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://127.0.0.1:{sup.server_port}/readyz", timeout=5)
            assert e.value.code == 503
        finally:
            sup.shutdown()
            sup.server_close()
        text = generate_latest(_registry_with(WorkersCollector([ports[0], gone]))).decode()
        assert 'worker="0"' in text and 'worker="1"' not in text  # a worker not answering adds nothing
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def _registry_with(collector) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(collector)
    return reg
