"""The MCP server around the toolbox: over stdio (what an assistant launches) or over
streamable HTTP (``/mcp``), with the pinned ``mcp`` package's low-level server, since the tools
change with the templates (a template added later is a tool on the next ``tools/list``).

Over HTTP it binds 127.0.0.1 by default, where the ``mcp`` package also refuses requests whose
Host or Origin is not local (DNS rebinding). Any other address needs a bearer token, given or
generated and printed at start, checked before a request reaches the server.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from .. import __version__
from ..client import AsyncClient
from .tools import Toolbox

INSTRUCTIONS = (
    "pulser-ops: a run queue. Templates are the jobs you can run (list_templates, or the "
    "run_<template> tools, whose arguments are the template's params). A run is queued, "
    "claimed by a worker, and ends succeeded, failed or cancelled; wait_for_run waits for the "
    "end, get_run shows its steps and log, read_artifact reads what it produced. You act with "
    "the credentials this server was started with: the control plane refuses what they may "
    "not do."
)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def build_server(toolbox: Toolbox) -> Server[Any]:
    async def list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await toolbox.list_tools())

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await toolbox.call(params.name, params.arguments)

    return Server(
        "pulser-ops",
        version=__version__,
        title="pulser-ops control plane",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(client: AsyncClient) -> None:
    server = build_server(Toolbox(client))
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def require_bearer(app: ASGIApp, token: str) -> ASGIApp:
    """Refuse HTTP requests without ``Authorization: Bearer <token>`` (401)."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"www-authenticate", b"Bearer")]})  # fmt: skip
                await send({"type": "http.response.body", "body": b"bearer token required"})
                return
        await app(scope, receive, send)

    return guarded


def http_app(client: AsyncClient, *, host: str, token: str | None) -> ASGIApp:
    server = build_server(Toolbox(client))
    app: ASGIApp = server.streamable_http_app(streamable_http_path="/mcp", host=host)
    return require_bearer(app, token) if token else app


async def serve_http(client: AsyncClient, *, host: str, port: int, token: str | None) -> None:
    import uvicorn

    config = uvicorn.Config(
        http_app(client, host=host, token=token), host=host, port=port, log_level="warning"
    )
    await uvicorn.Server(config).serve()
