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
) -> AsyncIterator[psycopg.AsyncConnection]:
    """Yield a connection inside a role-impersonating transaction.

    COMMIT on normal exit, ROLLBACK when the body raises (the error propagates).
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
            yield conn
        except BaseException:
            await conn.execute("rollback")
            raise
        await conn.execute("commit")
