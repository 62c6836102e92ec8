"""``http`` steps: one request with httpx, response saved (bounded) as an artifact."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

import httpx

from pulser_ops.errors import StepError, StepFailed, StepTimeout
from pulser_ops.steps.aio import run_cancellable
from pulser_ops.steps.context import ArtifactKind, StepContext
from pulser_ops.steps.outcome import StepOutcome, failed, utcnow
from pulser_ops.steps.specs import HttpStep
from pulser_ops.steps.template import interpolate, render_header, render_json, render_url

#: Parsed JSON responses up to this size are also returned as the step's ``result``.
_RESULT_JSON_MAX = 64 * 1024


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    content_type: str
    body: bytes
    truncated: bool


def build_request(spec: HttpStep, ctx: StepContext) -> HttpRequest:
    """Render URL (values percent-encoded), headers and body (values JSON-encoded)."""
    where = f"step {spec.name!r}"
    url = render_url(spec.url, ctx.params, where=f"{where} url")
    headers = {
        key: render_header(value, ctx.params, where=f"{where} headers.{key}")
        for key, value in spec.headers.items()
    }
    lower = {k.lower() for k in headers}
    content: bytes | None = None
    if isinstance(spec.body, str):
        content = interpolate(spec.body, ctx.params, where=f"{where} body").encode()
        if "content-type" not in lower:
            headers["Content-Type"] = "text/plain; charset=utf-8"
    elif spec.body is not None:
        rendered = render_json(spec.body, ctx.params, where=f"{where} body")
        content = json.dumps(rendered, separators=(",", ":")).encode()
        if "content-type" not in lower:
            headers["Content-Type"] = "application/json"
    return HttpRequest(spec.method, url, headers, content)


async def send(
    req: HttpRequest, spec: HttpStep, client: httpx.AsyncClient | None = None
) -> HttpResponse:
    """Send the request on ``client`` (the worker's, whose connections are reused across runs),
    or on a client of its own."""
    if client is None:
        async with httpx.AsyncClient() as own:
            return await send(req, spec, own)
    async with client.stream(
        req.method,
        req.url,
        headers=req.headers,
        content=req.content,
        timeout=httpx.Timeout(spec.timeout_seconds),
        follow_redirects=spec.follow_redirects,
    ) as resp:
        body = bytearray()
        truncated = False
        async for chunk in resp.aiter_bytes():
            room = spec.max_response_bytes - len(body)
            body += chunk[:room]
            if len(chunk) > room:
                truncated = True
                break
        return HttpResponse(
            resp.status_code, resp.headers.get("content-type", ""), bytes(body), truncated
        )


def status_ok(status: int, expected: int | list[int] | None) -> bool:
    if expected is None:
        return 200 <= status < 300
    if isinstance(expected, int):
        return status == expected
    return status in expected


def _artifact(spec: HttpStep, resp: HttpResponse) -> tuple[str, str | bytes, ArtifactKind, str]:
    is_json = "json" in resp.content_type.lower()
    content_type = resp.content_type or "application/octet-stream"
    try:
        text = resp.body.decode("utf-8")
    except UnicodeDecodeError:
        return (
            spec.save_response_as or f"{spec.name}.response.bin",
            resp.body,
            "file",
            content_type,
        )
    if is_json:
        return (spec.save_response_as or f"{spec.name}.response.json", text, "json", content_type)
    return (spec.save_response_as or f"{spec.name}.response.txt", text, "text", content_type)


def run_http(spec: HttpStep, ctx: StepContext) -> StepOutcome:
    """Send the request; a status outside ``expected_status`` fails the step.

    Such a failure has ``error_class`` ``http_<status>`` (e.g. ``http_404``) so a
    template can list specific statuses in ``non_retryable_errors``.
    """
    started_at = utcnow()
    req = build_request(spec, ctx)
    try:
        resp = run_cancellable(
            lambda: send(req, spec),
            token=ctx.cancel_token,
            timeout_seconds=spec.timeout_seconds,
            what=f"{req.method} request",
        )
    except StepError as exc:
        return failed(started_at, exc)
    except httpx.HTTPError as exc:
        return transport_failure(req, exc, started_at)
    saved, result = outcome(spec, req, resp, started_at)
    ctx.save_artifact(*saved)
    return result


def transport_failure(req: HttpRequest, exc: httpx.HTTPError, started_at: datetime) -> StepOutcome:
    if isinstance(exc, httpx.TimeoutException):
        return failed(started_at, StepTimeout(f"{req.method} request timed out: {exc!r}"))
    return failed(started_at, StepFailed(f"{req.method} request failed: {exc!r}"))


def outcome(
    spec: HttpStep, req: HttpRequest, resp: HttpResponse, started_at: datetime
) -> tuple[tuple[str, str | bytes, ArtifactKind, str], StepOutcome]:
    """The artifact to save (the response) and the step's outcome, which sums it up."""
    saved = name, _, kind, _ = _artifact(spec, resp)
    result: dict[str, object] = {
        "status_code": resp.status_code,
        "bytes": len(resp.body),
        "truncated": resp.truncated,
        "content_type": resp.content_type,
        "artifact": name,
    }
    if kind == "json" and not resp.truncated and len(resp.body) <= _RESULT_JSON_MAX:
        with contextlib.suppress(ValueError):
            result["json"] = json.loads(resp.body)
    if not status_ok(resp.status_code, spec.expected_status):
        expected = "2xx" if spec.expected_status is None else str(spec.expected_status)
        return saved, failed(
            started_at,
            StepFailed(f"{req.method} returned HTTP {resp.status_code}, expected {expected}"),
            result=result,
            artifacts=(name,),
            error_class=f"http_{resp.status_code}",
        )
    return saved, StepOutcome(
        status="succeeded",
        started_at=started_at,
        finished_at=utcnow(),
        result=result,
        artifacts=(name,),
    )
