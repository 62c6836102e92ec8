"""Direct PostgreSQL over psycopg 3: every call is one autocommit statement.

Autocommit matters: no transaction is ever held open across user code, so a slow handler can
not keep locks on ``runs``. Statements are prepared by psycopg after a few uses; set
``prepare=False`` behind Supabase's transaction pooler (port 6543), which has no prepared
statements and drops LISTEN.

A database restart leaves every pooled connection dead, and the pool learns that only when a
call fails on one. Retrying then picked one dead connection after another until the retries
ran out (a worker gave up on runs it had finished). So a connection is checked before use,
for free: an idle connection the server has written to is one it closed (a restart, a
terminated backend, ``idle_session_timeout``), and is discarded unused. After a connection
error the pool checks all its idle connections at once (``pool.check()``), and a retry waits
for a fresh connection instead of taking the next dead one.
"""

from __future__ import annotations

import asyncio
import json
import select
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from psycopg_pool.errors import PoolClosed

from ..calls import Arg, Call
from ..errors import PulserOpsError, TransportError, error_for_code
from ..files import FileStore, close_files
from .base import FeedItem, Hint, with_retry, with_retry_async

T = TypeVar("T")

CHANGES_CHANNEL = "pulser_ops_changes"
WAKEUP_CHANNEL = "pulser_ops_wakeup"


@lru_cache(maxsize=512)
def _statement(fn: str, signature: tuple[tuple[str, str], ...]) -> bytes:
    """The SQL text of a call, rendered once per function and argument list.

    The rows come back as one JSON array, the very shape PostgREST builds for an RPC (it wraps
    the call in ``json_agg`` the same way), and ``Decode.json`` validates it in pydantic-core:
    no per-value Python objects between the wire and the models.

    Rendered to bytes here because psycopg renders a ``sql.Composed`` again on every execute
    (~40 µs each, as much as decoding a claimed run). The names are our own ASCII identifiers,
    so quoting them needs no connection."""
    args = sql.SQL(", ").join(
        sql.SQL("{} => {}::{}").format(sql.Identifier(name), sql.Placeholder(name), sql.SQL(pgtype))
        for name, pgtype in signature
    )
    return (
        sql.SQL("select coalesce(json_agg(r), '[]')::text from (select * from public.{}({})) r")
        .format(sql.Identifier(fn), args)
        .as_bytes(None)
    )


def _param(arg: Arg) -> Any:
    if arg.pgtype in ("jsonb", "json"):
        return Jsonb(arg.value)
    return arg.value


def prepare(call: Call[Any]) -> tuple[bytes, dict[str, Any]]:
    """The statement and parameters for a call (shared by the sync and async drivers)."""
    signature = tuple((name, a.pgtype) for name, a in call.args.items())
    return _statement(call.fn, signature), {name: _param(a) for name, a in call.args.items()}


#: Arms a statement_timeout for the rest of the transaction (Call.statement_timeout_ms).
_TIMEOUT = b"select pg_catalog.set_config('statement_timeout', %s, true)"


def _text(row: tuple[Any, ...] | None) -> str:
    """The JSON array of a call's rows (the statement always yields exactly one text)."""
    if row is None or not isinstance(row[0], str):
        raise TransportError("the database returned no result row")
    return row[0]


def translate(exc: psycopg.Error) -> PulserOpsError:
    """The typed error for whatever psycopg raised."""
    diag = exc.diag
    state = exc.sqlstate
    if state is None or (
        isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        and (state is None or state.startswith(("08", "57P")))
    ):
        text = " ".join(str(exc).split()) or type(exc).__name__
        return TransportError(
            f"database connection failed: {text.removeprefix('connection failed: ')}"
        )
    return error_for_code(
        state,
        diag.message_primary or str(exc),
        detail=diag.message_detail,
        hint=diag.message_hint,
    )


def closed_by_server(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """True when an idle pooled connection has something to read.

    The server sends nothing on a connection it was not asked anything on (the pool's
    connections never LISTEN), except as it closes it: a restart or crash, a terminated
    backend, ``idle_session_timeout``. One non-blocking poll, no round trip."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):
        return True


def _conn_kwargs(prepare: bool) -> dict[str, Any]:
    return {
        "autocommit": True,
        "prepare_threshold": 5 if prepare else None,
        "application_name": "pulser-ops",
    }


def parse_notification(channel: str, payload: str) -> FeedItem | str | None:
    if channel == WAKEUP_CHANNEL:
        return payload
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    ids = body.get("ids")
    return Hint(
        str(body.get("t")),
        tuple(str(i) for i in ids) if ids is not None else None,
        deleted=body.get("deleted") is True,
    )


def probe(database_url: str) -> None:
    """Connect once before opening a pool: a refused or misconfigured connection is reported
    at once (the pool would keep retrying until its timeout)."""
    try:
        psycopg.connect(database_url, connect_timeout=10).close()
    except psycopg.Error as e:
        raise translate(e) from None


class PostgresTransport:
    def __init__(
        self,
        database_url: str,
        files: FileStore,
        *,
        min_size: int = 1,
        max_size: int = 8,
        prepare: bool = True,
    ) -> None:
        self.database_url = database_url
        self.files = files
        self.prepare = prepare
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            kwargs=_conn_kwargs(prepare),
            open=False,
            name="pulser-ops",
        )
        probe(database_url)
        try:
            self._pool.open(wait=True, timeout=15)
        except PoolTimeout as e:
            self._pool.close()
            raise TransportError(f"cannot connect to the database: {e}") from None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A pooled connection the server has not closed (dead ones are discarded unused)."""
        for tries in range(self._pool.max_size + 1):
            with self._pool.connection() as conn:
                if tries == self._pool.max_size or not closed_by_server(conn):
                    yield conn
                    return
                conn.close()  # the pool replaces a closed connection with a new one

    @property
    def max_rows(self) -> int | None:
        """No row cap: a direct connection returns every row."""
        return None

    def _check_pool(self) -> None:
        """After a connection error: discard every dead idle connection now, so the retry
        waits for a fresh one instead of failing on the next dead one."""
        with suppress(psycopg.Error, PoolClosed):
            self._pool.check()

    def execute(self, call: Call[T]) -> T:
        statement, params = prepare(call)

        def send() -> T:
            try:
                with self._connection() as conn:
                    if call.statement_timeout_ms is None:
                        text = _text(conn.execute(statement, params).fetchone())
                    else:
                        with conn.transaction():
                            conn.execute(_TIMEOUT, (f"{call.statement_timeout_ms}ms",))
                            text = _text(conn.execute(statement, params).fetchone())
            except psycopg.Error as e:
                err = translate(e)
                if isinstance(err, TransportError):
                    self._check_pool()
                raise err from None
            except PoolTimeout as e:
                raise TransportError(f"no database connection available: {e}") from None
            return call.decode.json(text)

        return with_retry(call, send)

    def close(self) -> None:
        self._pool.close()
        close_files(self.files)


class AsyncPostgresTransport:
    def __init__(
        self,
        database_url: str,
        files: FileStore,
        pool: AsyncConnectionPool[Any],
        *,
        owns_files: bool = True,
    ) -> None:
        self.database_url = database_url
        self.files = files
        self._pool = pool
        #: False when ``files`` is another client's (the worker's event loop shares its caller's
        #: file store): closing this transport then leaves it open.
        self._owns_files = owns_files

    @classmethod
    async def open(
        cls,
        database_url: str,
        files: FileStore,
        *,
        min_size: int = 1,
        max_size: int = 8,
        prepare: bool = True,
        owns_files: bool = True,
    ) -> AsyncPostgresTransport:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            kwargs=_conn_kwargs(prepare),
            open=False,
            name="pulser-ops-async",
        )
        await asyncio.to_thread(probe, database_url)
        try:
            await pool.open(wait=True, timeout=15)
        except PoolTimeout as e:
            await pool.close()
            raise TransportError(f"cannot connect to the database: {e}") from None
        return cls(database_url, files, pool, owns_files=owns_files)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection the server has not closed (dead ones are discarded unused)."""
        for tries in range(self._pool.max_size + 1):
            async with self._pool.connection() as conn:
                if tries == self._pool.max_size or not closed_by_server(conn):
                    yield conn
                    return
                await conn.close()  # the pool replaces a closed connection with a new one

    @property
    def max_rows(self) -> int | None:
        return None

    async def _check_pool(self) -> None:
        with suppress(psycopg.Error, PoolClosed):
            await self._pool.check()

    async def execute(self, call: Call[T]) -> T:
        statement, params = prepare(call)

        async def send() -> T:
            try:
                async with self._connection() as conn:
                    if call.statement_timeout_ms is None:
                        cur = await conn.execute(statement, params)
                        text = _text(await cur.fetchone())
                    else:
                        async with conn.transaction():
                            await conn.execute(_TIMEOUT, (f"{call.statement_timeout_ms}ms",))
                            cur = await conn.execute(statement, params)
                            text = _text(await cur.fetchone())
            except psycopg.Error as e:
                err = translate(e)
                if isinstance(err, TransportError):
                    await self._check_pool()
                raise err from None
            except PoolTimeout as e:
                raise TransportError(f"no database connection available: {e}") from None
            return call.decode.json(text)

        return await with_retry_async(call, send)

    @asynccontextmanager
    async def feed(
        self, tables: frozenset[str], *, wakeups: bool = False
    ) -> AsyncIterator[AsyncIterator[FeedItem | str]]:
        """LISTEN on a dedicated connection (outside the pool, as LISTEN must be)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        except psycopg.Error as e:
            raise translate(e) from None
        try:
            try:
                if tables:
                    await conn.execute(sql.SQL("listen {}").format(sql.Identifier(CHANGES_CHANNEL)))
                if wakeups:
                    await conn.execute(sql.SQL("listen {}").format(sql.Identifier(WAKEUP_CHANNEL)))
            except psycopg.Error as e:
                raise translate(e) from None

            async def items() -> AsyncIterator[FeedItem | str]:
                try:
                    async for n in conn.notifies():
                        item = parse_notification(n.channel, n.payload)
                        if isinstance(item, Hint) and item.table not in tables:
                            continue
                        if item is not None:
                            yield item
                except psycopg.Error as e:
                    raise translate(e) from None
                raise TransportError("the LISTEN connection closed")

            yield items()
        finally:
            with suppress(psycopg.Error, TimeoutError, OSError):
                await asyncio.wait_for(conn.close(), timeout=5)

    async def close(self) -> None:
        await self._pool.close()
        if self._owns_files:
            close_files(self.files)
