"""The worker's health endpoint, for Kubernetes probes, App Platform and deploy checks.

Why HTTP and why these two paths: a worker has no port of its own, yet every platform it is
deployed on asks "is it alive?" (restart it if not) and "is it working?" (hold a rollout, or
roll back, if not). ``--health-port`` (``PULSER_OPS_HEALTH_PORT``) serves both from a small
thread that only reads what the claim loop records; it never touches the database:

- ``/healthz`` (liveness) is 200 while the claim loop keeps turning, including while the
  worker drains after SIGTERM; 503 once the loop has not come round for :func:`stall_after`
  seconds (it waits at most the poll interval, or its retry backoff, between claims).
- ``/readyz`` (readiness) is 200 once a claim has succeeded and none has failed since, and
  the worker is not stopping; 503 with the reason otherwise (``starting``,
  ``claim_failing``, ``draining``, ``stalled``). A deploy's health check waits for it, so a
  bad database URL or a broken migration rolls the deploy back.

Both answer with a small JSON body (worker id, runs held, seconds since the last claim).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def stall_after(poll_seconds: float) -> float:
    """Seconds without a turn of the claim loop after which the worker counts as stalled.

    The loop sleeps at most ``max(poll_seconds, 5)`` between turns (the poll interval or the
    claim retry backoff); three of those, and never under 30 s, leaves room for a slow claim.
    """
    return max(3 * max(poll_seconds, 5.0), 30.0)


class Health:
    """What the claim loop last did, read by the endpoint. Thread-safe, no I/O."""

    def __init__(
        self,
        worker_id: str,
        concurrency: int,
        poll_seconds: float,
        *,
        held: Callable[[], int],
        stopping: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id = worker_id
        self.concurrency = concurrency
        self.stall_seconds = stall_after(poll_seconds)
        self._held = held
        self._stopping = stopping
        self._clock = clock
        self._lock = threading.Lock()
        self._last_turn: float | None = None
        self._last_claim: float | None = None
        self._claim_error: str | None = None

    def turn(self) -> None:
        """The claim loop came round."""
        with self._lock:
            self._last_turn = self._clock()

    def claimed(self) -> None:
        with self._lock:
            self._last_claim = self._clock()
            self._claim_error = None

    def claim_failed(self, error: str) -> None:
        with self._lock:
            self._claim_error = error

    def report(self, path: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for ``/healthz`` or ``/readyz``."""
        now = self._clock()
        with self._lock:
            last_turn, last_claim, error = self._last_turn, self._last_claim, self._claim_error
        stopping = self._stopping()
        stalled = (
            not stopping and last_turn is not None and now - last_turn > self.stall_seconds
        )
        if stopping:
            status = "draining"
        elif stalled:
            status = "stalled"
        elif error is not None:
            status = "claim_failing"
        elif last_claim is None:
            status = "starting"
        else:
            status = "ok"
        body: dict[str, Any] = {
            "status": status,
            "worker_id": self.worker_id,
            "running": self._held(),
            "concurrency": self.concurrency,
            "seconds_since_claim": None if last_claim is None else round(now - last_claim, 3),
        }
        if error is not None:
            body["error"] = error
        if path == "/healthz":
            return (503 if stalled else 200), body
        return (200 if status == "ok" else 503), body


class HealthServer:
    """Serves a :class:`Health` on ``host:port`` from a daemon thread (port 0: any free one)."""

    def __init__(self, health: Health, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in ("/healthz", "/readyz"):
                    self._send(404, {"error": "not found: try /healthz or /readyz"})
                    return
                self._send(*health.report(path))

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # probes every few seconds would drown the worker's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="pulser-health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
