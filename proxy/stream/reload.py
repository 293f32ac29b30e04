"""Policy hot reload: watch the policy file and swap a recompiled policy in between batches.

The watcher polls the file's content (default every 2 s), so it sees ordinary edits and
Kubernetes ConfigMap updates, which replace a ``..data`` symlink rather than the file itself; it
also polls the key-store files of the policy's KMS keys, so ``dpp keys rotate`` reaches running
workers without a restart.
A changed policy is loaded, validated and compiled (keys re-read) off the record path; on success
the engine swaps it in between batches and ``dpp_policy_reloads_total{result="success"}`` counts
it; on any failure the running policy stays, the error locations (``FILE:LINE: PATH: message``,
never values) are logged and ``{result="error"}`` counts it.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from ..errors import PolicyError
from ..policy.compiler import compile_policy
from ..policy.loader import load_policy
from .engine import Engine

log = logging.getLogger("proxy.reload")


class PolicyWatcher:
    """Polls ``path`` every ``interval_s`` seconds and reloads ``engine`` when the content changes."""

    def __init__(self, engine: Engine, path: str | Path, routes: list[str] | None = None, interval_s: float = 2.0):
        self.engine, self.path, self.routes, self.interval = engine, Path(path), routes, interval_s
        self._digest = self._read_digest()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="dpp-policy-watcher", daemon=True)

    def _key_stores(self) -> list[str]:
        """The key-store files of the running policy's KMS keys (``dpp keys rotate`` writes them)."""
        keys = self.engine.policy.loaded.policy.keys
        return sorted({spec.store for spec in keys.values() if getattr(spec, "store", None)})

    def _read_digest(self) -> str | None:
        """SHA-256 of the policy file and of its key stores: a rotated key store reloads too."""
        try:
            h = hashlib.sha256(self.path.read_bytes())
        except OSError:
            return None
        for store in self._key_stores():
            try:
                h.update(b"\x00" + Path(store).read_bytes())
            except OSError:
                h.update(b"\x00<missing>")
        return h.hexdigest()

    def start(self) -> "PolicyWatcher":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.engine.stop_event.is_set():
                return
            self.check_once()

    def check_once(self) -> str | None:
        """Reload if the file changed. Returns ``"success"``, ``"error"`` or ``None`` (unchanged)."""
        digest = self._read_digest()
        if digest is None or digest == self._digest:
            return None
        self._digest = digest
        m = self.engine.metrics
        try:
            compiled = compile_policy(load_policy(self.path), routes=self.routes)
            self.engine.reload(compiled)
        except PolicyError as e:
            m.reloads.labels("error").inc()
            for f, line, path, msg in e.problems:
                log.error("policy reload failed; keeping the running policy",
                          extra={"file": f, "line": line, "path": path, "problem": msg})
            return "error"
        except Exception as e:  # noqa: BLE001 - keep the running policy whatever went wrong
            m.reloads.labels("error").inc()
            log.error("policy reload failed; keeping the running policy",
                      extra={"file": str(self.path), "error_class": type(e).__name__,
                             "problem": str(e) if isinstance(e, ValueError) else ""})
            return "error"
        m.reloads.labels("success").inc()
        log.info("policy reloaded", extra={"policy": compiled.provenance})
        return "success"
