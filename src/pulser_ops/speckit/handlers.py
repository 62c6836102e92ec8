"""The python step handlers behind the ``generate_spec_kit`` and ``validate_spec_kit`` templates.

Built into the reference worker (``worker.loop.BUILTIN_HANDLERS``), so the seeded templates
run on any worker without ``--handlers``. They are the same code as ``pulser-ops speckit
generate|validate``; only where the output goes differs (artifacts and ``spec_docs`` rows here,
files and stdout there).

Bad input fails the run at once and for good (``NonRetryable`` with the error's stable code
as the run's ``error_class``), before anything is saved. A kit with errors fails the run with
``error_class = 'spec_kit_invalid'`` after its report is saved; warnings alone succeed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from ..client import Client
from ..errors import InvalidInput, NotFound, PermissionDenied
from ..models import Run, SpecDocIn
from ..steps import HandlerContext, HandlerRegistry, NonRetryable
from . import upstream
from .generate import ZIP_NAME, GeneratedKit, generate
from .model import parse_params
from .report import Report, Source, to_markdown
from .source import (
    MAX_ARCHIVE_BYTES,
    Opened,
    check_member,
    inside,
    open_git,
    open_path,
    read_zip,
    subtree,
)
from .validate import validate

GENERATE = "speckit.generate"
VALIDATE = "speckit.validate"
REPORT_JSON = "spec-kit-report.json"
REPORT_MD = "spec-kit-report.md"
#: Where ``validate_spec_kit`` resolves ``path`` and a local ``git_repo`` on a worker.
SPEC_ROOT_ENV = "PULSER_OPS_SPEC_ROOT"

registry = HandlerRegistry()


@runtime_checkable
class ControlPlaneAccess(Protocol):
    """What the reference worker's run context offers besides ``StepContext``."""

    @property
    def client(self) -> Client: ...

    @property
    def worker_id(self) -> str: ...

    @property
    def run(self) -> Run: ...


def _access(ctx: HandlerContext) -> ControlPlaneAccess | None:
    step_ctx = ctx.step_ctx
    return step_ctx if isinstance(step_ctx, ControlPlaneAccess) else None


@contextmanager
def _refusing() -> Iterator[None]:
    """Input errors end the run without retries, under the error's stable code."""
    try:
        yield
    except (InvalidInput, NotFound, PermissionDenied) as e:
        raise NonRetryable(e.message, error_class=e.code) from None


# --- generate_spec_kit -----------------------------------------------------------------------


@registry.register(GENERATE)
def generate_spec_kit(ctx: HandlerContext) -> dict[str, Any]:
    access = _access(ctx)
    with _refusing():
        draft = _draft(ctx, access)
        params = parse_params(dict(ctx.params), draft)
        kit = generate(params)
    archive = kit.zip_bytes()  # everything is built before anything is saved
    ctx.raise_if_cancelled()
    for doc in kit.documents:
        ctx.save_artifact(doc.path, doc.content, "markdown", "text/markdown; charset=utf-8")
    ctx.save_artifact(ZIP_NAME, archive, "file", "application/zip")
    if access is not None:  # one row per document, linked to the run (and its session)
        access.client.spec_docs.put(
            ctx.run_id,
            access.worker_id,
            ctx.attempt,
            [
                SpecDocIn(path=d.path, kind=d.kind, title=d.title, content=d.content)
                for d in kit.documents
            ],
        )
    ctx.log.info(
        f"spec kit {kit.kit.root}: {len(kit.documents)} documents, {len(kit.todos)} TODO(s) left",
        root=kit.kit.root,
    )
    return summary(kit)


def summary(kit: GeneratedKit) -> dict[str, Any]:
    return {
        "layout": kit.kit.layout,
        "root": kit.kit.root,
        "files": {d.kind: d.path for d in kit.documents},
        "zip": ZIP_NAME,
        "spec_kit_version": upstream.version(),
        "todos": [{"file": t.file, "line": t.line, "field": t.field} for t in kit.todos],
    }


def _draft(ctx: HandlerContext, access: ControlPlaneAccess | None) -> Any:
    """The step arg ``draft_artifact`` names a JSON artifact an earlier step of this run
    saved (an ``http`` step's ``save_response_as``, an ``mcp`` step's ``<name>.result.json``);
    its fields fill what the params leave out."""
    name = ctx.args.get("draft_artifact")
    if not name:
        return None
    if not isinstance(name, str):
        raise InvalidInput("draft_artifact: expected an artifact name")
    if access is None:
        raise InvalidInput("draft_artifact: this worker has no control-plane client")
    data = access.client.artifacts.download(ctx.run_id, check_member(name, "draft_artifact"))
    try:
        return json.loads(data)
    except ValueError:
        raise InvalidInput(f"draft_artifact {name!r} is not JSON") from None


# --- validate_spec_kit -----------------------------------------------------------------------


@registry.register(VALIDATE)
def validate_spec_kit(ctx: HandlerContext) -> dict[str, Any]:
    params = dict(ctx.params)
    with _refusing():
        report = _validate_source(params, _access(ctx), _spec_root())
    ctx.save_artifact(REPORT_JSON, report.to_json(), "json", "application/json")
    ctx.save_artifact(REPORT_MD, to_markdown(report), "markdown", "text/markdown; charset=utf-8")
    s = report.summary
    ctx.log.info(f"{s.kits} kit(s): {s.errors} error(s), {s.warnings} warning(s)")
    if not s.ok:
        first = next(f for f in report.findings if f.severity == "error")
        where = f"{first.file}:{first.line}" if first.line else (first.file or "")
        raise NonRetryable(
            f"spec kit has {s.errors} error(s) (first: {first.rule} at {where}: {first.message}); "
            f"see {REPORT_MD}",
            error_class="spec_kit_invalid",
        )
    return {"ok": s.ok, "errors": s.errors, "warnings": s.warnings, "kits": s.kits,
            "report": REPORT_JSON}  # fmt: skip


def _spec_root() -> Path:
    return Path(os.environ.get(SPEC_ROOT_ENV) or os.getcwd())


def _validate_source(
    params: dict[str, Any], access: ControlPlaneAccess | None, root: Path
) -> Report:
    path = _opt_str(params, "path")
    run_id = _opt_str(params, "run_id")
    ref = _opt_str(params, "git_ref")
    chosen = [k for k, v in (("path", path), ("run_id", run_id), ("git_ref", ref)) if v]
    if (run_id and ref) or not chosen:
        raise InvalidInput("params: give path, run_id (a zip artifact) or git_ref (one source)")
    if run_id:
        name = _opt_str(params, "artifact") or ZIP_NAME
        tree = read_zip(_artifact(access, run_id, name), f"artifact {name} of run {run_id}")
        opened = subtree(tree, path) if path else Opened(tree)
        return validate(opened, Source(kind="artifact", location=f"{run_id}/{name}"))
    if ref:
        repo = _opt_str(params, "git_repo") or "."
        with open_git(repo, ref, root) as git_tree:
            opened = subtree(git_tree, path) if path else Opened(git_tree)
            return validate(opened, Source(kind="git", location=f"{repo}@{ref}"))
    assert path is not None
    opened = open_path(inside(root, path, "path"), display=path)
    return validate(opened, Source(kind="path", location=path))


def _opt_str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key}: expected a string")
    return value


def _artifact(access: ControlPlaneAccess | None, run_id: str, name: str) -> bytes:
    """Another run's artifact, read with the worker's rights: allowed only when that run has
    the same owner as this one (an operator validates their own runs' output; the rule is the
    database's, ``get_run_on_behalf_of``). Someone else's run is answered like a run that does
    not exist, so a validation run cannot probe ids."""
    if access is None:
        raise InvalidInput("run_id: this worker has no control-plane client")
    try:
        source_id = UUID(run_id)
    except ValueError:
        raise InvalidInput(f"run_id: {run_id!r} is not a UUID") from None
    check_member(name, "artifact")
    try:
        access.client.runs.get(source_id, on_behalf_of=access.run.id)
    except NotFound:
        raise NotFound(f"run {run_id} not found") from None
    try:
        meta = access.client.artifacts.get(source_id, name)
    except NotFound:
        raise NotFound(f"run {run_id} has no artifact {name!r}") from None
    if meta.size_bytes > MAX_ARCHIVE_BYTES:  # refused before it is downloaded
        raise InvalidInput(
            f"artifact {name} of run {run_id} is {meta.size_bytes:,} bytes; "
            f"the limit is {MAX_ARCHIVE_BYTES:,} bytes"
        )
    return access.client.artifacts.download(source_id, name)


__all__ = ["GENERATE", "REPORT_JSON", "REPORT_MD", "VALIDATE", "registry"]
