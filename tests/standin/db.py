"""Per-request transactions that reproduce PostgREST v14's preamble.

PostgREST logs in as ``authenticator`` and, per request, opens a transaction,
sets ``search_path``, ``role``, ``request.jwt.claims``, ``request.method``,
``request.path`` and ``request.headers`` with ``set_config(..., true)`` and then
runs the query. The stand-in logs in as a superuser (which may switch to any
role) and does the same, so RLS, grants and ``auth.jwt()`` behave as in
production. Storage and Realtime use the same helper for their RLS checks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import psycopg
from psycopg_pool import AsyncConnectionPool

from .auth import Caller

PREAMBLE = (
    "select set_config('search_path', 'public, extensions', true),"
    " set_config('role', %s, true),"
    " set_config('request.jwt.claims', %s, true),"
    " set_config('request.method', %s, true),"
    " set_config('request.path', %s, true),"
    " set_config('request.headers', %s, true),"
    " set_config('request.cookies', '{}', true)"
)


#: Supabase's timeouts for the Data API, per role: ``(statement_timeout, lock_timeout)``.
#: ``authenticator`` logs in with ``statement_timeout = 8s`` and ``lock_timeout = 8s``
#: (supabase/postgres migrations 20221028101028, 20231130133139); PostgREST then applies the
#: impersonated role's own settings: ``anon`` 3 s, ``authenticated`` 8 s, ``service_role`` none
#: of its own (so authenticator's 8 s).
API_TIMEOUTS: dict[str, tuple[str, str]] = {
    "anon": ("3s", "8s"),
    "authenticated": ("8s", "8s"),
    "service_role": ("8s", "8s"),
}


def make_pool(db_url: str, max_size: int = 10) -> AsyncConnectionPool:
    """Autocommit connections: we issue BEGIN/COMMIT ourselves, like PostgREST."""
    return AsyncConnectionPool(
        db_url,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "prepare_threshold": None},
        open=False,
    )


@asynccontextmanager
async def request_tx(
    pool: AsyncConnectionPool,
    caller: Caller,
    *,
    read_only: bool,
    method: str = "POST",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    timeouts: tuple[str, str] | None = None,
) -> AsyncIterator[psycopg.AsyncConnection]:
    """Yield a connection inside a role-impersonating transaction.

    ``timeouts``: ``(statement_timeout, lock_timeout)`` for this transaction (the Data API's;
    Storage and Realtime run their own queries without them). COMMIT on normal exit, ROLLBACK
    when the body raises (the error propagates).
    """
    async with pool.connection() as conn:
        await conn.execute("start transaction read only" if read_only
                           else "start transaction read write")
        try:
            await conn.execute(PREAMBLE, (
                caller.role,
                json.dumps(caller.claims),
                method,
                path,
                json.dumps({k.lower(): v for k, v in (headers or {}).items()}),
            ))
            if timeouts is not None:
                await conn.execute(
                    "select set_config('statement_timeout', %s, true),"
                    " set_config('lock_timeout', %s, true)", timeouts)
            yield conn
        except BaseException:
            await conn.execute("rollback")
            raise
        await conn.execute("commit")
