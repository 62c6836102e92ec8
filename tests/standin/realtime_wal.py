"""Postgres Changes for the stand-in's Realtime: from wal2json to the payload each subscriber
gets, following ``realtime.apply_rls`` (supabase/realtime migration
``20260709120000_fix_apply_rls_filter_role_leak``) and the replication poller that sends it.

Per change and subscriber:

- **Columns** are those the subscriber's role may SELECT (``has_column_privilege``).
- **401.** A role that may not SELECT every primary-key column gets, for INSERT and UPDATE,
  ``{schema, table, type, columns: [], commit_timestamp: null, record: {}, errors:
  ['Error 401: Unauthorized']}`` (plus ``old_record: {}`` for UPDATE), for every binding of the
  channel, without any RLS or filter check.
- **RLS.** INSERT and UPDATE reach a subscriber only when the row is visible by primary key under
  its role and claims *now*; DELETE is not RLS-checked and, on a table with RLS, carries only the
  primary key in ``old_record``. UPDATE's ``old_record`` is not trimmed.
- **Unchanged TOAST.** wal2json leaves a TOASTed column an UPDATE did not change out of
  ``columns``; it is taken from the old record (``identity``, replica identity full), as the real
  server does.
- **413.** When the change (``wal::text``) is over ``max_record_bytes`` (1 MiB), ``record`` and
  ``old_record`` keep only values of 64 bytes or less and ``errors`` is
  ``['Error 413: Payload Too Large']``.
- **Filters** are ``col=op.value`` (``eq neq lt lte gt gte like ilike in is``, ``not.``, commas
  for AND), evaluated in SQL with the column's type.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from .auth import Caller
from .db import request_tx

log = logging.getLogger(__name__)

EVENTS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}
#: ``realtime.apply_rls(wal, max_record_bytes int = 1024 * 1024)``.
MAX_RECORD_BYTES = 1024 * 1024
#: In a payload over ``max_record_bytes``, values longer than this (``octet_length(v::text)``)
#: are left out.
SMALL_VALUE_BYTES = 64
_FILTER_OPS = {
    "eq": "=",
    "neq": "<>",
    "lt": "<",
    "lte": "<=",
    "gt": ">",
    "gte": ">=",
    "like": "like",
    "ilike": "ilike",
}
#: "none" resets the role to the login superuser (Realtime's own queries).
SUPERUSER = Caller(role="none", claims={}, token=None)


class BindingError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: str | list[str]
    negate: bool


def parse_filter(text: str | None) -> list[Condition]:
    """``col=op.value[,col=op.value...]`` with ``in.(a,b)`` and an optional ``not.``."""
    if not text:
        return []
    parts = re.split(r",(?![^()]*\))", text)
    out: list[Condition] = []
    for part in parts:
        column, eq, expr = part.partition("=")
        if not eq or not column:
            raise BindingError(f"invalid filter: {text}")
        negate = expr.startswith("not.")
        if negate:
            expr = expr[4:]
        op, dot, value = expr.partition(".")
        if not dot:
            raise BindingError(f"invalid filter: {text}")
        if op == "in":
            if not (value.startswith("(") and value.endswith(")")):
                raise BindingError(f"invalid filter: {text}")
            items = [v.strip().strip('"') for v in value[1:-1].split(",") if v.strip()]
            out.append(Condition(column, "in", items, negate))
        elif op == "is" and value.lower() in ("null", "true", "false"):
            out.append(Condition(column, "is", value.lower(), negate))
        elif op in _FILTER_OPS:
            out.append(Condition(column, op, value, negate))
        else:
            raise BindingError(f"invalid filter operator: {op}")
    return out


@dataclass
class Binding:
    id: int
    event: str
    schema: str
    table: str | None
    filter: str | None
    conditions: list[Condition]

    def wants(self, schema: str, table: str, event: str) -> bool:
        return (
            self.schema == schema
            and self.table in (None, "*", table)
            and self.event in ("*", event)
        )


@dataclass(frozen=True)
class TableInfo:
    columns: dict[str, tuple[str, str]]  # name -> (typname, format_type), in order
    pk: list[str]
    rls: bool


@dataclass(frozen=True)
class Subscriber:
    """One channel's view of a change: who it is and which of its bindings want it."""

    caller: Caller
    bindings: list[Binding]


@dataclass(frozen=True)
class Change:
    """One wal2json (format 2) change, with its rows converted to the JSON Realtime sends."""

    schema: str
    table: str
    event: str
    info: TableInfo
    commit_timestamp: str
    #: New values (INSERT/UPDATE), unchanged TOAST columns merged from the old record.
    record: dict[str, Any] | None
    #: Columns of ``record`` that came from the old record (unchanged TOAST).
    from_old: frozenset[str]
    #: Old values (UPDATE/DELETE): the replica identity, every column with ``full``.
    old: dict[str, Any] | None
    too_big: bool


class Changes:
    """Turns raw wal2json changes into per-subscriber payloads (the ``apply_rls`` part)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.max_record_bytes = MAX_RECORD_BYTES
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self.new_batch()

    async def published(self, publication: str) -> set[tuple[str, str]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "select schemaname, tablename from pg_publication_tables where pubname = %s",
                (publication,),
            )
            return {(s, t) for s, t in await cur.fetchall()}

    async def table(self, schema: str, table: str, refresh: bool = False) -> TableInfo:
        key = (schema, table)
        if refresh or key not in self._tables:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "select a.attname, t.typname, format_type(a.atttypid, a.atttypmod),"
                    " coalesce(a.attnum = any(i.indkey), false), c.relrowsecurity"
                    " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                    " join pg_attribute a on a.attrelid = c.oid"
                    " join pg_type t on t.oid = a.atttypid"
                    " left join pg_index i on i.indrelid = c.oid and i.indisprimary"
                    " where n.nspname = %s and c.relname = %s and a.attnum > 0"
                    " and not a.attisdropped order by a.attnum",
                    (schema, table),
                )
                rows = await cur.fetchall()
            self._tables[key] = TableInfo(
                columns={r[0]: (r[1], r[2]) for r in rows},
                pk=[r[0] for r in rows if r[3]],
                rls=bool(rows and rows[0][4]),
            )
        return self._tables[key]

    def new_batch(self) -> None:
        """Forget per-batch caches (grants and role attributes may change between polls)."""
        self._selectable: dict[tuple[str, str, str], frozenset[str]] = {}
        self._bypass: dict[str, bool] = {}

    async def decode_many(self, raws: list[dict[str, Any]]) -> list[Change]:
        """Each change with its rows typed; one query per table for the whole batch (a burst
        of thousands of changes is decoded in a few queries, not thousands)."""
        parts: list[tuple[dict[str, Any], TableInfo, dict[str, Any] | None,
                          frozenset[str], dict[str, Any] | None]] = []  # fmt: skip
        rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for raw in raws:
            schema, table, event = raw["schema"], raw["table"], EVENTS[raw["action"]]
            info = await self.table(schema, table)
            if any(c["name"] not in info.columns for c in raw.get("columns", [])):
                info = await self.table(schema, table, refresh=True)
            new_cols = list(raw.get("columns", []))
            old_cols = list(raw.get("identity", []))
            record: dict[str, Any] | None = None
            from_old: frozenset[str] = frozenset()
            if event != "DELETE":
                present = {c["name"] for c in new_cols}
                merged = [c for c in old_cols if c["name"] not in present]
                from_old = frozenset(c["name"] for c in merged)
                record = _values(new_cols + merged)
                rows.setdefault((schema, table), []).append(record)
            old = _values(old_cols) if event != "INSERT" else None
            if old is not None:
                rows.setdefault((schema, table), []).append(old)
            parts.append((raw, info, record, from_old, old))
        typed = {key: iter(await self._typed(key, values)) for key, values in rows.items()}
        out = []
        for raw, info, record, from_old, old in parts:
            key = (raw["schema"], raw["table"])
            record = _pick(next(typed[key]), record) if record is not None else None
            old = _pick(next(typed[key]), old) if old is not None else None
            # ``octet_length(wal::text)``: jsonb's text form uses ", " and ": " as json.dumps.
            too_big = len(json.dumps(raw, ensure_ascii=False).encode()) > self.max_record_bytes
            out.append(Change(raw["schema"], raw["table"], EVENTS[raw["action"]], info,
                              _commit_ts(raw), record, from_old, old, too_big))  # fmt: skip
        return out

    async def _typed(self, key: tuple[str, str], rows: list[dict[str, Any]]) -> list[str]:
        """wal2json values as the JSON Realtime sends: ``to_jsonb`` of the typed rows."""
        rel = sql.SQL("{}.{}").format(sql.Identifier(key[0]), sql.Identifier(key[1]))
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL("select (to_jsonb(x) - 'ordinality')::text from"
                        " jsonb_populate_recordset(null::{}, %s::jsonb) with ordinality x"
                        " order by x.ordinality").format(rel),
                (json.dumps(rows),))  # fmt: skip
            return [r[0] for r in await cur.fetchall()]

    async def selectable(self, change: Change, role: str) -> frozenset[str]:
        """The columns ``role`` may SELECT (``has_column_privilege``)."""
        if role == SUPERUSER.role:
            return frozenset(change.info.columns)
        key = (change.schema, change.table, role)
        if key not in self._selectable:
            rel = f'"{change.schema}"."{change.table}"'
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "select a.attname from pg_attribute a where a.attrelid = %s::regclass"
                    " and a.attnum > 0 and not a.attisdropped"
                    " and has_column_privilege(%s, a.attrelid, a.attname, 'SELECT')",
                    (rel, role))
                self._selectable[key] = frozenset(r[0] for r in await cur.fetchall())
        return self._selectable[key]

    async def bypasses_rls(self, role: str) -> bool:
        if role not in self._bypass:
            async with self.pool.connection() as conn:
                cur = await conn.execute("select rolbypassrls from pg_roles where rolname = %s",
                                         (role,))  # fmt: skip
                row = await cur.fetchone()
            self._bypass[role] = bool(row and row[0])
        return self._bypass[role]

    async def payload(
        self, change: Change, sub: Subscriber
    ) -> tuple[list[int], dict[str, Any]] | None:
        """The binding ids and ``data`` this subscriber gets, or None when it gets nothing."""
        cols = await self.selectable(change, sub.caller.role)
        base = {"schema": change.schema, "table": change.table, "type": change.event}
        if change.event != "DELETE" and not all(c in cols for c in change.info.pk or [None]):
            data = {
                **base,
                "columns": [],
                "commit_timestamp": None,
                "record": {},
                "errors": ["Error 401: Unauthorized"],
            }
            if not change.info.pk:
                data["errors"] = ["Error 400: Bad Request, no primary key"]
            if change.event == "UPDATE":
                data["old_record"] = {}
            return [b.id for b in sub.bindings], data
        row = change.record if change.record is not None else (change.old or {})
        ids = await self._matching_ids(change, sub, row)
        if not ids:
            return None
        data = {
            **base,
            "commit_timestamp": change.commit_timestamp,
            "columns": [
                {"name": n, "type": t[0]} for n, t in change.info.columns.items() if n in cols
            ],
            "errors": ["Error 413: Payload Too Large"] if change.too_big else None,
        }
        if change.record is not None:
            data["record"] = {
                k: v
                for k, v in change.record.items()
                if k in cols and self._small_enough(change, v, k)
            }
        if change.old is not None:
            trim_to_pk = change.event == "DELETE" and change.info.rls
            data["old_record"] = {
                k: v
                for k, v in change.old.items()
                if k in cols
                and (not trim_to_pk or k in change.info.pk)
                and self._small_enough(change, v)
            }
        return ids, data

    @staticmethod
    def _small_enough(change: Change, value: Any, name: str | None = None) -> bool:
        if not change.too_big:
            return True
        if name is not None and name in change.from_old:
            return False  # ``octet_length((c).value::text)`` of a merged column is null
        return len(json.dumps(value, ensure_ascii=False).encode()) <= SMALL_VALUE_BYTES

    async def _matching_ids(
        self, change: Change, sub: Subscriber, row: dict[str, Any]
    ) -> list[int]:
        """One query as the subscriber: row visible under RLS? which filters match? None
        when neither needs asking (no filters, and a DELETE, a table without RLS or a role
        that bypasses it)."""
        info = change.info
        if not any(b.conditions for b in sub.bindings) and (
            change.event == "DELETE" or not info.rls
            or await self.bypasses_rls(sub.caller.role)
        ):
            return [b.id for b in sub.bindings]
        rel = sql.SQL("{}.{}").format(sql.Identifier(change.schema), sql.Identifier(change.table))
        params: list[Any] = []
        if change.event == "DELETE":
            visible: sql.Composable = sql.SQL("true")  # DELETEs are not RLS-checked
        else:
            rkeys = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in info.pk)
            # RLS is only consulted when the table has it enabled and the role does not
            # bypass it; then the row must be visible by primary key *now*, so a row deleted
            # before the check is not sent to RLS-restricted subscribers.
            visible = sql.SQL(
                "has_table_privilege({relname}, 'SELECT') and ({no_rls} or"
                " (select rolbypassrls from pg_roles where rolname = current_user) or"
                " exists (select 1 from {rel} t where ({tkeys}) = ({rkeys})))"
            ).format(
                relname=sql.Literal(f'"{change.schema}"."{change.table}"'),
                no_rls=sql.SQL("false" if info.rls else "true"),
                rel=rel,
                tkeys=sql.SQL(", ").join(
                    sql.SQL("t.{}").format(sql.Identifier(c)) for c in info.pk
                ),
                rkeys=rkeys,
            )
        checks: list[sql.Composable] = []
        for b in sub.bindings:
            cond, cond_params = _binding_sql(b, info, row)
            checks.append(cond)
            params += cond_params
        query = sql.SQL("select {}, {} from jsonb_populate_record(null::{}, %s::jsonb) r").format(
            visible, sql.SQL(", ").join(checks), rel
        )
        params.append(json.dumps(row))
        caller = SUPERUSER if change.event == "DELETE" else sub.caller
        try:
            async with request_tx(
                self.pool, caller, read_only=True, method="GET", path="/realtime/v1"
            ) as conn:
                cur = await conn.execute(query, params)
                result = await cur.fetchone()
        except psycopg.Error as exc:
            log.info("realtime check failed: %s", exc)
            return []
        if result is None or not result[0]:
            return []
        return [b.id for b, ok in zip(sub.bindings, result[1:], strict=True) if ok]


def _values(cols: list[dict[str, Any]]) -> dict[str, Any]:
    """wal2json's column list as a JSON object (json/jsonb values parsed)."""
    out: dict[str, Any] = {}
    for col in cols:
        value = col.get("value")
        if col.get("type") in ("json", "jsonb") and isinstance(value, str):
            value = json.loads(value)
        out[col["name"]] = value
    return out


def _pick(typed: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The typed row, with the columns wal2json gave (and no others)."""
    full: dict[str, Any] = json.loads(typed)
    return {k: full.get(k) for k in raw}


def _binding_sql(
    b: Binding, info: TableInfo, row: dict[str, Any]
) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for cond in b.conditions:
        if cond.column not in info.columns or cond.column not in row:
            return sql.SQL("false"), []
        col = sql.SQL("r.{}").format(sql.Identifier(cond.column))
        typ = sql.SQL(info.columns[cond.column][1])
        if cond.op == "in":
            expr: sql.Composable = sql.SQL("{} = any(%s::text[]::{}[])").format(col, typ)
            params.append(cond.value)
        elif cond.op == "is":
            expr = sql.SQL("{} is {}").format(col, sql.SQL(str(cond.value)))
        else:
            expr = sql.SQL("{} {} %s::text::{}").format(col, sql.SQL(_FILTER_OPS[cond.op]), typ)
            params.append(cond.value)
        if cond.negate:
            expr = sql.SQL("not ({})").format(expr)
        parts.append(sql.SQL("coalesce({}, false)").format(expr))
    if not parts:
        return sql.SQL("true"), []
    return sql.SQL("({})").format(sql.SQL(" and ").join(parts)), params


def _commit_ts(change: dict[str, Any]) -> str:
    raw = change.get("timestamp")
    try:
        ts = datetime.fromisoformat(raw) if isinstance(raw, str) else datetime.now(UTC)
    except ValueError:
        ts = datetime.now(UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
