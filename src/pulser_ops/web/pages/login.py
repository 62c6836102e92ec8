"""Sign-in with Supabase Auth (email and password), sign-out. Only used when the room fronts a
Supabase project; locally the token or HTTP Basic does the job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from ...errors import NotFound, PermissionDenied
from ..auth import check_same_origin
from ..sessions import COOKIE

if TYPE_CHECKING:
    from ..room import ControlRoom


def _safe_next(value: str) -> str:
    """Only a path on this site (no scheme, no //host): no open redirect."""
    return value if value.startswith("/") and not value.startswith("//") else "/"


def add(router: APIRouter, room: ControlRoom) -> None:
    @router.get("/login", name="ops.login")
    async def login_page(request: Request, next: str = "/") -> Response:
        if room.supabase_auth is None:
            raise NotFound("sign-in is only used in front of a Supabase project")
        return room.render(request, "login.html", {"next": _safe_next(next), "message": None})

    @router.post("/login", name="ops.login_post")
    async def login(
        request: Request,
        email: Annotated[str, Form()],
        password: Annotated[str, Form()],
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        check_same_origin(request, room.config)
        if room.supabase_auth is None:
            raise NotFound("sign-in is only used in front of a Supabase project")
        try:
            session = await room.supabase_auth.sign_in(email.strip(), password)
            await room.supabase_auth.user_email(session)
        except PermissionDenied as e:
            return room.render(
                request, "login.html", {"next": _safe_next(next), "message": str(e)}, 401
            )
        target = _safe_next(next)
        if target == "/":
            target = str(request.url_for("ops.board"))
        response = RedirectResponse(target, 303)
        room.set_session_cookie(response, session.to_cookie())
        return response

    @router.post("/logout", name="ops.logout")
    async def logout(request: Request) -> Response:
        check_same_origin(request, room.config)
        who = getattr(request.state, "principal", None)
        if who is not None:
            await room.clients.forget(who.client_key)
        response = RedirectResponse(str(request.url_for("ops.login")), 303)
        response.delete_cookie(COOKIE, path="/")
        return response
