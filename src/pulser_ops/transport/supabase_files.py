"""Artifact files in Supabase Storage (bucket ``run-artifacts``), through storage3.

Uploads go through a signed upload URL (``create_signed_upload_url`` then
``upload_to_signed_url``): the signing request is where Storage checks the caller's rights, and
the upload itself carries only the short-lived token, which is also what a worker would hand to
a helper process that should not hold the service key. Objects are upserted so that re-putting
an artifact (``put_artifact`` is an upsert too) replaces its file.

The store is synchronous, like ``files.FileStore``; the async client calls it in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from storage3.exceptions import StorageApiError
from storage3.types import CreateSignedUploadUrlOptions
from storage3.utils import StorageException
from supabase import Client

from ..config import Settings
from ..errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    PulserOpsError,
    StorageError,
)
from ..files import BUCKET, check_object_path
from .supabase_http import SyncClients, sync_http, translate_http_error

#: Storage deletes at most this many objects per request.
REMOVE_BATCH = 1000


def _status(e: StorageApiError) -> int | None:
    try:
        return int(e.status)
    except (TypeError, ValueError):
        return None


def translate_storage_error(e: StorageException, path: str) -> PulserOpsError:
    if not isinstance(e, StorageApiError):
        return StorageError(f"storage: {path}: {e}")
    status = _status(e)
    code = str(e.code)
    if status == 404 or code in ("not_found", "NoSuchKey", "NoSuchBucket"):
        return NotFound(f"file {path} not found in bucket {BUCKET}: {e.message}")
    if status in (401, 403) or code in ("Unauthorized", "AccessDenied", "InvalidJWT"):
        return PermissionDenied(f"storage refused {path}: {e.message}")
    if code == "InvalidKey":
        return InvalidInput(f"{path!r} is not a valid object key: {e.message}")
    return StorageError(f"storage error for {path} ({status} {code}): {e.message}")


class SupabaseFileStore:
    """``files.FileStore`` on Supabase Storage; every path is ``<run id>/<artifact name>``."""

    def __init__(self, settings: Settings, *, clients: Callable[[], Client] | None = None) -> None:
        """``clients``: the supabase-py client to use (the sync transport's, for the current
        token); without it the store opens its own."""
        self._settings = settings
        self._http: httpx.Client | None = None
        if clients is None:
            self._http = sync_http(settings)
            clients = SyncClients(settings, self._http)
        self._clients = clients

    def _bucket(self) -> Any:
        return self._clients().storage.from_(BUCKET)

    def put(self, path: str, data: bytes, content_type: str) -> None:
        check_object_path(path, new=True)
        try:
            bucket = self._bucket()
            signed = bucket.create_signed_upload_url(
                path, CreateSignedUploadUrlOptions(upsert="true")
            )
            bucket.upload_to_signed_url(
                signed["path"],
                signed["token"],
                data,
                {"content-type": content_type, "x-upsert": "true"},
            )
        except StorageException as e:
            raise translate_storage_error(e, path) from None
        except httpx.HTTPError as e:
            raise translate_http_error(e) from None

    def get(self, path: str) -> bytes:
        check_object_path(path)
        try:
            data: bytes = self._bucket().download(path)
        except StorageException as e:
            raise translate_storage_error(e, path) from None
        except httpx.HTTPError as e:
            raise translate_http_error(e) from None
        return data

    def head(self, path: str, max_bytes: int) -> bytes:
        """Asks for the first bytes only (``Range``, which Storage honours) through a one-minute
        signed URL, and stops reading at ``max_bytes`` even if the range is ignored."""
        url = self.signed_url(path, 60)
        http = self._http or sync_http(self._settings)
        wanted = {"Range": f"bytes=0-{max(max_bytes, 1) - 1}"}
        try:
            with http.stream("GET", url, headers=wanted) as r:
                if r.status_code == 404:
                    raise NotFound(f"file {path} not found in bucket {BUCKET}")
                if r.status_code >= 400:
                    raise StorageError(f"storage error for {path} ({r.status_code})")
                got = bytearray()
                for chunk in r.iter_bytes():
                    got += chunk
                    if len(got) >= max_bytes:
                        break
                return bytes(got[:max_bytes])
        except httpx.HTTPError as e:
            raise translate_http_error(e) from None
        finally:
            if http is not self._http:
                http.close()

    def signed_url(self, path: str, expires_in: int) -> str:
        check_object_path(path)
        try:
            signed = self._bucket().create_signed_url(path, expires_in)
        except StorageException as e:
            raise translate_storage_error(e, path) from None
        except httpx.HTTPError as e:
            raise translate_http_error(e) from None
        url = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise NotFound(f"file {path} not found in bucket {BUCKET}")
        return str(url)

    def remove(self, paths: list[str]) -> None:
        """Delete files; ones that are already gone are not an error (like ``rm -f``)."""
        for p in paths:
            check_object_path(p)
        for start in range(0, len(paths), REMOVE_BATCH):
            batch = paths[start : start + REMOVE_BATCH]
            try:
                self._bucket().remove(batch)
            except StorageException as e:
                raise translate_storage_error(e, batch[0]) from None
            except httpx.HTTPError as e:
                raise translate_http_error(e) from None

    def describe(self) -> str:
        return f"supabase-storage://{BUCKET}"

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
