"""``pulser-ops mcp``: the control plane as a Model Context Protocol server for AI agents.

Over stdio (the default: what an assistant launches as a subprocess; stdout is the protocol,
so everything else goes to stderr) or streamable HTTP (``--http``, at ``/mcp``). It acts with
the credentials it is started with, resolved like every command (``--db-url``, Supabase URL
and key, ``PULSER_OPS_ACCESS_TOKEN`` for an operator's JWT, else the embedded database).
See docs/MCP.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Annotated

import typer

from ..web.config import new_token
from .options import Connection, async_client_for, with_connection
from .ui import _loopback

TOKEN_HELP = "Bearer token HTTP clients must send (default: generated when not on loopback)."


@with_connection
def mcp_command(
    conn: Connection,
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP, not stdio.")] = False,
    host: Annotated[str, typer.Option(help="With --http: address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --http: port.")] = 8766,
    token: Annotated[
        str | None, typer.Option(envvar="PULSER_OPS_MCP_TOKEN", help=TOKEN_HELP, show_default=False)
    ] = None,
) -> None:
    """Serve the control plane to AI agents over MCP: templates as tools, runs, artifacts."""
    from ..agents import serve_http, serve_stdio

    if http and token is None and not _loopback(host):
        token = new_token()

    async def main() -> None:
        client = await async_client_for(conn)
        try:
            if not http:
                await serve_stdio(client)
                return
            print(f"pulser-ops MCP server on http://{host}:{port}/mcp", file=sys.stderr, flush=True)
            if token:
                print(f"  clients send: Authorization: Bearer {token}", file=sys.stderr, flush=True)
            await serve_http(client, host=host, port=port, token=token)
        finally:
            await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
