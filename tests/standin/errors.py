"""PostgREST's error body and its SQLSTATE → HTTP status table.

The table is ``pgErrorStatus`` of PostgREST v14.12 (``src/PostgREST/Error.hs``, the version the
Supabase CLI pins), case by case and in the same order, including its special cases: the
pg-safeupdate message (21000 → 400), a JWT role that does not exist (22023 → 401),
``xmlagg`` (42883 → 406), ``PT<digits>`` statuses, and ``RAISE SQLSTATE 'PGRST'`` with a JSON
message and detail that set the code, status and headers (malformed JSON → 500 ``PGRST121``).
A 401 carries ``WWW-Authenticate: Bearer``, as PostgREST's ``PgError`` headers do.

The SDK maps errors by ``code`` (supabase-py exposes no HTTP status), but the status still
decides what supabase-py retries (503 on GET) and what a proxy or a browser sees.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from starlette.responses import JSONResponse


def status_for_sqlstate(sqlstate: str, message: str = "", *, authenticated: bool) -> int:
    """``pgErrorStatus`` for a ServerError (the ``PGRST`` code is handled by the caller)."""
    c = sqlstate
    if c.startswith("08"):
        return 503
    if c.startswith("09"):
        return 500
    if c.startswith(("0L", "0P")):
        return 403
    if c in ("23503", "23505"):
        return 409
    if c == "25006":
        return 405
    if c == "21000":
        return 400 if message.endswith("requires a WHERE clause") else 500
    if c == "22023":
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    if c.startswith("25"):
        return 500
    if c.startswith("28"):
        return 403
    if c.startswith(("2D", "38", "39", "3B", "40")):
        return 500
    if c == "53400":
        return 500
    if c.startswith("53"):
        return 503
    if c.startswith(("54", "55")):
        return 500
    if c == "57P01":
        return 503
    if c.startswith(("57", "58", "F0", "HV")):
        return 500
    if c == "P0001":
        return 400
    if c.startswith(("P0", "XX")):
        return 500
    if c == "42883":
        return 406 if message.startswith("function xmlagg(") else 404
    if c == "42P01":
        return 404
    if c == "42P17":
        return 500
    if c == "42501":
        return 403 if authenticated else 401
    if c.startswith("PT"):
        return int(c[2:]) if c[2:].isdigit() and 100 <= int(c[2:]) <= 599 else 500
    return 400


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    hint: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"code": code, "details": details, "hint": hint, "message": message}
    all_headers = {"Proxy-Status": f"PostgREST; error={code}"}
    if status == 401:
        all_headers["WWW-Authenticate"] = "Bearer"
    all_headers.update(headers or {})
    return JSONResponse(body, status_code=status, headers=all_headers)


def _unparsable(details: str, hint: str) -> JSONResponse:
    return error_response(
        500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
        details, hint,
    )


MESSAGE_HINT = ("MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and "
                "optional keys: 'details', 'hint'.")
DETAIL_HINT = ("DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and "
               "optional key: 'status_text'.")


def _json_object(text: str | None, *required: tuple[str, type]) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return value if all(isinstance(value.get(k), t) for k, t in required) else None


def _raised_pgrst(message: str, detail: str | None) -> JSONResponse:
    """``RAISE SQLSTATE 'PGRST' USING message = '{json}', detail = '{json}'``."""
    msg = _json_object(message, ("code", str), ("message", str))
    if msg is None:
        return _unparsable(f"Invalid JSON value for MESSAGE: '{message}'", MESSAGE_HINT)
    if detail is None:
        return _unparsable("DETAIL is missing in the RAISE statement", DETAIL_HINT)
    det = _json_object(detail, ("status", int), ("headers", dict))
    if det is None:
        return _unparsable(f"Invalid JSON value for DETAIL: '{detail}'", DETAIL_HINT)
    body = {"code": msg["code"], "details": msg.get("details"), "hint": msg.get("hint"),
            "message": msg["message"]}
    headers = {"Proxy-Status": f"PostgREST; error={msg['code']}",
               **{str(k): str(v) for k, v in det["headers"].items()}}
    return JSONResponse(body, status_code=det["status"], headers=headers)


def db_error_response(exc: psycopg.Error, *, authenticated: bool) -> JSONResponse:
    sqlstate = exc.sqlstate or "XX000"
    diag = exc.diag
    message = diag.message_primary or str(exc)
    if sqlstate == "PGRST":
        return _raised_pgrst(message, diag.message_detail)
    status = status_for_sqlstate(sqlstate, message, authenticated=authenticated)
    return error_response(status, sqlstate, message, diag.message_detail, diag.message_hint)
