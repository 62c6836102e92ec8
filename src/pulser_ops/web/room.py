"""``ControlRoom``: everything one board server shares, and the router that serves it.

It owns the data clients, the change broadcaster, the shared reads, the live-log tails, the
templates and the sign-in rules. ``create_app`` wraps it in a FastAPI app; a team embedding
the board in its own app uses the room directly::

    room = ControlRoom(client)                 # an AsyncClient the host already has
    app.include_router(room.router(dependencies=[Depends(host_auth)]), prefix="/ops")
    # and in the host's lifespan: ``async with room: yield``

Pages live in ``pages/`` (one module per page, each a function adding its routes), so a later
tab (templates, artifacts, chat, performance) is one more module and one nav entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.params import Depends
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.templating import Jinja2Templates

from .. import __version__, aconnect
from ..client import AsyncClient
from ..config import Settings
from ..errors import (
    AlreadyTerminal,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PulserOpsError,
    TransportError,
)
from . import format as fmt
from .auth import (
    TOKEN_COOKIE,
    Forbidden,
    NotSignedIn,
    Principal,
    check_same_origin,
    local_principal,
    presented_token,
    session_from,
    supabase_principal,
)
from .broadcaster import Broadcaster
from .clients import ClientSource
from .config import WebConfig
from .headers import secure
from .logtail import LogTails
from .reads import SharedReads
from .sessions import COOKIE as SESSION_COOKIE
from .sessions import SupabaseAuth

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: Tabs of the top navigation: (route name, label, shortcut). Later pages add themselves here.
NAV: list[tuple[str, str, str]] = [
    ("ops.board", "Runboard", "g b"),
    ("ops.runs", "Runs", "g r"),
    ("ops.workers", "Workers", "g w"),
    ("ops.templates", "Templates", "g t"),
    ("ops.schedules", "Schedules", "g s"),
    ("ops.chat", "Chat", "g c"),
    ("ops.performance", "Performance", "g p"),
]


def _status_for(e: PulserOpsError) -> int:
    if isinstance(e, NotFound):
        return 404
    if isinstance(e, PermissionDenied):
        return 403
    if isinstance(e, AlreadyTerminal | Conflict):
        return 409
    if isinstance(e, InvalidInput):
        return 422
    if isinstance(e, TransportError):
        return 503
    return 500


class ControlRoom:
    def __init__(
        self,
        client: AsyncClient | None = None,
        *,
        config: WebConfig | None = None,
        settings: Settings | None = None,
        listen_client: AsyncClient | None = None,
        listen_connect: Callable[[], Awaitable[AsyncClient]] | None = None,
        connect: Callable[..., Awaitable[AsyncClient]] = aconnect,
    ) -> None:
        """``client``: the data client for local use (None: connect from ``settings`` / the
        environment at start, or none at all in front of Supabase, where each operator gets
        their own). ``listen_client`` / ``listen_connect``: what the broadcaster listens with
        (default: ``client``); it only ever yields a "something changed" signal, never rows,
        to the tabs."""
        self.config = config or WebConfig()
        self._settings = settings
        self._connect = connect
        self._owned: list[AsyncClient] = []
        self._listen = listen_client
        self._listen_connect = listen_connect
        self.clients = ClientSource(
            client,
            supabase_url=self.config.supabase_url,
            public_key=self.config.supabase_key,
            connect=connect,
        )
        self.broadcaster = Broadcaster(None)
        self.reads = SharedReads(
            lambda: self.broadcaster.generation, max_age=max(1.0, self.config.poll_seconds - 1)
        )
        self.tails = LogTails(
            max_lines=self.config.log_max_lines, max_bytes=self.config.log_max_bytes
        )
        self.supabase_auth: SupabaseAuth | None = None
        if self.config.auth == "supabase":
            if not self.config.supabase_url or not self.config.supabase_key:
                raise InvalidInput("Supabase sign-in needs the project URL and its public key")
            self.supabase_auth = SupabaseAuth(self.config.supabase_url, self.config.supabase_key)
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(fmt.FILTERS)
        env.globals.update(fmt.GLOBALS)
        env.globals.update(nav=NAV, version=__version__, config=self.config)
        self.templates = Jinja2Templates(env=env)
        self.started = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            return
        if self.clients.server is None and self.config.auth != "supabase":
            s = self._settings
            client = await (
                self._connect(
                    s.database_url,
                    supabase_url=s.supabase_url,
                    supabase_key=s.supabase_key,
                    access_token=s.access_token,
                    home=s.home,
                    storage_dir=s.storage_dir,
                )
                if s is not None
                else self._connect()
            )
            self._owned.append(client)
            self.clients.server = client
        listen = self._listen
        if listen is None and self._listen_connect is not None:
            listen = await self._listen_connect()
            self._owned.append(listen)
        listen = listen or self.clients.server
        self.broadcaster = Broadcaster(listen)
        await self.broadcaster.start()
        self.started = True

    async def stop(self) -> None:
        await self.broadcaster.stop()
        await self.clients.close()
        if self.supabase_auth is not None:
            await self.supabase_auth.close()
        for client in self._owned:
            with contextlib.suppress(Exception):
                await client.close()
        self._owned.clear()
        self.started = False

    async def __aenter__(self) -> ControlRoom:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- who asks ----------------------------------------------------------------------------

    async def principal(self, request: Request) -> Principal:
        cached: Principal | None = getattr(request.state, "principal", None)
        if cached is not None:
            return cached
        if self.config.auth != "supabase":
            who = local_principal(request, self.config)
        else:
            session = session_from(request)
            if session is None or self.supabase_auth is None:
                raise NotSignedIn()
            if session.needs_refresh():
                try:
                    fresh = await self.supabase_auth.refresh(session)
                except PermissionDenied:
                    raise NotSignedIn() from None
                await self.clients.forget(f"session:{session.access_token}")
                request.state.set_session = fresh
                session = fresh
            who = supabase_principal(session)
        request.state.principal = who
        return who

    async def client(self, request: Request) -> tuple[Principal, AsyncClient]:
        who = await self.principal(request)
        return who, await self.clients.for_principal(who)

    async def acting(
        self, request: Request, *, admin: bool = False, what: str = "change lanes"
    ) -> tuple[Principal, AsyncClient]:
        """For a state change: same-origin, and a role that may do it (``admin``: only an
        admin may ``what``)."""
        check_same_origin(request, self.config)
        who, client = await self.client(request)
        if admin and not who.is_admin:
            raise Forbidden(f"{who.name} is {who.role}: only an admin may {what}")
        if not who.can_act:
            raise Forbidden(f"{who.name} is read-only")
        return who, client

    # --- responses ---------------------------------------------------------------------------

    def finish(self, request: Request, response: Response) -> Response:
        """Cookies owed: a refreshed Supabase session, or a token presented in the URL."""
        fresh = getattr(request.state, "set_session", None)
        if fresh is not None:
            self.set_session_cookie(response, fresh.to_cookie())
        return response

    def set_session_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=30 * 86400,
            httponly=True,
            samesite="lax",
            secure=self.config.secure_cookies,
            path="/",
        )

    def render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        who = getattr(request.state, "principal", None)
        ctx = {
            # Paths, not absolute URLs: links keep working behind a proxy that rewrites Host.
            "url_for": lambda route, /, **params: request.url_for(route, **params).path,
            "who": who,
            "now": fmt.now(),
            "poll_seconds": self.config.poll_seconds,
            "listening": self.broadcaster.listening,
            **context,
        }
        response = self.templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return self.finish(request, response)

    def error(self, request: Request, status: int, message: str) -> Response:
        if request.headers.get("hx-request"):
            return self.render(request, "partials/error.html", {"message": message}, status)
        return self.render(request, "error.html", {"message": message, "status": status}, status)

    def not_signed_in(self, request: Request, e: NotSignedIn) -> Response:
        if e.basic:
            return PlainTextResponse(
                "sign in required", 401, headers={"WWW-Authenticate": 'Basic realm="pulser-ops"'}
            )
        if self.config.auth == "supabase" and request.method == "GET":
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": self._login_url(request)})
            if "text/event-stream" not in request.headers.get("accept", ""):
                return RedirectResponse(self._login_url(request), 303)
        return PlainTextResponse(
            "sign in required: open the URL with ?token=… printed by `pulser-ops ui`", 401
        )

    def _login_url(self, request: Request) -> str:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return f"{request.url_for('ops.login')}?next={path}"

    def token_landing(self, request: Request, response: Response) -> Response:
        """``?token=`` in a link: keep it in an HttpOnly cookie and drop it from the URL."""
        token = request.query_params.get("token")
        if token and token == presented_token(request) and request.method == "GET":
            clean = request.url.remove_query_params("token")
            redirect = RedirectResponse(str(clean), 303)
            redirect.set_cookie(
                TOKEN_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                secure=self.config.secure_cookies,
                path="/",
            )
            return redirect
        return response

    # --- routes ------------------------------------------------------------------------------

    def _route_class(self) -> type[APIRoute]:
        room = self

        class RoomRoute(APIRoute):
            """Maps the room's exceptions to pages, partials or status codes in one place
            (an included router cannot rely on the host app's exception handlers), and adds
            the security headers (``headers.py``) to every answer."""

            def get_route_handler(self) -> Callable[[Request], Any]:
                handler = super().get_route_handler()

                async def wrapped(request: Request) -> Response:
                    return secure(await answer(request))

                async def answer(request: Request) -> Response:
                    try:
                        response: Response = await handler(request)
                    except NotSignedIn as e:
                        return room.not_signed_in(request, e)
                    except Forbidden as e:
                        return room.error(request, 403, str(e))
                    except PulserOpsError as e:
                        return room.error(request, _status_for(e), f"{e.code}: {e}")
                    if room.config.token is not None and "token" in request.query_params:
                        return room.token_landing(request, response)
                    return response

                return wrapped

        return RoomRoute

    def router(self, *, dependencies: Sequence[Depends] = ()) -> APIRouter:
        from .pages import add_all

        router = APIRouter(route_class=self._route_class(), dependencies=list(dependencies))
        add_all(router, self)
        return router


def html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status)
