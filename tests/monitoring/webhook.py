"""A webhook receiver for the alert tests: a local HTTP server that records what it is sent
(apprise's ``json://`` posts) and answers with the status codes it is told to."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    at: float
    status: int
    body: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.body.get("title", ""))


@dataclass
class Receiver:
    url: str
    #: status codes to answer, in order; then 200
    answers: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def titles(self, status: int | None = 200) -> list[str]:
        with self.lock:
            return [r.title for r in self.got if status is None or r.status == status]

    def count(self, prefix: str, status: int | None = 200) -> int:
        return sum(1 for t in self.titles(status) if t.startswith(prefix))

    def wait(self, prefix: str, n: int = 1, timeout: float = 60, status: int | None = 200
             ) -> list[Received]:  # fmt: skip
        deadline = time.monotonic() + timeout
        while self.count(prefix, status) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"waited for {n} x {prefix!r}; got {self.titles(None)}")
            time.sleep(0.05)
        with self.lock:
            return [r for r in self.got
                    if r.title.startswith(prefix) and (status is None or r.status == status)]


@contextmanager
def receiver(answers: list[int] | None = None) -> Iterator[Receiver]:
    rec: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            with rec.lock:
                status = rec.answers.pop(0) if rec.answers else 200
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                rec.got.append(Received(time.monotonic(), status, body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec = Receiver(f"json://127.0.0.1:{server.server_address[1]}/hook", list(answers or []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
