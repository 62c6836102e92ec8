"""``StandIn``: run the stand-in app on 127.0.0.1 in a background thread.

A test fixture, not a product: it speaks the documented PostgREST / Storage /
Realtime protocols so the real supabase-py clients can be exercised end to end
against a real PostgreSQL. Use as a context manager::

    with StandIn(db_url, jwt_secret, storage_dir) as sb:
        client = supabase.create_client(sb.url, sb.service_key)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from . import auth
from .app import StandInApp


class StandIn:
    def __init__(self, db_url: str, jwt_secret: str, storage_dir: str | Path) -> None:
        self.jwt_secret = jwt_secret
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose ``proto`` says
        # TCP, and a socket made with proto 0 (accepted connections inherit it) left Nagle on,
        # so every response waited ~45 ms for the client's delayed ACK. The option is set on
        # the listener too (Linux copies it to accepted sockets).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.app = StandInApp(db_url, jwt_secret, Path(storage_dir), self.url)
        #: The project's API keys: legacy JWT keys and the new ``sb_`` keys (``gateway.py``).
        self.anon_key = self.app.keys.anon
        self.service_key = self.app.keys.service
        self.publishable_key = self.app.keys.publishable
        self.secret_key = self.app.keys.secret_key
        config = uvicorn.Config(self.app.asgi, log_level="warning", ws="websockets-sansio",
                                lifespan="on", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------
    def start(self) -> StandIn:
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name="supabase-standin", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("stand-in server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.drop_realtime_connections()
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._thread = None
        self._sock.close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # keys and tokens -----------------------------------------------------------
    def user_token(self, sub: str, app_metadata: dict[str, Any] | None = None,
                   ttl_seconds: int = 3600, **extra: Any) -> str:
        """An access token like GoTrue's for an ``authenticated`` user."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": "authenticated", "role": "authenticated", "sub": sub,
            "iat": now, "exp": now + ttl_seconds, "app_metadata": app_metadata or {},
            "user_metadata": {}, "is_anonymous": False, **extra,
        }
        return auth.sign(self.jwt_secret, claims)

    def add_user(self, email: str, password: str,
                 app_metadata: dict[str, Any] | None = None) -> str:
        """A Supabase Auth user who can sign in with email and password; returns their id."""
        return self.app.gotrue.add_user(email, password, app_metadata)

    # realtime control ----------------------------------------------------------
    def drop_realtime_connections(self) -> int:
        """Forcibly close every open Realtime websocket; return how many were closed."""
        loop = self.app.loop
        if loop is None or not loop.is_running():
            raise RuntimeError("stand-in is not running")
        fut = asyncio.run_coroutine_threadsafe(self.app.realtime.drop_all(), loop)
        return fut.result(timeout=30)

    @property
    def realtime_joins(self) -> int:
        """How many successful ``phx_join`` replies the server has sent (for tests)."""
        return self.app.realtime.join_count
