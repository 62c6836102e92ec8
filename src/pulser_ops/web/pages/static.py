"""Vendored assets and the health probe.

Assets are served from the package (no CDN): the vendored files carry their version in their
name, so they are cached for a year; our own CSS/JS are revalidated by ETag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, JSONResponse, Response

from ...errors import NotFound

if TYPE_CHECKING:
    from ..room import ControlRoom


def add(router: APIRouter, room: ControlRoom) -> None:
    from ..room import STATIC

    files = {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file()}

    @router.get("/static/{path:path}", name="ops.static", include_in_schema=False)
    async def static_file(path: str) -> Response:
        found = files.get(path)
        if found is None:
            raise NotFound(f"no static file {path}")
        immutable = path.startswith("vendor/") and path.endswith(".js")
        return FileResponse(
            found,
            headers={
                "Cache-Control": "public, max-age=31536000, immutable" if immutable else "no-cache"
            },
        )

    @router.get("/healthz", name="ops.healthz", include_in_schema=False)
    async def healthz(request: Request) -> Response:
        """Liveness for probes: the process serves, and whether its listener runs. No auth and
        no database query: a probe must not load the database or need credentials."""
        b = room.broadcaster
        return JSONResponse(
            {"ok": True, "listening": b.listening, "tabs": b.tabs, "signals": b.signals},
            headers={"Cache-Control": "no-store"},
        )
