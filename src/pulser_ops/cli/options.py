"""Connection options shared by every operator command, and the client they resolve to.

Every command accepts ``--db-url``, ``--supabase-url``, ``--supabase-key`` and ``--home``; left
out, the environment decides, and without either the embedded database is started (exactly
``pulser_ops.connect``'s resolution). A decorator adds the options to a command's signature, so
each command only declares what it is about and receives a ready ``client``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .. import aconnect, connect, embedded
from ..client import AsyncClient, Client
from ..config import Settings, resolve
from .output import err, reported

T = TypeVar("T")
PANEL = "Connection"


@dataclass(frozen=True)
class Connection:
    db_url: str | None = None
    supabase_url: str | None = None
    supabase_key: str | None = None
    home: Path | None = None

    def settings(self) -> Settings:
        return resolve(
            self.db_url,
            supabase_url=self.supabase_url,
            supabase_key=self.supabase_key,
            home=self.home,
        )


def _option(name: str, annotation: Any, help_text: str) -> inspect.Parameter:
    return inspect.Parameter(
        name.lstrip("-").replace("-", "_"),
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            annotation,
            typer.Option(name, help=help_text, rich_help_panel=PANEL, show_default=False),
        ],
    )


HOME_OPTION = _option(
    "--home", Path | None, "Embedded database home (env PULSER_OPS_HOME, default ./.pulser-ops)."
)
CONNECTION_OPTIONS = (
    _option("--db-url", str | None, "PostgreSQL URL (env PULSER_OPS_DATABASE_URL)."),
    _option("--supabase-url", str | None, "Supabase project URL (env SUPABASE_URL)."),
    _option("--supabase-key", str | None, "Supabase key (env SUPABASE_SERVICE_ROLE_KEY, ...)."),
    HOME_OPTION,
)
_NAMES = ("db_url", "supabase_url", "supabase_key", "home")


def embedded_url(home: Path) -> str:
    """Start (or find) the embedded database, with a spinner telling what takes the time."""
    if not err.is_terminal:
        return embedded.ensure_database(home)
    with err.status("Checking the embedded database...", spinner="dots") as status:
        return embedded.ensure_database(home, on_progress=lambda msg: status.update(msg + "..."))


def _database_url(settings: Settings) -> str | None:
    return embedded_url(settings.home) if settings.mode == "embedded" else settings.database_url


@contextmanager
def client_for(conn: Connection) -> Iterator[Client]:
    settings = conn.settings()
    url = _database_url(settings)
    client = connect(
        url,
        supabase_url=settings.supabase_url,
        supabase_key=settings.supabase_key,
        home=settings.home,
        storage_dir=settings.storage_dir,
    )
    try:
        yield client
    finally:
        client.close()


async def async_client_for(conn: Connection) -> AsyncClient:
    settings = conn.settings()
    return await aconnect(
        _database_url(settings),
        supabase_url=settings.supabase_url,
        supabase_key=settings.supabase_key,
        home=settings.home,
        storage_dir=settings.storage_dir,
    )


def _with_options(
    fn: Callable[..., T], inject: str, extra: tuple[inspect.Parameter, ...]
) -> tuple[inspect.Signature, list[inspect.Parameter]]:
    sig = inspect.signature(fn, eval_str=True)
    params = [p for name, p in sig.parameters.items() if name != inject]
    return sig.replace(parameters=[*params, *extra]), params


def _install(wrapper: Callable[..., Any], sig: inspect.Signature) -> None:
    wrapper.__signature__ = sig  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in sig.parameters.values()}


def with_connection(fn: Callable[..., T]) -> Callable[..., T]:
    """Add the connection options; the command gets them as ``conn: Connection``."""
    sig, _ = _with_options(fn, "conn", CONNECTION_OPTIONS)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        conn = Connection(**{n: kwargs.pop(n, None) for n in _NAMES})
        with reported():
            return fn(*args, conn=conn, **kwargs)

    _install(wrapper, sig)
    return wrapper


def with_client(fn: Callable[..., T]) -> Callable[..., T]:
    """Add the connection options; the command gets an open ``client: Client``."""
    sig, _ = _with_options(fn, "client", CONNECTION_OPTIONS)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        conn = Connection(**{n: kwargs.pop(n, None) for n in _NAMES})
        with reported(), client_for(conn) as client:
            return fn(*args, client=client, **kwargs)

    _install(wrapper, sig)
    return wrapper


def with_home(fn: Callable[..., T]) -> Callable[..., T]:
    """Add ``--home`` only; the command gets the resolved embedded home as ``home: Path``."""
    sig, _ = _with_options(fn, "home", (HOME_OPTION,))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        given = kwargs.pop("home", None)
        home = Path(given or os.environ.get("PULSER_OPS_HOME") or ".pulser-ops")
        with reported():
            return fn(*args, home=home, **kwargs)

    _install(wrapper, sig)
    return wrapper
