"""The artifact viewer: one artifact on its own page (markdown, JSON tree, text with line
numbers, images with zoom, zip listings whose entries open in the same viewers), its raw bytes
for downloads and inline images, and diffs (side by side or unified) between two artifacts of
a run, the same name across attempts, or across two runs of one template.

Bytes are read with the caller's own client, so RLS decides who may see what exactly as for
the SDK. Locally the app serves them; in front of Supabase a download is a redirect to a
short-lived signed Storage URL made with the operator's JWT. A viewer reads at most the
first ``VIEW_LIMIT`` bytes of a file (``artifacts.head``), never the whole of a huge one.
"""

from __future__ import annotations

import json
import posixpath
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ...errors import InvalidInput, NotFound
from ...files import LocalFileStore
from ...models import Artifact, RunFilter
from .. import viewers as v
from ..headers import ARTIFACT_CSP
from ..ids import uuid_or_404

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..room import ControlRoom

#: Seconds a signed Storage URL for a download stays valid.
SIGNED_URL_SECONDS = 60
#: Other runs of the template offered for a comparison.
COMPARE_RUNS = 20


def attempt_of(a: Artifact) -> int:
    """The attempt as URLs carry it (0: saved without one)."""
    return a.attempt or 0


def _attempt_param(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidInput(f"attempt: not a number ({raw!r})")
    return int(raw)


@dataclass(frozen=True)
class Side:
    """One artifact of a comparison, as ``<run>:<attempt>:<name>`` in a URL."""

    run_id: UUID
    attempt: int | None
    name: str

    @classmethod
    def parse(cls, raw: str, what: str) -> Side:
        run, _, rest = raw.partition(":")
        attempt, _, name = rest.partition(":")
        if not name:
            raise InvalidInput(f"{what}: expected <run id>:<attempt>:<artifact name>")
        return cls(uuid_or_404(run), _attempt_param(attempt), name)

    def key(self) -> str:
        return f"{self.run_id}:{'' if self.attempt is None else self.attempt}:{self.name}"


def side_of(a: Artifact) -> str:
    return Side(a.run_id, attempt_of(a), a.name).key()


class Links:
    """URLs of a run's artifacts (paths: they keep working behind a proxy)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def _url(self, route: str, run_id: UUID | str, name: str, **query: Any) -> str:
        # Names may hold spaces, "?" or "#": quoted, so the URL keeps them in the path.
        path = self.request.url_for(route, run_id=str(run_id), name=quote(name, safe="/")).path
        args = {k: val for k, val in query.items() if val is not None and val != ""}
        return path + (f"?{urlencode(args)}" if args else "")

    def view(self, run_id: UUID | str, name: str, attempt: int | None = None,
             entry: str | None = None) -> str:  # fmt: skip
        return self._url("ops.artifact", run_id, name, attempt=attempt, entry=entry)

    def preview(self, run_id: UUID | str, name: str, attempt: int | None = None) -> str:
        return self._url("ops.artifact_preview", run_id, name, attempt=attempt)

    def raw(self, run_id: UUID | str, name: str, attempt: int | None = None,
            entry: str | None = None, download: bool = False) -> str:  # fmt: skip
        return self._url("ops.artifact_raw", run_id, name, attempt=attempt, entry=entry,
                         download=1 if download else None)  # fmt: skip

    def diff(self, a: str, b: str, view: str = "split") -> str:
        return self.request.url_for("ops.diff").path + "?" + urlencode(
            {"a": a, "b": b, "view": view}
        )


def _resolver(links: Links, a: Artifact, entry: str | None, names: set[str]) -> Any:
    """Relative links and images in a markdown artifact point at the run's other artifacts
    (or, inside a zip, at its other entries); anything outside the run is not linked."""
    base = posixpath.dirname(entry if entry is not None else a.name)

    def resolve(url: str, image: bool) -> str | None:
        path = url.split("#", 1)[0].split("?", 1)[0]
        target = posixpath.normpath(posixpath.join(base, path))
        if not path or target.startswith("../") or target == "..":
            return None
        if entry is not None:
            if target not in names:
                return None
            return (links.raw if image else links.view)(a.run_id, a.name, attempt_of(a), target)
        if target not in names:
            return None
        return (links.raw if image else links.view)(a.run_id, target, attempt_of(a))

    return resolve


async def _head(client: AsyncClient, a: Artifact, limit: int) -> tuple[bytes, bool]:
    data = await client.artifacts.head(a, limit + 1)
    return data[:limit], len(data) > limit


def _is_local(client: AsyncClient) -> bool:
    return isinstance(client.transport.files, LocalFileStore)


def _disposition(name: str) -> str:
    base = posixpath.basename(name) or "artifact"
    ascii_name = base.encode("ascii", "replace").decode().replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base)}"


def raw_response(data: bytes, content_type: str, name: str, download: bool) -> Response:
    """Bytes under the artifact policy (a sandbox allowing nothing). Only image types a browser
    renders without running anything are served inline; everything else is a download."""
    inline = not download and v.base_type(content_type) in v.IMAGE_TYPES
    headers = {
        "Content-Security-Policy": ARTIFACT_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Disposition": "inline" if inline else _disposition(name),
    }
    media = v.base_type(content_type) if inline else "application/octet-stream"
    if download:
        media = content_type or "application/octet-stream"
    return Response(data, media_type=media, headers=headers)


async def _zip_bytes(client: AsyncClient, a: Artifact) -> bytes:
    if a.size_bytes > v.ZIP_LIMIT:
        raise InvalidInput(
            f"{a.name} is {a.size_bytes:,} bytes: zips are listed up to {v.ZIP_LIMIT:,}"
            " bytes; download it"
        )
    return await client.artifacts.download(a.run_id, a.name, attempt=attempt_of(a))


async def view_context(
    links: Links, client: AsyncClient, a: Artifact, entry: str | None
) -> dict[str, Any]:
    """What the viewer shows for an artifact (or one entry of a zip artifact)."""
    name, ctype, size = a.name, a.content_type, a.size_bytes
    entry_names: set[str] = set()
    if entry is not None:
        data_zip = await _zip_bytes(client, a)
        try:
            entry_names = v.zip_names(data_zip)
            data, size = v.zip_read(data_zip, entry, v.VIEW_LIMIT + 1)
        except (zipfile.BadZipFile, KeyError):
            raise NotFound(f"no entry {entry!r} in {a.name}") from None
        except v.ZipEntryProblem as e:
            raise InvalidInput(str(e)) from None
        truncated = len(data) > v.VIEW_LIMIT
        data = data[: v.VIEW_LIMIT]
        name, ctype = entry, v.content_type_of(entry)
        viewer = v.viewer_for(entry, ctype)
        if viewer == "zip":  # a zip inside the zip: its bytes, and a download
            viewer = "binary"
    else:
        viewer = v.viewer_for(a.name, a.content_type, a.kind)
        data, truncated = b"", False
        if viewer not in ("image", "zip"):
            data, truncated = await _head(client, a, v.VIEW_LIMIT)
    ctx: dict[str, Any] = {
        "viewer": viewer, "shown_name": name, "shown_type": ctype, "shown_size": size,
        "truncated": truncated, "limit": v.VIEW_LIMIT, "entry": entry,
    }  # fmt: skip
    text = v.as_text(data) if viewer not in ("image", "zip", "binary") else None
    if viewer in ("markdown", "json", "text", "svg") and text is None:
        viewer = ctx["viewer"] = "binary"
    if viewer == "markdown" and text is not None:
        names = entry_names
        if entry is None:
            names = {x.name for x in await client.artifacts.list(a.run_id)}
        ctx["html"] = v.markdown(text, _resolver(links, a, entry, names))
        ctx["lines"] = text.splitlines()
    elif viewer == "json" and text is not None:
        ctx["lines"] = text.splitlines()
        try:
            ctx["tree"] = v.json_tree(json.loads(text))
        except ValueError as e:
            ctx["json_error"] = "cut at the size limit" if truncated else str(e)
    elif viewer in ("text", "svg") and text is not None:
        ctx["lines"] = text.splitlines()
    elif viewer == "binary":
        ctx["hex"] = v.hexdump(data[:512])
    elif viewer == "image":
        ctx["too_big"] = size > v.IMAGE_LIMIT
    elif viewer == "zip":
        try:
            ctx["entries"], ctx["entry_count"] = v.zip_entries(await _zip_bytes(client, a))
        except InvalidInput as e:
            ctx["zip_error"] = str(e)
        except zipfile.BadZipFile:
            ctx["zip_error"] = "not a valid zip archive"
    return ctx


def add(router: APIRouter, room: ControlRoom) -> None:
    async def find(client: AsyncClient, run_id: str, name: str, attempt: str | None) -> Artifact:
        return await client.artifacts.get(
            uuid_or_404(run_id), name, attempt=_attempt_param(attempt)
        )

    @router.get("/runs/{run_id}/artifacts/{name:path}", name="ops.artifact")
    async def artifact_page(request: Request, run_id: str, name: str) -> Response:
        _, client = await room.client(request)
        q = request.query_params
        a = await find(client, run_id, name, q.get("attempt"))
        run = await client.runs.get(a.run_id)
        siblings = await client.artifacts.list(a.run_id)
        links = Links(request)
        ctx = await view_context(links, client, a, q.get("entry"))
        others = await client.runs.search(
            RunFilter(templates=(run.template,)), limit=COMPARE_RUNS + 1
        )
        return room.render(
            request,
            "artifact.html",
            {
                "page": "ops.runs", "run": run, "a": a, "links": links, "siblings": siblings,
                "attempts": [s for s in siblings if s.name == a.name],
                "other_runs": [r for r in others if r.id != run.id][:COMPARE_RUNS],
                "side": side_of(a), "side_of": side_of, "attempt_of": attempt_of, **ctx,
            },
        )  # fmt: skip

    @router.get("/partials/runs/{run_id}/artifacts/{name:path}", name="ops.artifact_preview")
    async def artifact_preview(request: Request, run_id: str, name: str) -> Response:
        """The viewer inside the run detail (below its artifacts)."""
        _, client = await room.client(request)
        a = await find(client, run_id, name, request.query_params.get("attempt"))
        links = Links(request)
        ctx = await view_context(links, client, a, None)
        return room.render(
            request,
            "partials/artifact_preview.html",
            {"a": a, "links": links, "attempt_of": attempt_of, **ctx},
        )

    @router.get("/runs/{run_id}/raw/{name:path}", name="ops.artifact_raw")
    async def artifact_raw(request: Request, run_id: str, name: str) -> Response:
        _, client = await room.client(request)
        q = request.query_params
        a = await find(client, run_id, name, q.get("attempt"))
        download = q.get("download") == "1"
        entry = q.get("entry")
        if entry is not None:
            limit = v.ENTRY_DOWNLOAD_LIMIT if download else v.IMAGE_LIMIT
            try:
                data, _ = v.zip_read(await _zip_bytes(client, a), entry, limit + 1)
            except (zipfile.BadZipFile, KeyError):
                raise NotFound(f"no entry {entry!r} in {a.name}") from None
            except v.ZipEntryProblem as e:
                raise InvalidInput(str(e)) from None
            if len(data) > limit:  # by what inflates, not by the size its header claims
                raise InvalidInput(
                    f"{entry} is over {limit:,} bytes: download {a.name} itself"
                    if download else f"{entry} is too big to show; download it"
                )
            return raw_response(data, v.content_type_of(entry), entry, download)
        if a.storage_path is not None and not _is_local(client):
            # Supabase Storage: a short-lived URL signed with the operator's own JWT.
            url = await client.artifacts.signed_url(
                a.run_id, a.name, expires_in=SIGNED_URL_SECONDS, attempt=attempt_of(a)
            )
            if download:
                url += ("&" if "?" in url else "?") + urlencode(
                    {"download": posixpath.basename(a.name)}
                )
                return RedirectResponse(url, 303, headers={"Cache-Control": "no-store"})
            if v.base_type(a.content_type) not in v.IMAGE_TYPES or a.size_bytes > v.IMAGE_LIMIT:
                raise InvalidInput(f"{a.name} is not an image to show inline; download it")
        elif not download and a.size_bytes > v.IMAGE_LIMIT:
            raise InvalidInput(f"{a.name} is too big to show; download it")
        data = await client.artifacts.download(a.run_id, a.name, attempt=attempt_of(a))
        return raw_response(data, a.content_type, a.name, download)

    @router.get("/diff", name="ops.diff")
    async def diff_page(request: Request) -> Response:
        _, client = await room.client(request)
        q = request.query_params
        if not q.get("a") or not q.get("b"):
            raise InvalidInput("pick two artifacts to compare (a and b)")
        left = Side.parse(q["a"], "a")
        right = Side.parse(q["b"], "b")
        view = "unified" if q.get("view") == "unified" else "split"
        a = await client.artifacts.get(left.run_id, left.name, attempt=left.attempt)
        b = await client.artifacts.get(right.run_id, right.name, attempt=right.attempt)
        if q.get("order") == "oldest-first" and (a.created_at, attempt_of(a)) > (
            b.created_at, attempt_of(b)
        ):
            a, b = b, a  # "compare with": what came first on the left
        a_data, a_cut = await _head(client, a, v.DIFF_LIMIT)
        b_data, b_cut = await _head(client, b, v.DIFF_LIMIT)
        a_lines, b_lines = v.diff_lines(a_data), v.diff_lines(b_data)
        ctx: dict[str, Any] = {
            "page": "ops.runs", "a": a, "b": b, "view": view, "links": Links(request),
            "a_key": side_of(a), "b_key": side_of(b), "cut": a_cut or b_cut,
            "attempt_of": attempt_of, "limit": v.DIFF_LIMIT,
        }  # fmt: skip
        if a_lines is None or b_lines is None:
            ctx["binary"] = True
            ctx["same"] = a.sha256 is not None and a.sha256 == b.sha256
        else:
            ctx["rows"] = v.split_diff(a_lines, b_lines)
            ctx["unified"] = v.unified_diff(
                a_lines, b_lines, f"{a.name} (attempt {attempt_of(a)})",
                f"{b.name} (attempt {attempt_of(b)})"
            )  # fmt: skip
            ctx["added"] = sum(1 for c, _ in ctx["unified"] if c == "add")
            ctx["removed"] = sum(1 for c, _ in ctx["unified"] if c == "del")
        return room.render(request, "diff.html", ctx)
