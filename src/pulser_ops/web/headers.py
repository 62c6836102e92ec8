"""Security headers on every response of the room.

The Content-Security-Policy allows the app's own files only: scripts and styles from its own
origin (no inline script, no inline style, no eval), images from itself (artifacts are served
through the app, with the same permission checks) and ``data:``, connections to itself (htmx,
SSE), no plugins, no framing by other sites. So even markup that slipped past escaping (a
hostile artifact, a log line) cannot run script or load anything from elsewhere.

Raw artifact bytes get a stricter policy still (``ARTIFACT_CSP``): a sandbox with nothing
allowed, so an HTML or SVG artifact opened directly is inert.
"""

from __future__ import annotations

from starlette.responses import Response

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    )
)
ARTIFACT_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"


def secure(response: Response) -> Response:
    """Add the room's headers unless a handler set its own (raw artifacts do)."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
