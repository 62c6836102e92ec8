"""PostgREST's error body and SQLSTATE → HTTP status table (errors.rst, v14).

The SDK maps errors by ``code`` only (supabase-py exposes no HTTP status), but
the status still matters for the client's retry logic (503 is retried on GET),
so it is reproduced exactly.
"""

from __future__ import annotations

from typing import Any

import psycopg
from starlette.responses import JSONResponse


def status_for_sqlstate(sqlstate: str, *, authenticated: bool) -> int:
    if sqlstate == "P0001":
        return 400
    if sqlstate.startswith("P0"):
        return 500
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate == "25006":
        return 405
    if sqlstate == "42501":
        return 403 if authenticated else 401
    if sqlstate in ("42883", "42P01"):
        return 404
    if sqlstate.startswith("08"):
        return 503
    if sqlstate == "53400":
        return 500
    if sqlstate.startswith("53"):
        return 503
    if sqlstate.startswith(("40", "57")):
        return 500
    if sqlstate.startswith(("28", "0P", "0L")):
        return 403
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    return 400


def error_response(status: int, code: str, message: str, details: Any = None,
                   hint: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"code": code, "details": details, "hint": hint, "message": message}
    all_headers = {"Proxy-Status": f"PostgREST; error={code}", **(headers or {})}
    return JSONResponse(body, status_code=status, headers=all_headers)


def db_error_response(exc: psycopg.Error, *, authenticated: bool) -> JSONResponse:
    sqlstate = exc.sqlstate or "XX000"
    diag = exc.diag
    status = status_for_sqlstate(sqlstate, authenticated=authenticated)
    return error_response(
        status, sqlstate, diag.message_primary or str(exc),
        diag.message_detail, diag.message_hint,
    )
