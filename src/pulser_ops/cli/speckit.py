"""``pulser-ops speckit ...``: generate and validate spec kits locally, comment on PRs.

The same code as the ``generate_spec_kit`` / ``validate_spec_kit`` run types, with no database:
``generate`` writes files instead of artifacts, ``validate`` prints the report instead of
saving it. Exit status: 0 valid (warnings allowed), 1 the kit has errors, 2 bad input.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InvalidInput, PulserOpsError
from ..speckit import github_comment, workflow
from ..speckit.generate import ZIP_NAME, generate
from ..speckit.model import parse_params
from ..speckit.report import GITHUB_COMMENT_LIMIT, Report, Source, to_github, to_markdown
from ..speckit.source import check_ref, open_path
from ..speckit.validate import validate
from . import parsing
from .output import err, error_line, note, out

speckit_app = typer.Typer(
    help="Spec kits (GitHub Spec Kit format): generate, validate, comment on pull requests.",
    no_args_is_help=True,
)

INPUT_ERROR = 2


class LayoutOpt(StrEnum):
    plan = "plan"
    speckit = "speckit"


class ReportFormat(StrEnum):
    md = "md"
    json = "json"
    github = "github"


def _fail(e: PulserOpsError) -> typer.Exit:
    err.print(f"error: {error_line(e)}", markup=False)
    return typer.Exit(INPUT_ERROR)


# --- generate --------------------------------------------------------------------------------


@speckit_app.command("generate")
def generate_command(
    name: Annotated[
        str | None, typer.Option(help="Kit name: one path segment (acme-notes).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the project is for.")] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory to write the kit under.")
    ] = Path("."),
    title: Annotated[
        str | None, typer.Option(help="Display title (default: from the name).")
    ] = None,
    feature: Annotated[
        list[str] | None, typer.Option("--feature", help="A user story title (repeatable).")
    ] = None,
    principle: Annotated[
        list[str] | None,
        typer.Option("--principle", help="'Name: description' of a principle (repeatable)."),
    ] = None,
    layout: Annotated[
        LayoutOpt, typer.Option(help="plan: spec/<name>/; speckit: specs/001-<name>/.")
    ] = LayoutOpt.plan,
    date: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD for Created/Ratified (else TODO).")
    ] = None,
    params_file: Annotated[
        Path | None,
        typer.Option("--params-file", help="JSON params (the run type's), e.g. rich user stories."),
    ] = None,
    zip_path: Annotated[
        Path | None, typer.Option("--zip", help=f"Also write {ZIP_NAME} here.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite documents that already exist.")] = False,
) -> None:
    """Generate a spec kit (constitution, spec/PRD, plan, tasks) from Spec Kit's templates."""
    try:
        raw: dict[str, Any] = _read_params(params_file)
        flags = {"name": name, "description": description, "title": title, "date": date,
                 "features": feature or None, "principles": principle or None}  # fmt: skip
        raw.update({k: v for k, v in flags.items() if v is not None})
        if params_file is None or layout != LayoutOpt.plan:
            raw["layout"] = layout.value
        kit = generate(parse_params(raw))
        targets = {out_dir / d.path: d.content for d in kit.documents}
        _write_all(targets, force=force)
        if zip_path is not None:
            _write_all({zip_path: kit.zip_bytes()}, force=True)
    except PulserOpsError as e:
        raise _fail(e) from None
    for path in targets:
        out.print(f"created    {path}", markup=False, highlight=False)
    if zip_path is not None:
        out.print(f"created    {zip_path}", markup=False, highlight=False)
    if kit.todos:
        note(
            f"{len(kit.todos)} TODO(s) left for you to fill in; "
            f"list them with: pulser-ops speckit validate {out_dir / kit.kit.root}"
        )


def _read_params(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = parsing.load_document(path, what="--params-file")
    if not isinstance(data, dict):
        raise InvalidInput(f"--params-file {path}: expected a JSON object")
    return data


def _write_all(files: Mapping[Path, str | bytes], *, force: bool) -> None:
    """Write every file or none: conflicts are found first, then each file is written to a
    temporary name beside it and renamed into place."""
    if not force:
        try:
            taken = [str(p) for p in files if p.exists()]
        except OSError as e:  # even asking can fail: a name too long for the file system
            raise InvalidInput(f"cannot write {e.filename}: {e.strerror}") from None
        if taken:
            raise InvalidInput(f"refusing to overwrite {', '.join(taken)} (use --force)")
    staged: list[tuple[Path, Path]] = []
    try:
        for path, content in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(fd, "wb") as f:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            staged.append((Path(tmp_name), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as e:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {e.filename}: {e.strerror}") from None


# --- validate --------------------------------------------------------------------------------


@speckit_app.command("validate")
def validate_command(
    path: Annotated[
        Path, typer.Argument(help="A kit folder, a repository, or a zip archive.")
    ] = Path("."),
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="md, json, or github annotations.")
    ] = ReportFormat.md,
    json_out: Annotated[
        Path | None, typer.Option("--json-out", help="Also write the JSON report here.")
    ] = None,
    md_out: Annotated[
        Path | None, typer.Option("--md-out", help="Also write the Markdown report here.")
    ] = None,
    changed_since: Annotated[
        str | None,
        typer.Option("--changed-since", help="Only kits with files changed since this git ref."),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="With --changed-since: a kit folder to validate anyway."),
    ] = None,
) -> None:
    """Validate spec kits; exit 1 when any has errors (warnings alone pass)."""
    try:
        opened = open_path(path)
        changed = _changed_files(path, changed_since) if changed_since else None
        source = Source(kind="zip" if path.is_file() else "path", location=str(path))
        report = validate(opened, source, changed=changed, include=include or ())
    except PulserOpsError as e:
        raise _fail(e) from None
    try:
        if json_out is not None:
            parsing.write_text(json_out, report.to_json(), what="--json-out")
        if md_out is not None:
            parsing.write_text(md_out, to_markdown(report), what="--md-out")
    except PulserOpsError as e:
        raise _fail(e) from None
    if fmt == ReportFormat.json:
        text = report.to_json()
    elif fmt == ReportFormat.github:
        text = to_github(report)
    else:
        text = to_markdown(report)
    typer.echo(text, nl=False)
    if not report.ok:
        raise typer.Exit(1)


def _changed_files(path: Path, ref: str) -> list[str]:
    """Files changed between ``ref`` and HEAD (``ref...HEAD``), relative to ``path``."""
    check_ref(ref)
    top = _git(path, ["rev-parse", "--show-toplevel"]).strip()
    names = _git(path, ["diff", "--name-only", "-z", "--no-renames", f"{ref}...HEAD", "--"])
    base = path.resolve()
    changed = []
    for name in filter(None, names.split("\0")):
        full = Path(top) / name
        try:
            changed.append(full.relative_to(base).as_posix())
        except ValueError:
            continue  # outside the folder being validated
    return changed


def _git(path: Path, args: list[str]) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise InvalidInput("--changed-since needs git, which is not installed") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise InvalidInput(f"git {args[0]}: {lines[-1] if lines else 'failed'}")
    return done.stdout


# --- comment, workflow -------------------------------------------------------------------------


@speckit_app.command("comment")
def comment_command(
    report_path: Annotated[Path, typer.Option("--report", help="A JSON report from validate.")],
    repo: Annotated[
        str | None, typer.Option(help="OWNER/NAME (default: $GITHUB_REPOSITORY).")
    ] = None,
    pr: Annotated[
        int | None, typer.Option(help="Pull request number (default: the event's).")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="API root (default: $GITHUB_API_URL).")
    ] = None,
) -> None:
    """Post the report as the pull request's spec-kit comment (one comment, kept up to date)."""
    try:
        try:
            report = Report.model_validate_json(report_path.read_text("utf-8"))
        except OSError as e:
            raise InvalidInput(f"--report {report_path}: {e.strerror}") from None
        except ValueError as e:
            raise InvalidInput(f"--report {report_path}: not a spec-kit report ({e})") from None
        target = github_comment.target_from_env(repo=repo, pr=pr, api_url=api_url)
        posted = github_comment.post(to_markdown(report, limit=GITHUB_COMMENT_LIMIT), target)
    except PulserOpsError as e:
        raise _fail(e) from None
    out.print(f"{posted.action} comment {posted.comment_id} {posted.url}".rstrip(), markup=False)


@speckit_app.command("workflow")
def workflow_command() -> None:
    """Print the GitHub Actions workflow (`pulser-ops init` writes it)."""
    typer.echo(workflow.render(), nl=False)
