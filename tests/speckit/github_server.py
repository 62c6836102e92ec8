"""A local HTTP server standing in for GitHub's issue-comments REST API; it records every
request so the tests can assert the exact calls (a test fixture, not GitHub)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    repo: str = "acme/notes"
    pr: int = 7
    comments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    deny: bool = False
    url: str = ""
    _next_id: int = 1000

    def add(self, body: str, user: str = "someone") -> dict[str, Any]:
        self._next_id += 1
        c = {
            "id": self._next_id,
            "body": body,
            "user": {"login": user},
            "html_url": f"https://github.test/{self.repo}/pull/{self.pr}#c{self._next_id}",
        }
        self.comments.append(c)
        return c

    def calls(self) -> list[tuple[str, str]]:
        return [
            (
                r.method,
                r.path
                + (
                    "?" + "&".join(f"{k}={v}" for k, v in sorted(r.query.items()))
                    if r.query
                    else ""
                ),
            )
            for r in self.requests
        ]


def _handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _record(self) -> Request:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            req = Request(
                self.command,
                parts.path,
                {k: v[0] for k, v in parse_qs(parts.query).items()},
                {k.lower(): v for k, v in self.headers.items()},
                json.loads(raw) if raw else None,
            )
            gh.requests.append(req)
            return req

        def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            req = self._record()
            if gh.deny:
                return self._send(403, {"message": "Resource not accessible by integration"})
            if req.path != f"/repos/{gh.repo}/issues/{gh.pr}/comments":
                return self._send(404, {"message": "Not Found"})
            per_page = int(req.query.get("per_page", 30))
            page = int(req.query.get("page", 1))
            chunk = gh.comments[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(gh.comments):
                nxt = f"{gh.url}{req.path}?per_page={per_page}&page={page + 1}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            self._send(200, chunk, headers)

        def do_POST(self) -> None:
            req = self._record()
            if gh.deny:
                return self._send(403, {"message": "Resource not accessible by integration"})
            if req.path != f"/repos/{gh.repo}/issues/{gh.pr}/comments":
                return self._send(404, {"message": "Not Found"})
            self._send(201, gh.add(req.body["body"], user="github-actions[bot]"))

        def do_PATCH(self) -> None:
            req = self._record()
            cid = int(req.path.rsplit("/", 1)[1])
            for c in gh.comments:
                if c["id"] == cid:
                    c["body"] = req.body["body"]
                    return self._send(200, c)
            self._send(404, {"message": "Not Found"})

    return Handler


@contextmanager
def fake_github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gh))
    gh.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield gh
    finally:
        httpd.shutdown()
        httpd.server_close()
