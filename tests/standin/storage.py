"""``/storage/v1/object/...``: the Storage API endpoints storage3's file API calls.

Object bytes live in a directory; object metadata lives in ``storage.objects``.
As in supabase/storage, every metadata query runs as the caller's role with the
JWT claims set, so the ``storage.objects`` RLS policies decide who may read or
write (``service_role`` bypasses RLS). Signed URLs are HS256 JWTs with the
object's ``bucket/name`` in the ``url`` claim; redeeming one skips RLS, as the
real service does. Errors use Storage's legacy shape: HTTP 400 (or 500) with
``{"statusCode": "<real status>", "code", "error", "message"}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import auth
from .auth import AuthError, Caller
from .db import request_tx

log = logging.getLogger(__name__)

SIGNED_UPLOAD_TTL = 2 * 3600
# "none" resets the role to the login (superuser) role: used where the real
# service queries as its superuser (signed-URL redemption, bucket lookup).
SUPERUSER = Caller(role="none", claims={"role": "service_role"}, token=None)


class StorageError(Exception):
    def __init__(self, status: int, code: str, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.error = status, code, message, error

    def response(self) -> JSONResponse:
        body = {"statusCode": str(self.status), "code": self.code,
                "error": self.error or self.code, "message": self.message}
        return JSONResponse(body, status_code=500 if self.status == 500 else 400)


def no_such_key() -> StorageError:
    return StorageError(404, "NoSuchKey", "Object not found", "not_found")


def no_such_bucket() -> StorageError:
    return StorageError(404, "NoSuchBucket", "Bucket not found", "Bucket not found")


def _db_error(exc: psycopg.Error) -> StorageError:
    state = exc.sqlstate or ""
    if state == "23505":
        return StorageError(409, "KeyAlreadyExists", "The resource already exists", "Duplicate")
    if state == "42501":
        msg = exc.diag.message_primary or "Access denied"
        return StorageError(403, "AccessDenied", msg, "Unauthorized")
    return StorageError(500, "DatabaseError", exc.diag.message_primary or str(exc))


#: supabase/storage ``src/storage/limits.ts`` ``VALID_OBJECT_KEY``: S3-safe characters only.
#: Anything else (non-ASCII, ``~ [ ] % # { } ^ | " < >`` and the backquote) is ``InvalidKey``.
VALID_OBJECT_KEY = re.compile(r"^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$")
#: The project's global upload limit (``[storage] file_size_limit = "50MiB"`` in config.toml;
#: on a hosted project it depends on the plan). Tests lower it with ``Storage.file_size_limit``.
FILE_SIZE_LIMIT = 50 * 1024 * 1024


def _object_name(raw: str) -> str:
    """No empty, ``.`` or ``..`` segments (the stand-in keeps objects as files)."""
    parts = raw.split("/")
    if not raw or raw.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(400, "InvalidKey", f"Invalid key: {raw}")
    return raw


def _valid_key(raw: str) -> str:
    """``mustBeValidKey``, which the real service applies wherever it writes or looks up an
    object (``uploadNewObject``, ``findObject``): only the characters S3 keys may hold."""
    name = _object_name(raw)
    if not VALID_OBJECT_KEY.match(name):
        raise StorageError(400, "InvalidKey", f"Invalid key: {raw}")
    return name


def _caller(request: Request, secret: str) -> Caller:
    """The JWT plugin (``src/http/plugins/jwt.ts``): a token that does not verify is
    ``AccessDenied`` with error ``Unauthorized`` and status 403 (sent as HTTP 400)."""
    try:
        return auth.caller_from_headers(secret, request.headers)
    except AuthError as exc:
        raise StorageError(403, "AccessDenied", _jose_message(exc), "Unauthorized") from None


def _jose_message(exc: AuthError) -> str:
    """What ``jose`` (the real service's JWT library) says for the same failure."""
    if exc.code == "PGRST303":
        return '"exp" claim timestamp check failed'
    if "3 parts" in exc.message:
        return "Invalid Compact JWS"
    return "signature verification failed"


def too_large() -> StorageError:
    return StorageError(413, "EntityTooLarge", "The object exceeded the maximum allowed size",
                        "Payload too large")


def _object_metadata(data: bytes, mimetype: str, cache_control: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "eTag": f'"{hashlib.md5(data).hexdigest()}"',
        "size": len(data), "mimetype": mimetype,
        "cacheControl": f"max-age={cache_control}" if cache_control.isdigit() else cache_control,
        "lastModified": now.isoformat().replace("+00:00", "Z"),
        "contentLength": len(data), "httpStatusCode": 200,
    }


class Storage:
    def __init__(self, pool: AsyncConnectionPool, jwt_secret: str, root: Path) -> None:
        self.pool = pool
        self.secret = jwt_secret
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._has_user_metadata: bool | None = None
        #: The global upload limit in bytes (a bucket's ``file_size_limit`` may lower it).
        self.file_size_limit: int | None = FILE_SIZE_LIMIT

    def routes(self) -> list[Route]:
        p = "/storage/v1/object"
        return [
            Route(p + "/list/{bucket}", self._wrap(self.list), methods=["POST"]),
            Route(p + "/sign/{bucket}/{name:path}", self._wrap(self.sign), methods=["POST"]),
            Route(p + "/sign/{bucket}/{name:path}", self._wrap(self.get_signed),
                  methods=["GET"]),
            Route(p + "/upload/sign/{bucket}/{name:path}", self._wrap(self.sign_upload),
                  methods=["POST"]),
            Route(p + "/upload/sign/{bucket}/{name:path}", self._wrap(self.put_signed),
                  methods=["PUT"]),
            Route(p + "/info/authenticated/{bucket}/{name:path}", self._wrap(self.info),
                  methods=["GET"]),
            Route(p + "/info/{bucket}/{name:path}", self._wrap(self.info), methods=["GET"]),
            Route(p + "/authenticated/{bucket}/{name:path}", self._wrap(self.download),
                  methods=["GET"]),
            Route(p + "/public/{bucket}/{name:path}", self._wrap(self.download_public),
                  methods=["GET"]),
            Route(p + "/{bucket}/{name:path}", self._wrap(self.upload), methods=["POST", "PUT"]),
            Route(p + "/{bucket}/{name:path}", self._wrap(self.download), methods=["GET"]),
            Route(p + "/{bucket}", self._wrap(self.remove), methods=["DELETE"]),
        ]

    def _wrap(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except StorageError as exc:
                return exc.response()
            except psycopg.Error as exc:
                return _db_error(exc).response()
            except Exception as exc:  # the real service answers 500 in its JSON shape
                log.exception("storage handler failed")
                return StorageError(500, "InternalError", str(exc)).response()
        return endpoint

    def _path(self, bucket: str, name: str) -> Path:
        return self.root / bucket / name

    # helpers -------------------------------------------------------------------
    async def _bucket(self, bucket: str) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("select id, public, file_size_limit from storage.buckets"
                              " where id = %s", (bucket,))
            row = await cur.fetchone()
        if row is None:
            raise no_such_bucket()
        return row

    async def _user_metadata_supported(self) -> bool:
        if self._has_user_metadata is None:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "select 1 from pg_attribute where attrelid = 'storage.objects'::regclass"
                    " and attname = 'user_metadata' and not attisdropped")
                self._has_user_metadata = await cur.fetchone() is not None
        return self._has_user_metadata

    async def _find(self, caller: Caller, bucket: str, name: str) -> dict[str, Any]:
        async with request_tx(self.pool, caller, read_only=True, method="GET") as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "select id, name, bucket_id, version, metadata, created_at, updated_at"
                " from storage.objects where bucket_id = %s and name = %s", (bucket, name))
            row = await cur.fetchone()
        if row is None or not self._path(bucket, name).is_file():
            raise no_such_key()
        return row

    def _file_response(self, row: dict[str, Any], bucket: str, name: str,
                       request: Request | None = None) -> Response:
        meta = row["metadata"] or {}
        data = self._path(bucket, name).read_bytes()
        headers = {"ETag": meta.get("eTag", ""), "Cache-Control": meta.get("cacheControl", ""),
                   "Last-Modified": format_datetime(row["updated_at"].astimezone(UTC), usegmt=True),
                   "Accept-Ranges": "bytes"}
        media = meta.get("mimetype", "application/octet-stream")
        # One byte range ("bytes=a-b" or "bytes=a-"), as Storage serves: 206 with Content-Range.
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", (request.headers.get("range", "")
                                                     if request is not None else ""))
        if wanted and data:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2) or len(data) - 1), len(data) - 1)
            if start <= end:
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return Response(data[start:end + 1], status_code=206, media_type=media,
                                headers=headers)
        return Response(data, media_type=media, headers=headers)

    async def _store(self, caller: Caller, bucket: str, name: str, request: Request,
                     *, upsert: bool, owner: str | None) -> JSONResponse:
        data, mimetype, cache_control, user_meta = await _read_upload(request)
        found = await self._bucket(bucket)
        limits = [x for x in (self.file_size_limit, found.get("file_size_limit")) if x]
        if limits and len(data) > min(limits):
            raise too_large()
        meta = _object_metadata(data, mimetype, cache_control)
        owner_uuid = _as_uuid(owner)
        cols = ["bucket_id", "name", "owner", "owner_id", "metadata"]
        vals: list[Any] = [bucket, name, owner_uuid, owner, json.dumps(meta)]
        if await self._user_metadata_supported():
            cols.append("user_metadata")
            vals.append(json.dumps(user_meta) if user_meta is not None else None)
        insert = (f"insert into storage.objects ({', '.join(cols)})"
                  f" values ({', '.join(['%s'] * len(cols))})")
        if upsert:
            sets = ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
            insert += (f" on conflict (bucket_id, name) do update set {sets},"
                       " updated_at = now(), last_accessed_at = now()")
        target = self._path(bucket, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".upload-{uuid.uuid4().hex}.tmp"  # short: any name fits
        tmp.write_bytes(data)
        try:
            async with request_tx(self.pool, caller, read_only=False, method=request.method,
                                  path=request.url.path, headers=request.headers) as conn:
                cur = await conn.execute(insert + " returning id", vals)
                row = await cur.fetchone()
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        assert row is not None
        return JSONResponse({"Id": str(row[0]), "Key": f"{bucket}/{name}"})

    # endpoints -------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        caller = _caller(request, self.secret)
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        upsert = request.method == "PUT" or request.headers.get("x-upsert") == "true"
        return await self._store(caller, bucket, name, request, upsert=upsert,
                                 owner=caller.claims.get("sub"))

    async def download(self, request: Request) -> Response:
        caller = _caller(request, self.secret)
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        row = await self._find(caller, bucket, name)
        return self._file_response(row, bucket, name, request)

    async def download_public(self, request: Request) -> Response:
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        if not (await self._bucket(bucket))["public"]:
            raise no_such_bucket()
        row = await self._find(SUPERUSER, bucket, name)
        return self._file_response(row, bucket, name, request)

    async def info(self, request: Request) -> Response:
        caller = _caller(request, self.secret)
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        row = await self._find(caller, bucket, name)
        meta = row["metadata"] or {}
        return JSONResponse({
            "id": str(row["id"]), "name": row["name"], "version": row["version"],
            "bucket_id": row["bucket_id"], "size": meta.get("size"),
            "content_type": meta.get("mimetype"), "cache_control": meta.get("cacheControl"),
            "etag": meta.get("eTag"), "metadata": {},
            "last_modified": row["updated_at"].isoformat(),
            "created_at": row["created_at"].isoformat(),
        })

    async def sign(self, request: Request) -> Response:
        caller = _caller(request, self.secret)
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        body = await _json_body(request)
        try:
            expires_in = int(body.get("expiresIn", ""))
        except ValueError:
            raise StorageError(400, "InvalidParameter", "Invalid Parameter expiresIn") from None
        await self._find(caller, bucket, name)
        now = int(time.time())
        token = auth.sign(self.secret, {"url": f"{bucket}/{name}", "iat": now,
                                        "exp": now + expires_in})
        return JSONResponse(
            {"signedURL": f"/object/sign/{bucket}/{quote(name)}?token={token}"})

    def _redeem(self, request: Request, bucket: str, name: str) -> dict[str, Any]:
        token = request.query_params.get("token")
        if not token:
            raise StorageError(400, "InvalidSignature", "Missing token")
        try:
            claims = auth.verify(self.secret, token)
        except AuthError as exc:
            raise StorageError(400, "InvalidJWT", exc.message) from None
        if claims.get("url") != f"{bucket}/{name}":
            raise StorageError(400, "InvalidSignature", "Invalid signature")
        return claims

    async def get_signed(self, request: Request) -> Response:
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        self._redeem(request, bucket, name)
        row = await self._find(SUPERUSER, bucket, name)
        return self._file_response(row, bucket, name, request)

    async def sign_upload(self, request: Request) -> Response:
        caller = _caller(request, self.secret)
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        upsert = request.headers.get("x-upsert") == "true"
        await self._bucket(bucket)
        owner = caller.claims.get("sub")
        # Like the real service: prove the caller may create the object by trying
        # the insert (as the caller, under RLS) and rolling it back.
        on_conflict = (" on conflict (bucket_id, name) do update set owner_id = excluded.owner_id"
                       if upsert else "")
        try:
            async with request_tx(self.pool, caller, read_only=False) as conn:
                await conn.execute(
                    "insert into storage.objects (bucket_id, name, owner, owner_id, metadata)"
                    " values (%s, %s, %s, %s, '{}')" + on_conflict,
                    (bucket, name, _as_uuid(owner), owner))
                raise _Rollback
        except _Rollback:
            pass
        now = int(time.time())
        token = auth.sign(self.secret, {"owner": owner, "url": f"{bucket}/{name}",
                                        "upsert": upsert, "iat": now,
                                        "exp": now + SIGNED_UPLOAD_TTL})
        return JSONResponse({"url": f"/object/upload/sign/{bucket}/{quote(name)}?token={token}",
                             "token": token})

    async def put_signed(self, request: Request) -> Response:
        bucket, name = request.path_params["bucket"], _valid_key(request.path_params["name"])
        claims = self._redeem(request, bucket, name)
        response = await self._store(SUPERUSER, bucket, name, request,
                                     upsert=bool(claims.get("upsert")), owner=claims.get("owner"))
        key = json.loads(bytes(response.body))["Key"]
        return JSONResponse({"Key": key})

    async def remove(self, request: Request) -> Response:
        caller = _caller(request, self.secret)
        bucket = request.path_params["bucket"]
        body = await _json_body(request)
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes:
            raise StorageError(400, "InvalidParameter", "prefixes must be a non-empty array")
        names = [_object_name(str(p)) for p in prefixes]
        async with request_tx(self.pool, caller, read_only=False, method="DELETE",
                              path=request.url.path, headers=request.headers) as conn:
            await conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "delete from storage.objects where bucket_id = %s and name = any(%s)"
                " returning name, id, bucket_id, owner, owner_id, updated_at, created_at,"
                " last_accessed_at, metadata", (bucket, names))
            rows = await cur.fetchall()
        for row in rows:
            self._path(bucket, row["name"]).unlink(missing_ok=True)
        return JSONResponse([_jsonable(r) for r in rows])

    async def list(self, request: Request) -> Response:
        caller = _caller(request, self.secret)
        bucket = request.path_params["bucket"]
        body = await _json_body(request)
        prefix = str(body.get("prefix") or "").strip("/")
        folder = f"{prefix}/" if prefix else ""
        search = str(body.get("search") or "")
        limit, offset = int(body.get("limit", 100)), int(body.get("offset", 0))
        sort = body.get("sortBy") or {}
        column = sort.get("column", "name")
        if column not in ("name", "created_at", "updated_at", "last_accessed_at"):
            raise StorageError(400, "InvalidParameter", "Invalid Parameter sortBy.column")
        like = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with request_tx(self.pool, caller, read_only=True, method="POST") as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "select name, id, updated_at, created_at, last_accessed_at, metadata"
                " from storage.objects where bucket_id = %s and name like %s",
                (bucket, like))
            rows = await cur.fetchall()
        entries: dict[str, dict[str, Any]] = {}
        for row in rows:
            rest = row["name"][len(folder):]
            head, sep, _ = rest.partition("/")
            if search and not head.lower().startswith(search.lower()):
                continue
            if sep:
                entries.setdefault(head, {"name": head, "id": None, "updated_at": None,
                                          "created_at": None, "last_accessed_at": None,
                                          "metadata": None})
            else:
                entries[head] = _jsonable({**row, "name": head})
        items = sorted(entries.values(), key=lambda e: (e[column] is None, e[column] or ""),
                       reverse=sort.get("order", "asc") == "desc")
        return JSONResponse(items[offset:offset + limit])


class _Rollback(Exception):
    """Raised inside a transaction to discard a permission probe."""


def _as_uuid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        else:
            out[key] = value
    return out


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise StorageError(400, "InvalidRequest", "Body is not valid JSON") from None
    if not isinstance(body, dict):
        raise StorageError(400, "InvalidRequest", "Body must be a JSON object")
    return body


async def _read_upload(request: Request) -> tuple[bytes, str, str, Any]:
    """Return (bytes, mimetype, cache-control, user metadata) of a multipart or raw upload."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise StorageError(400, "InvalidRequest", "No content provided")
        data = await part.read()
        cache = str(form.get("cacheControl") or "no-cache")
        raw_meta = form.get("metadata")
        user_meta = json.loads(raw_meta) if isinstance(raw_meta, str) else None
        return data, part.content_type or "text/plain;charset=UTF-8", cache, user_meta
    data = await request.body()
    return (data, ctype or "application/octet-stream",
            request.headers.get("cache-control", "no-cache"), None)
