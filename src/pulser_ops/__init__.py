"""pulser-ops: a run queue whose control plane lives in PostgreSQL / Supabase.

import pulser_ops
with pulser_ops.connect() as client:          # env, or the embedded database
    run = client.runs.create("hello", {"name": "ops"})

client = await pulser_ops.aconnect()
async for change in client.subscribe(runs=True):
    ...
"""

from __future__ import annotations

from pathlib import Path

from .client import AsyncClient, Client
from .client.inputs import Text, checked
from .config import Settings, TokenProvider, resolve
from .errors import (
    AlreadyTerminal,
    ConfigurationError,
    Conflict,
    InvalidInput,
    InvalidParams,
    LeaseLost,
    LockTimeout,
    MigrationError,
    NotFound,
    PermissionDenied,
    PulserOpsError,
    StorageError,
    Timeout,
    TransportError,
)
from .files import FileStore, LocalFileStore
from .models import (
    Artifact,
    Change,
    CompleteBatchItem,
    Completion,
    CompletionEvent,
    EventIn,
    Heartbeat,
    Lane,
    LaneStats,
    Run,
    RunEvent,
    RunRequest,
    RunStatus,
    RunStep,
    Schedule,
    ScheduleFire,
    Session,
    SessionDeleted,
    SpecDoc,
    SpecDocIn,
    StepRecord,
    StuckRun,
    SweepResult,
    Template,
    WorkerHealth,
    WorkerInfo,
)
from .tokens import SupabaseSession

__version__ = "0.1.0"


def _database_url(settings: Settings) -> str | None:
    if settings.mode == "embedded":
        from .embedded import ensure_database

        return ensure_database(settings.home)
    return settings.database_url


def _files(settings: Settings) -> FileStore:
    if settings.has_supabase:
        from .transport.supabase import SupabaseFileStore

        return SupabaseFileStore(settings)
    return LocalFileStore(settings.storage_dir)


@checked
def connect(
    database_url: Text | None = None,
    *,
    supabase_url: Text | None = None,
    supabase_key: Text | None = None,
    access_token: Text | TokenProvider | None = None,
    home: str | Path | None = None,
    storage_dir: str | Path | None = None,
    prepare: bool | None = None,
    max_rows: int | None = None,
) -> Client:
    """A sync ``Client``: explicit arguments, else the environment, else the embedded database.

    ``access_token``: a user's JWT, or a provider of fresh ones (a callable, e.g.
    ``SupabaseSession``) for a client that lives longer than a token. ``max_rows``: the Data
    API's row cap (default ``PULSER_OPS_MAX_ROWS``, else Supabase's 1000)."""
    settings = resolve(
        database_url,
        supabase_url=supabase_url,
        supabase_key=supabase_key,
        access_token=access_token,
        home=home,
        storage_dir=storage_dir,
        prepare=prepare,
        max_rows=max_rows,
    )
    url = _database_url(settings)
    client: Client
    if url is not None:
        from .transport.postgres import PostgresTransport

        client = Client(
            PostgresTransport(url, _files(settings), prepare=settings.prepare),
            description=f"{settings.mode} database",
        )
    else:
        from .transport.supabase import SupabaseTransport

        client = Client(
            SupabaseTransport(settings), description=f"Supabase at {settings.supabase_url}"
        )

    async def factory() -> AsyncClient:
        return await _aconnect(settings)

    client._subscribe_factory = factory
    return client


async def _aconnect(settings: Settings) -> AsyncClient:
    import asyncio

    url = await asyncio.to_thread(_database_url, settings)
    if url is not None:
        from .transport.postgres import AsyncPostgresTransport

        t = await AsyncPostgresTransport.open(url, _files(settings), prepare=settings.prepare)
        return AsyncClient(t, description=f"{settings.mode} database")
    from .transport.supabase import AsyncSupabaseTransport

    return AsyncClient(
        await AsyncSupabaseTransport.open(settings),
        description=f"Supabase at {settings.supabase_url}",
    )


@checked
async def aconnect(
    database_url: Text | None = None,
    *,
    supabase_url: Text | None = None,
    supabase_key: Text | None = None,
    access_token: Text | TokenProvider | None = None,
    home: str | Path | None = None,
    storage_dir: str | Path | None = None,
    prepare: bool | None = None,
    max_rows: int | None = None,
) -> AsyncClient:
    """An ``AsyncClient``, resolved like ``connect()``."""
    return await _aconnect(
        resolve(
            database_url,
            supabase_url=supabase_url,
            supabase_key=supabase_key,
            access_token=access_token,
            home=home,
            storage_dir=storage_dir,
            prepare=prepare,
            max_rows=max_rows,
        )
    )


__all__ = [
    "AlreadyTerminal",
    "Artifact",
    "AsyncClient",
    "Change",
    "Client",
    "CompleteBatchItem",
    "Completion",
    "CompletionEvent",
    "ConfigurationError",
    "Conflict",
    "EventIn",
    "Heartbeat",
    "InvalidInput",
    "InvalidParams",
    "Lane",
    "LaneStats",
    "LeaseLost",
    "LockTimeout",
    "MigrationError",
    "NotFound",
    "PermissionDenied",
    "PulserOpsError",
    "Run",
    "RunEvent",
    "RunRequest",
    "RunStatus",
    "RunStep",
    "Schedule",
    "ScheduleFire",
    "Session",
    "SessionDeleted",
    "Settings",
    "SpecDoc",
    "SpecDocIn",
    "StepRecord",
    "StorageError",
    "StuckRun",
    "SupabaseSession",
    "SweepResult",
    "Template",
    "Timeout",
    "TokenProvider",
    "TransportError",
    "WorkerHealth",
    "WorkerInfo",
    "aconnect",
    "connect",
]
