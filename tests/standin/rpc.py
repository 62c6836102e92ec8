"""``/rest/v1/rpc/{fn}``: PostgREST's function-call semantics over real Postgres.

Signatures come from ``pg_proc`` (cached, re-read on a miss instead of
``NOTIFY pgrst``). Arguments are bound by name through ``json_to_record`` so
JSON values convert to the declared argument types exactly as PostgREST does,
and the response shape follows the return type: scalar → bare JSON value,
setof / table → array, composite → object, void → 204.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response

from .auth import AuthError, Caller, caller_from_headers
from .db import API_TIMEOUTS, request_tx
from .errors import db_error_response, error_response

SCHEMA = "public"

_INTROSPECT = """
select p.provolatile::text as volatility,
       p.proretset as returns_set,
       p.prorettype = 'void'::regtype as is_void,
       (rt.typtype = 'c' or p.prorettype = 'record'::regtype) as is_composite,
       p.pronargdefaults as n_defaults,
       coalesce(p.proargnames, '{}') as names,
       coalesce(p.proargmodes::text[], '{}') as modes,
       array(select format_type(t, null)
               from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                    with ordinality u(t, o) order by o) as types
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_type rt on rt.oid = p.prorettype
 where n.nspname = %s and p.proname = %s and p.prokind = 'f'
"""


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    name: str
    volatility: str  # 'v', 's' or 'i'
    returns_set: bool
    is_void: bool
    is_composite: bool
    args: tuple[Arg, ...]

    @property
    def single_unnamed_json(self) -> bool:
        return (len(self.args) == 1 and self.args[0].name == ""
                and self.args[0].type in ("json", "jsonb"))

    def accepts(self, keys: set[str]) -> bool:
        names = {a.name for a in self.args}
        required = {a.name for a in self.args if not a.has_default}
        return keys <= names and required <= keys


def _function_from_row(name: str, row: dict[str, Any]) -> Function:
    names: list[str] = row["names"]
    modes: list[str] = row["modes"]
    types: list[str] = row["types"]
    inputs: list[tuple[str, str]] = []
    for i, typ in enumerate(types):
        mode = modes[i] if modes else "i"
        if mode in ("i", "b", "v"):
            inputs.append((names[i] if i < len(names) else "", typ))
    n_defaults: int = row["n_defaults"]
    first_default = len(inputs) - n_defaults
    args = tuple(Arg(n, t, i >= first_default) for i, (n, t) in enumerate(inputs))
    return Function(name, row["volatility"], row["returns_set"], row["is_void"],
                    row["is_composite"], args)


class SchemaCache:
    """Function signatures by name; a miss triggers one re-read of pg_proc."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._functions: dict[str, list[Function]] = {}

    async def lookup(self, name: str, *, refresh: bool = False) -> list[Function]:
        if refresh or name not in self._functions:
            async with self._pool.connection() as conn:
                cur = conn.cursor(row_factory=psycopg.rows.dict_row)
                await cur.execute(_INTROSPECT, (SCHEMA, name))
                rows = await cur.fetchall()
            self._functions[name] = [_function_from_row(name, r) for r in rows]
        return self._functions[name]


def _not_found(name: str, keys: list[str]) -> Response:
    params = ", ".join(sorted(keys))
    return error_response(
        404, "PGRST202",
        f"Could not find the function {SCHEMA}.{name}({params}) in the schema cache",
        f"Searched for the function {SCHEMA}.{name} with parameters {params} or with a "
        "single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
        None,
    )


def _call_sql(fn: Function, keys: list[str], page: Page) -> sql.Composed:
    """``(total, body)`` of ``public.fn(a => ...)``: the function runs in full, then the reply
    is cut to the page, as PostgREST's call plan does (``max_rows`` never stops the work).

    ``total`` is the full row count when ``Prefer: count=...`` asked for it (else null)."""
    target = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(fn.name))
    if fn.single_unnamed_json:
        call = sql.SQL("{}(%s::{})").format(target, sql.SQL(fn.args[0].type))
        source: sql.Composable = sql.SQL("")
    else:
        by_name = {a.name: a for a in fn.args}
        coldefs = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(by_name[k].type)) for k in keys
        )
        named = sql.SQL(", ").join(
            sql.SQL("{} => pgrst_args.{}").format(sql.Identifier(k), sql.Identifier(k))
            for k in keys
        )
        call = sql.SQL("{}({})").format(target, named)
        source = (sql.SQL("json_to_record(%s::json) as pgrst_args({}), ").format(coldefs)
                  if keys else sql.SQL(""))
    if fn.is_void:
        return sql.SQL("select null::bigint, null::text from {}lateral {} pgrst_call").format(
            source, call)
    rows = sql.SQL("with pgrst_source as materialized"
                   " (select pgrst_call from {}lateral {} pgrst_call)").format(source, call)
    total = sql.SQL("(select count(*) from pgrst_source)" if page.count else "null::bigint")
    window = sql.SQL("select * from pgrst_source offset {} limit {}").format(
        sql.Literal(page.offset), sql.Literal(page.limit))
    if fn.returns_set:
        agg = sql.SQL("coalesce(json_agg(t.pgrst_call), '[]')::text")
    else:
        agg = sql.SQL("(json_agg(t.pgrst_call) -> 0)::text")
    return sql.SQL("{} select {}, (select {} from ({}) t)").format(rows, total, agg, window)


@dataclass(frozen=True)
class Page:
    """The rows of the reply: ``?offset=&limit=`` restricted to ``max_rows`` (PostgREST's
    ``restrictRange``), and whether ``Prefer: count=`` asked for the total."""

    offset: int
    limit: int
    count: bool


#: Query parameters that shape the reply, never function arguments (PostgREST's reserved names).
RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})


def _page(request: Request, max_rows: int | None) -> Page | Response:
    q = request.query_params
    try:
        offset = int(q.get("offset", "0"))
        limit = int(q["limit"]) if "limit" in q else None
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError
    except ValueError:
        return error_response(400, "PGRST100", "\"failed to parse limit/offset\"")
    caps = [x for x in (limit, max_rows) if x is not None]
    count = "count=" in request.headers.get("prefer", "")
    return Page(offset, min(caps) if caps else 2**62, count)


def _arguments(request: Request, body: bytes) -> dict[str, Any] | Response:
    if request.method in ("GET", "HEAD"):
        return {k: v for k, v in request.query_params.items() if k not in RESERVED}
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        return error_response(400, "PGRST102", "Empty or invalid json", str(exc))
    if not isinstance(parsed, dict):
        return error_response(400, "PGRST102", "Expected a JSON object for the arguments")
    return parsed


def _profile_error(request: Request) -> Response | None:
    for header in ("accept-profile", "content-profile"):
        value = request.headers.get(header)
        if value is not None and value != SCHEMA:
            return error_response(406, "PGRST106",
                                  f"The schema must be one of the following: {SCHEMA}")
    return None


async def call(request: Request, pool: AsyncConnectionPool, cache: SchemaCache,
               jwt_secret: str, config: RestConfig) -> Response:
    name = request.path_params["fn"]
    try:
        caller: Caller = caller_from_headers(jwt_secret, request.headers)
    except AuthError as exc:
        return error_response(401, exc.code, exc.message,
                              headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if (bad := _profile_error(request)) is not None:
        return bad
    body = await request.body()
    args = _arguments(request, body)
    if isinstance(args, Response):
        return args
    keys = sorted(args)
    candidates = [f for f in await cache.lookup(name) if f.accepts(set(keys))]
    if not candidates:
        candidates = [f for f in await cache.lookup(name, refresh=True) if f.accepts(set(keys))]
    if not candidates:
        singles = [f for f in await cache.lookup(name) if f.single_unnamed_json]
        if len(singles) == 1 and request.method == "POST":
            candidates = singles
    if not candidates:
        return _not_found(name, keys)
    if len(candidates) > 1:
        return error_response(300, "PGRST203",
                              f"Could not choose the best candidate function for {name}")
    fn = candidates[0]
    read_only = request.method in ("GET", "HEAD") or fn.volatility != "v"
    param = body.decode() if fn.single_unnamed_json else json.dumps(args)
    page = _page(request, config.max_rows)
    if isinstance(page, Response):
        return page
    query = _call_sql(fn, keys, page)
    try:
        async with request_tx(pool, caller, read_only=read_only, method=request.method,
                              path=request.url.path, headers=request.headers,
                              timeouts=config.timeouts.get(caller.role)) as conn:
            cur = await conn.execute(query, (param,) if (keys or fn.single_unnamed_json)
                                     else ())
            row = await cur.fetchone()
    except psycopg.Error as exc:
        return db_error_response(exc, authenticated=not caller.is_anon)
    total, payload = (None, None) if row is None else row
    return _shape(request, fn, page, total, payload)


def _content_range(offset: int, n: int, total: int | None) -> str:
    """``RangeQuery.contentRangeH``: ``lower-upper/total``, ``*`` for an empty window."""
    upper = offset + n - 1
    shown = f"{offset}-{upper}" if total != 0 and offset <= upper else "*"
    return f"{shown}/{'*' if total is None else total}"


def _shape(request: Request, fn: Function, page: Page, total: int | None,
           payload: str | None) -> Response:
    json_type = "application/json; charset=utf-8"
    if fn.is_void:
        return Response(status_code=204)
    text = payload if payload is not None else "null"
    if "application/vnd.pgrst.object+json" in request.headers.get("accept", ""):
        rows = json.loads(text) if fn.returns_set else [json.loads(text)]
        if len(rows) != 1:
            return error_response(406, "PGRST116",
                                  "Cannot coerce the result to a single JSON object",
                                  f"The result contains {len(rows)} rows")
        return Response(json.dumps(rows[0]), media_type=json_type)
    n = len(json.loads(text)) if fn.returns_set else 1
    # ``rangeStatusHeader``: 206 when a counted reply holds fewer rows than the total,
    # 416 when the offset is past it.
    if total is not None and page.offset > total:
        return error_response(416, "PGRST103", "Requested range not satisfiable",
                              f"An offset of {page.offset} was requested, but there are only"
                              f" {total} rows.")
    status = 206 if total is not None and n < total else 200
    headers = {"Content-Range": _content_range(page.offset, n, total)}
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=json_type)
    return Response(text, status_code=status, headers=headers, media_type=json_type)


@dataclass
class RestConfig:
    """The Data API's settings that change what a caller sees.

    ``max_rows``: PostgREST's ``db-max-rows`` (Supabase: API settings → Max rows; 1000 unless
    changed, as in ``supabase/config.toml``); None for none. ``timeouts``: per role, the
    ``(statement_timeout, lock_timeout)`` a request runs under (``db.API_TIMEOUTS``)."""

    max_rows: int | None = 1000
    timeouts: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(API_TIMEOUTS))
