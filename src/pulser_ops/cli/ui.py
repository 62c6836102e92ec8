"""``pulser-ops ui``: serve the Ops Control Room.

On a fresh clone it opens on the embedded database with no flags, bound to 127.0.0.1. Any
other address needs sign-in: HTTP Basic users from the environment, or an access token that
is generated and printed (as Jupyter does). In front of Supabase (``SUPABASE_URL`` and the
project's publishable/anon key) operators sign in with Supabase Auth instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from dataclasses import replace
from typing import Annotated

import typer

from ..client import AsyncClient
from ..config import resolve
from ..errors import ConfigurationError
from .options import Connection, embedded_url, with_connection
from .output import note


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _public_key(conn: Connection) -> str | None:
    if conn.supabase_key and not conn.supabase_key.startswith("sb_secret_"):
        return conn.supabase_key
    return os.environ.get("SUPABASE_PUBLISHABLE_KEY") or os.environ.get("SUPABASE_ANON_KEY")


HOST_HELP = "Address to bind (anything but loopback needs auth)."
TOKEN_HELP = "Access token to require (default: generated when not on loopback)."


@with_connection
def ui_command(
    conn: Connection,
    host: Annotated[str, typer.Option(help=HOST_HELP)] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8765,
    token: Annotated[
        str | None, typer.Option(envvar="PULSER_OPS_UI_TOKEN", help=TOKEN_HELP, show_default=False)
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Nobody may change anything.")
    ] = False,
    root_path: Annotated[str, typer.Option(help="Path prefix behind a proxy (e.g. /ops).")] = "",
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Cookies only over HTTPS (behind TLS).")
    ] = False,
) -> None:
    """Serve the Ops Control Room in the browser: Runboard, runs, live logs, workers."""
    import uvicorn

    from ..web import ControlRoom, WebConfig, create_app
    from ..web.config import basic_users_from_env, new_token

    settings = conn.settings()
    users = basic_users_from_env()
    config = WebConfig(read_only=read_only, secure_cookies=secure_cookies)
    listen = None
    where = f"{settings.mode} database"
    if settings.mode == "supabase" and settings.database_url is None:
        public = _public_key(conn)
        if public is None:
            raise ConfigurationError(
                "in front of Supabase the board signs operators in with Supabase Auth: "
                "set SUPABASE_PUBLISHABLE_KEY (or SUPABASE_ANON_KEY)"
            )
        config = replace(
            config, auth="supabase", supabase_url=settings.supabase_url, supabase_key=public
        )
        where = f"Supabase at {settings.supabase_url} (operators sign in with Supabase Auth)"
        # Change signals only (never rows, never a call on an operator's behalf): listen with
        # the server's own key when it has a secret one; otherwise the board polls.
        service = os.environ.get("SUPABASE_SERVICE_ROLE_KEY") or os.environ.get(
            "SUPABASE_SECRET_KEY"
        )
        settings = replace(settings, supabase_key=service) if service else settings
        listen = service is not None
    else:
        if settings.mode == "embedded":
            url = embedded_url(settings.home)
            settings = resolve(url, home=settings.home, storage_dir=settings.storage_dir)
            where = f"the embedded database in {settings.home}"
        if token or users or not _loopback(host):
            if not token and not users:
                token = new_token()
            config = replace(config, auth="local", token=token, basic_users=users)

    listen_connect = None
    if listen:
        from .. import aconnect

        async def listen_connect() -> AsyncClient:
            return await aconnect(
                supabase_url=settings.supabase_url, supabase_key=settings.supabase_key
            )

    room = ControlRoom(
        config=config,
        settings=None if config.auth == "supabase" else settings,
        listen_connect=listen_connect,
    )
    app = create_app(room=room)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            root_path=root_path,
            proxy_headers=True,
            timeout_graceful_shutdown=3,
        )
    )

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.05)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            base = f"http://{shown}:{bound}{root_path}/"
            print(f"pulser-ops control room on {where}", flush=True)
            print(f"  {base}" + (f"?token={token}" if config.token else ""), flush=True)
            if config.basic_users:
                names = ", ".join(f"{u.name} ({u.role})" for u in config.basic_users)
                print(f"  HTTP Basic users: {names}", flush=True)
            if config.read_only:
                print("  read-only: nobody may change anything", flush=True)
            print("  Ctrl-C to stop", flush=True)
        await task

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        note("stopped")
    sys.exit(0)
