"""The control room's reads and actions that the SDK client does not name yet.

Each is one SQL function (supabase/migrations/20261201100000_control_room.sql) behind RLS,
described in ``pulser_ops.calls`` like every other call and executed by the client's
transport, so the board, the CLI and the SDK run the very same query. Once the client grows
methods for them (issue 13's single async source), these become one-line forwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from .. import calls
from ..board import BoardSnapshot, BulkResult, RunCount, RunFilter
from ..client import AsyncClient
from ..models import Run


async def board(client: AsyncClient, running_limit: int = 100) -> BoardSnapshot:
    return await client.transport.execute(calls.board_snapshot(running_limit))


async def search(client: AsyncClient, f: RunFilter, limit: int) -> list[Run]:
    return await client.transport.execute(calls.search_runs(f, limit))


async def count(client: AsyncClient, f: RunFilter, max_exact: int | None = None) -> RunCount:
    return await client.transport.execute(calls.count_runs(f, max_exact))


async def bulk(
    client: AsyncClient,
    action: str,
    *,
    run_ids: Iterable[UUID | str] | None,
    f: RunFilter | None,
    cap: int,
    dry_run: bool,
    reason: str | None = None,
) -> BulkResult:
    if action == "cancel":
        return await client.transport.execute(
            calls.bulk_cancel_runs(run_ids, f, max_runs=cap, dry_run=dry_run, reason=reason)
        )
    return await client.transport.execute(
        calls.bulk_rerun_runs(run_ids, f, max_runs=cap, dry_run=dry_run)
    )


async def rerun(
    client: AsyncClient,
    run_id: UUID | str,
    params: Mapping[str, Any] | None = None,
    lane: str | None = None,
) -> Run:
    return await client.transport.execute(calls.rerun_run(run_id, params, lane))
