"""``GET /rest/v1/{table}``: a small subset of PostgREST's table reads.

Supports ``select`` (a plain column list or ``*``), horizontal filters
``eq neq gt gte lt lte in is`` (optionally ``not.``), ``order`` and
``limit``/``offset`` (capped at ``max_rows``) — enough for a client that reads a table directly. Runs
READ ONLY as the caller's role, so grants and RLS apply as in PostgREST.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response

from .auth import AuthError, caller_from_headers
from .db import request_tx
from .errors import db_error_response, error_response
from .rpc import RestConfig

SCHEMA = "public"
_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns"}


class _BadRequest(Exception):
    pass


def _condition(column: str, expr: str) -> tuple[sql.Composable, list[object]]:
    negate = expr.startswith("not.")
    if negate:
        expr = expr[4:]
    op, _, value = expr.partition(".")
    col = sql.Identifier(column)
    params: list[object] = []
    if op in _OPS:
        cond: sql.Composable = sql.SQL("{} {} %s").format(col, sql.SQL(_OPS[op]))
        params.append(value)
    elif op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise _BadRequest(f'"failed to parse filter ({expr})"')
        items = [v.strip().strip('"') for v in value[1:-1].split(",") if v.strip()]
        cond = sql.SQL("{}::text = any(%s)").format(col)
        params.append(items)
    elif op == "is":
        literal = {"null": "null", "true": "true", "false": "false",
                   "unknown": "unknown"}.get(value.lower())
        if literal is None:
            raise _BadRequest(f'"failed to parse filter ({expr})"')
        cond = sql.SQL("{} is {}").format(col, sql.SQL(literal))
    else:
        raise _BadRequest(f'"failed to parse filter ({expr})"')
    if negate:
        cond = sql.SQL("not ({})").format(cond)
    return cond, params


def _query(request: Request, max_rows: int | None) -> tuple[sql.Composed, list[object]]:
    table = request.path_params["table"]
    q = request.query_params
    select = q.get("select", "*")
    cols: sql.Composable = (sql.SQL("*") if select.strip() == "*" else sql.SQL(", ").join(
        sql.Identifier(c.strip()) for c in select.split(",") if c.strip()))
    conds: list[sql.Composable] = []
    params: list[object] = []
    for key, value in q.multi_items():
        if key in _RESERVED:
            continue
        cond, p = _condition(key, value)
        conds.append(cond)
        params += p
    where = sql.SQL(" where ") + sql.SQL(" and ").join(conds) if conds else sql.SQL("")
    order: sql.Composable = sql.SQL("")
    if q.get("order"):
        terms = []
        for term in q["order"].split(","):
            name, *mods = term.split(".")
            direction = sql.SQL(" desc" if "desc" in mods else " asc")
            nulls = (sql.SQL(" nulls first") if "nullsfirst" in mods
                     else sql.SQL(" nulls last") if "nullslast" in mods else sql.SQL(""))
            terms.append(sql.Composed([sql.Identifier(name), direction, nulls]))
        order = sql.SQL(" order by ") + sql.SQL(", ").join(terms)
    page: sql.Composable = sql.SQL("")
    limits = [x for x in (int(q["limit"]) if q.get("limit") else None, max_rows) if x is not None]
    if limits:  # db-max-rows caps every read, like an explicit limit
        page += sql.SQL(" limit {}").format(sql.Literal(min(limits)))
    if q.get("offset"):
        page += sql.SQL(" offset {}").format(sql.Literal(int(q["offset"])))
    inner = sql.SQL("select {} from {}.{}{}{}{}").format(
        cols, sql.Identifier(SCHEMA), sql.Identifier(table), where, order, page)
    return (sql.SQL("select coalesce(json_agg(t), '[]')::text from ({}) t").format(inner),
            params)


async def read(request: Request, pool: AsyncConnectionPool, jwt_secret: str,
               config: RestConfig) -> Response:
    try:
        caller = caller_from_headers(jwt_secret, request.headers)
    except AuthError as exc:
        return error_response(401, exc.code, exc.message)
    try:
        query, params = _query(request, config.max_rows)
    except (_BadRequest, ValueError) as exc:
        return error_response(400, "PGRST100", str(exc))
    try:
        async with request_tx(pool, caller, read_only=True, method=request.method,
                              path=request.url.path, headers=request.headers,
                              timeouts=config.timeouts.get(caller.role)) as conn:
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
    except psycopg.Error as exc:
        return db_error_response(exc, authenticated=not caller.is_anon)
    text = row[0] if row else "[]"
    return Response(text, media_type="application/json; charset=utf-8")
