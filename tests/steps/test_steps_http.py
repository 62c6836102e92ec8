"""HTTP steps against a real local ``http.server`` running in a thread."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pulser_ops.steps import RecordingContext, parse_step, run_step


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event  # set at teardown so /slow returns
    entered_slow: threading.Event

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        parts = urlsplit(self.path)
        payload = {
            "method": self.command,
            "path": parts.path,
            "query": parse_qs(parts.query),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        self._send(200, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:
        if self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
            self._send(status, f"status {status}".encode(), "text/plain")
        elif self.path == "/slow":
            self.entered_slow.set()
            self.release.wait(60)
            self._send(200, b"late", "text/plain")
        elif self.path == "/big":
            self._send(200, b"x" * 300_000, "text/plain")
        elif self.path == "/binary":
            self._send(200, bytes(range(256)), "application/octet-stream")
        else:
            self._echo()

    def do_POST(self) -> None:
        self._echo()


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    class Handler(_Handler):  # fresh events per test
        release = threading.Event()
        entered_slow = threading.Event()

    handler = Handler
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        handler.release.set()
        httpd.shutdown()
        httpd.server_close()


def http(**fields: Any) -> Any:
    return parse_step({"kind": "http", "name": "call", **fields})


def test_get_with_encoded_params_saves_json_artifact(
    ctx: RecordingContext, server: tuple[str, Any]
) -> None:
    base, _ = server
    ctx.params = {"item": "a b/../c", "q": "x&admin=1", "token": "s3cret"}
    outcome = run_step(
        http(
            url=base + "/items/{{ params.item }}?q={{ params.q }}",
            headers={"Authorization": "Bearer {{ params.token }}"},
        ),
        ctx,
    )
    assert outcome.status == "succeeded", outcome.error
    echoed = outcome.result["json"]
    assert echoed["path"] == "/items/a%20b%2F..%2Fc"  # one path segment, no traversal
    assert echoed["query"] == {"q": ["x&admin=1"]}  # no smuggled second parameter
    assert echoed["headers"]["authorization"] == "Bearer s3cret"
    artifact = ctx.artifacts["call.response.json"]
    assert artifact.kind == "json" and json.loads(artifact.text) == echoed
    assert outcome.artifacts == ("call.response.json",)


def test_post_json_body_is_json_encoded(ctx: RecordingContext, server: tuple[str, Any]) -> None:
    base, _ = server
    evil = '", "admin": true, "x": "'
    ctx.params = {"n": 5, "tags": ["a", "b"], "note": evil}
    outcome = run_step(
        http(
            method="POST",
            url=base + "/echo",
            body={
                "n": "{{ params.n }}",
                "tags": "{{ params.tags }}",
                "text": "note: {{ params.note }}",
            },
        ),
        ctx,
    )
    assert outcome.status == "succeeded", outcome.error
    echoed = outcome.result["json"]
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == {"n": 5, "tags": ["a", "b"], "text": f"note: {evil}"}


def test_text_body(ctx: RecordingContext, server: tuple[str, Any]) -> None:
    base, _ = server
    ctx.params = {"who": "ops"}
    outcome = run_step(http(method="POST", url=base + "/echo", body="hi {{ params.who }}"), ctx)
    assert outcome.result["json"]["body"] == "hi ops"
    assert outcome.result["json"]["headers"]["content-type"].startswith("text/plain")


def test_unexpected_status_fails_and_keeps_response(
    ctx: RecordingContext, server: tuple[str, Any]
) -> None:
    base, _ = server
    outcome = run_step(http(url=base + "/status/404"), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "http_404"
    assert "HTTP 404, expected 2xx" in (outcome.error or "")
    assert ctx.artifacts["call.response.txt"].text == "status 404"
    assert outcome.result["status_code"] == 404


def test_expected_status_list_and_custom_artifact_name(
    ctx: RecordingContext, server: tuple[str, Any]
) -> None:
    base, _ = server
    outcome = run_step(
        http(url=base + "/status/404", expected_status=[200, 404], save_response_as="out/r.txt"),
        ctx,
    )
    assert outcome.status == "succeeded"
    assert ctx.artifacts["out/r.txt"].text == "status 404"
    wrong = run_step(http(url=base + "/status/200", expected_status=201, name="c2"), ctx)
    assert wrong.status == "failed" and wrong.error_class == "http_200"


def test_response_body_is_bounded(ctx: RecordingContext, server: tuple[str, Any]) -> None:
    base, _ = server
    outcome = run_step(http(url=base + "/big", max_response_bytes=1000), ctx)
    assert outcome.status == "succeeded"
    assert outcome.result["truncated"] is True
    assert ctx.artifacts["call.response.txt"].text == "x" * 1000


def test_binary_response_is_saved_as_file(ctx: RecordingContext, server: tuple[str, Any]) -> None:
    base, _ = server
    outcome = run_step(http(url=base + "/binary"), ctx)
    artifact = ctx.artifacts["call.response.bin"]
    assert outcome.status == "succeeded"
    assert artifact.kind == "file" and artifact.data == bytes(range(256))


def test_cancel_aborts_a_request_in_flight(ctx: RecordingContext, server: tuple[str, Any]) -> None:
    base, handler = server

    def cancel_once_server_is_busy() -> None:
        handler.entered_slow.wait(30)
        ctx.cancel_token.set()

    threading.Thread(target=cancel_once_server_is_busy, daemon=True).start()
    outcome = run_step(http(url=base + "/slow", timeout_seconds=120), ctx)
    assert outcome.status == "cancelled"
    assert outcome.error_class == "step_cancelled"
    assert not handler.release.is_set()  # we did not wait for the server to answer


def test_timeout(ctx: RecordingContext, server: tuple[str, Any]) -> None:
    base, _ = server
    outcome = run_step(http(url=base + "/slow", timeout_seconds=0.3), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "step_timeout"
    assert outcome.artifacts == ()


def test_connection_refused_is_a_retryable_failure(ctx: RecordingContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = run_step(http(url=f"http://127.0.0.1:{port}/"), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "step_failed" and outcome.retryable is True
    assert "ConnectError" in (outcome.error or "")


def test_header_injection_via_param_is_refused(
    ctx: RecordingContext, server: tuple[str, Any]
) -> None:
    base, _ = server
    ctx.params = {"t": "x\r\nX-Admin: 1"}
    outcome = run_step(http(url=base + "/echo", headers={"X-T": "{{ params.t }}"}), ctx)
    assert outcome.status == "failed" and outcome.error_class == "template_error"
