"""``pulser-ops db ...`` and ``pulser-ops init``: ship the SQL control plane.

Why these exist next to the Supabase CLI: ``db push`` works on plain PostgreSQL
too (it bootstraps what Supabase would provide) and records history exactly as
``supabase db push`` does; ``db sql`` lets people paste the schema into the
Supabase SQL editor; ``init`` vendors the migrations into a user's own
``supabase/`` project so their CLI workflow owns them from then on, and writes the
GitHub workflows that schedule the sweeper (:mod:`pulser_ops.scaffold`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pulser_ops import resources, scaffold
from pulser_ops.db.migrate import MigrationFile, PushEvent, PushResult, load_migrations, push
from pulser_ops.errors import MigrationError
from pulser_ops.speckit import workflow as speckit_workflow

db_app = typer.Typer(help="Database schema: push migrations, print SQL.", no_args_is_help=True)

_out = Console()
_err = Console(stderr=True)

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        envvar="PULSER_OPS_DATABASE_URL",
        help="Postgres URL (direct or session-pooler connection).",
        show_default=False,
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line on stderr and return the exit to raise."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    _err.print(f"error: {first}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _describe(event: PushEvent) -> str:
    return {
        "bootstrap": "Bootstrapping plain PostgreSQL (roles, auth, storage)...",
        "migration": f"Applying migration {event.name}...",
        "squash": f"Recording {event.name} in place of the migrations it replaces"
        " (the database has them; nothing runs)...",
        "seed": f"Seeding data from {event.name}...",
        "seed_hash": f"Updating seed hash for {event.name} (changed seeds are not re-run)...",
    }[event.kind]


def _summary(result: PushResult) -> str:
    if result.up_to_date:
        return "Database is up to date."
    verb = "Would apply" if result.dry_run else "Applied"
    lines = []
    if result.bootstrapped:
        lines.append(f"{verb} the plain-PostgreSQL bootstrap.")
    for mig in result.squashed:
        done = "Would record" if result.dry_run else "Recorded"
        lines.append(f"{done} {mig.filename} in place of {', '.join(mig.replaces)} (nothing ran).")
    if result.applied:
        names = ", ".join(m.filename for m in result.applied)
        lines.append(f"{verb} {len(result.applied)} migration(s): {names}")
    if result.seeded:
        lines.append(f"{verb} seed: {', '.join(result.seeded)}")
    return "\n".join(lines)


@db_app.command("push")
def push_command(
    db_url: DbUrl = None,
    include_seed: Annotated[
        bool, typer.Option("--include-seed", help="Also apply supabase/seed.sql.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be applied; change nothing.")
    ] = False,
) -> None:
    """Apply pending migrations (history compatible with `supabase db push`)."""

    if not db_url:
        raise _fail("no database URL: pass --db-url or set PULSER_OPS_DATABASE_URL", code=2)

    def progress(event: PushEvent) -> None:
        _err.print(_describe(event), markup=False, highlight=False)

    try:
        with _err.status("Connecting...", spinner="dots"):
            result = push(db_url, include_seed=include_seed, dry_run=dry_run, on_progress=progress)
    except MigrationError as exc:
        raise _fail(f"{exc.reason}: {exc}") from None
    _out.print(_summary(result), markup=False, highlight=False)


@db_app.command("sql")
def sql_command(
    bootstrap: Annotated[
        bool, typer.Option("--bootstrap", help="Prepend the plain-PostgreSQL bootstrap.")
    ] = False,
) -> None:
    """Print the migrations concatenated (for the Supabase SQL editor or psql)."""
    chunks: list[str] = []
    if bootstrap:
        chunks.append(
            _with_header("bootstrap.sql (plain PostgreSQL only)", resources.bootstrap_sql())
        )
    for mig in load_migrations(resources.migrations_dir()):
        chunks.append(_with_header(mig.filename, mig.path.read_bytes().decode("utf-8")))
    if not chunks:
        raise _fail(f"no migrations found in {resources.migrations_dir()}")
    typer.echo("\n".join(chunks), nl=False)


def _with_header(name: str, body: str) -> str:
    bar = "-" * 72
    return f"{bar}\n-- {name}\n{bar}\n{body.rstrip()}\n"


def init_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="Project root that holds (or will hold) supabase/.")
    ] = Path("."),
    workflows: Annotated[
        bool,
        typer.Option(
            "--workflows/--no-workflows",
            help="Also write the GitHub Actions workflows (sweeper.yml, spec-kit.yml).",
        ),
    ] = True,
) -> None:
    """Copy the migrations and seed into DIR/supabase/, and the GitHub workflows into
    DIR/.github/workflows/ (never overwrites a changed file)."""
    shipped = load_migrations(resources.migrations_dir())
    _refuse_replaced(directory / "supabase" / "migrations", shipped)
    files = [(m.path.read_bytes(), Path("supabase/migrations") / m.filename) for m in shipped]
    if not files:
        raise _fail(f"no migrations found in {resources.migrations_dir()}")
    if resources.seed_path().is_file():
        files.append((resources.seed_path().read_bytes(), Path("supabase/seed.sql")))
    if workflows:
        files += [(wf.render(), wf.target) for wf in scaffold.WORKFLOWS]
        files.append(
            (speckit_workflow.render().encode("utf-8"), Path(speckit_workflow.WORKFLOW_PATH))
        )
    conflicts: list[str] = []
    for content, rel in files:
        dst = directory / rel
        try:
            if dst.exists():
                if dst.is_file() and dst.read_bytes() == content:
                    _out.print(f"unchanged  {dst}", markup=False, highlight=False, soft_wrap=True)
                else:
                    conflicts.append(str(dst))
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(content)
        except OSError as e:
            raise _fail(f"cannot write {dst}: {e.strerror or e}") from None
        _out.print(f"created    {dst}", markup=False, highlight=False, soft_wrap=True)
    if conflicts:
        raise _fail(f"kept existing files that differ from pulser-ops': {', '.join(conflicts)}")


def _refuse_replaced(target: Path, shipped: list[MigrationFile]) -> None:
    """Stop before copying a squashed migration next to the files it replaces.

    ``supabase db push`` would then try to run the squashed one on a database that already
    has all of it. The old files go, and the history is repaired, first (supabase/README.md).
    """
    try:
        if not target.is_dir():
            return
    except OSError as e:  # e.g. a name too long for the file system
        raise _fail(f"cannot read {target}: {e.strerror or e}") from None
    for mig in shipped:
        old = sorted(
            p.name for p in target.glob("*.sql") if p.name.split("_", 1)[0] in mig.replaces
        )
        if old:
            raise _fail(
                f"{target} holds {', '.join(old)}, which {mig.filename} replaces: delete them;"
                " on a database that has them applied, first run `supabase migration repair"
                f" --status reverted {' '.join(mig.replaces)}` and `supabase migration repair"
                f" --status applied {mig.version}`; then run init again"
            )
