"""``pulser-ops db push``: apply the shipped migrations the way ``supabase db push`` does.

Why not shell out to the Supabase CLI: users of plain PostgreSQL (and CI) should
not need it, and on plain PostgreSQL the Supabase-provided pieces (roles,
``auth.*``, ``storage.*``) must be bootstrapped first. The history we record is
identical to the CLI's (same table, same version/name parsing, same statement
splitting), so the two tools are interchangeable on the same database.

Differences from the CLI, on purpose:

* a session advisory lock serialises concurrent pushes (two workers starting at
  once must not both apply a migration);
* on a database that is not Supabase, ``bootstrap.sql`` runs first;
* squashed migrations (Django's ``replaces``): a migration whose opening comments
  hold ``-- replaces: <version> ...`` stands for those versions. On a database
  whose history holds exactly them, the push records the squashed migration and
  forgets the replaced rows in one transaction, without running it, which is what
  ``supabase migration repair`` does by hand (see supabase/README.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg

from pulser_ops import resources
from pulser_ops.db import history
from pulser_ops.db.sqlsplit import split_statements
from pulser_ops.errors import MigrationError

#: ``supabase/cli`` pkg/migration/file.go ``migrateFilePattern``.
MIGRATION_FILE_RE = re.compile(r"^([0-9]+)_(.*)\.sql$")
#: Path recorded in ``seed_files``: the CLI records it relative to the project
#: root with the default ``[db.seed] sql_paths = ["./seed.sql"]``.
SEED_RECORD_PATH = "supabase/seed.sql"
#: The line of a squashed migration's opening comments that names what it replaces.
REPLACES_RE = re.compile(r"^--\s*replaces:(.*)$")
#: Session advisory lock key ("puls" << 32 | 1) held for the whole push.
PUSH_LOCK_KEY = 0x70756C7300000001
BOOTSTRAP_MARKER = "pulser-ops plain-postgres bootstrap"

@dataclass(frozen=True)
class MigrationFile:
    """One local migration, parsed like the CLI parses it."""

    version: str
    name: str
    path: Path
    statements: tuple[str, ...]
    #: Versions this squashed migration stands for (its ``-- replaces:`` line), else ().
    replaces: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class PushEvent:
    """Progress notification, sent just before each step runs."""

    kind: Literal["bootstrap", "migration", "squash", "seed", "seed_hash"]
    name: str


@dataclass(frozen=True)
class PushResult:
    """What a push did (or, with ``dry_run``, would do)."""

    dry_run: bool
    supabase: bool
    bootstrapped: bool
    applied: tuple[MigrationFile, ...] = field(default=())
    seeded: tuple[str, ...] = field(default=())
    #: Squashed migrations recorded in place of the versions they replace (not run).
    squashed: tuple[MigrationFile, ...] = field(default=())

    @property
    def up_to_date(self) -> bool:
        return not (self.applied or self.seeded or self.bootstrapped or self.squashed)


def load_migrations(migrations_dir: Path) -> list[MigrationFile]:
    """Migration files sorted by file name, as the CLI lists them; others are skipped.

    Files are read as bytes so CRLF line endings survive into ``statements``
    exactly as the CLI stores them.
    """
    files: list[MigrationFile] = []
    for path in sorted(migrations_dir.iterdir(), key=lambda p: p.name):
        match = MIGRATION_FILE_RE.match(path.name)
        if not match or not path.is_file():
            continue
        sql = path.read_bytes().decode("utf-8")
        files.append(
            MigrationFile(
                version=match.group(1),
                name=match.group(2),
                path=path,
                statements=tuple(split_statements(sql)),
                replaces=parse_replaces(sql, path.name),
            )
        )
    return files


def parse_replaces(sql: str, filename: str = "migration") -> tuple[str, ...]:
    """The versions named by a ``-- replaces: ...`` line among the file's opening comments."""
    for line in sql.splitlines():
        text = line.strip()
        if not text:
            continue
        if not text.startswith("--"):
            break
        match = REPLACES_RE.match(text)
        if match:
            versions = tuple(match.group(1).split())
            if not versions or not all(v.isdigit() for v in versions):
                raise MigrationError(
                    "migration_failed",
                    f"{filename}: a replaces line lists migration versions (digits): {text}",
                )
            return versions
    return ()


@dataclass(frozen=True)
class Squash:
    """A squashed migration to record without running, and the history rows it takes over."""

    migration: MigrationFile
    replaced: tuple[str, ...]


def plan_squashes(
    local: Sequence[MigrationFile], remote: Sequence[str]
) -> tuple[list[Squash], list[str]]:
    """Squashed migrations to record in place of what they replace, and the history after that.

    A squashed migration is recorded instead of run when the history holds every version it
    replaces (the database already has all of it). A database with none of them (a new one)
    runs it. Anything in between is refused with ``squash_mismatch``, saying what to do.
    """
    versions = list(remote)
    squashes: list[Squash] = []
    for mig in local:
        if not mig.replaces:
            continue
        present = [v for v in mig.replaces if v in versions]
        if mig.version in versions:
            if present:
                raise MigrationError(
                    "squash_mismatch",
                    f"the history holds {mig.filename} and also {', '.join(present)}, which it"
                    " replaces: remove those rows (`supabase migration repair --status reverted"
                    f" {' '.join(present)}`), then push again",
                    versions=present,
                )
            continue
        if not present:
            continue
        missing = [v for v in mig.replaces if v not in versions]
        if missing:
            raise MigrationError(
                "squash_mismatch",
                f"the database has {', '.join(present)} but not {', '.join(missing)}: it stopped"
                f" partway through the migrations that {mig.filename} replaces. Apply the rest"
                " with the pulser-ops release that applied the others (its `pulser-ops db"
                " push`), then push again with this one",
                versions=missing,
            )
        squashes.append(Squash(mig, tuple(present)))
        versions = sorted({*versions, mig.version} - set(mig.replaces))
    return squashes, versions


def find_pending(local: Sequence[str], remote: Sequence[str]) -> list[int]:
    """Indexes of ``local`` versions to apply (port of the CLI's FindPendingMigrations).

    Raises ``missing_local`` when the database has versions this package does not
    ship (it was migrated by something newer or different), and
    ``missing_remote`` when a local version sorts before the last applied one.
    """
    missing: list[str] = []
    unapplied: list[str] = []
    i = j = 0
    while i < len(remote) and j < len(local):
        if remote[i] == local[j]:
            i += 1
            j += 1
        elif remote[i] < local[j]:
            missing.append(remote[i])
            i += 1
        else:
            unapplied.append(local[j])
            j += 1
    if j == len(local):
        missing.extend(remote[i:])
    if missing:
        raise MigrationError(
            "missing_local",
            "remote migration versions not found in local migrations: "
            + ", ".join(missing)
            + " (the database was migrated by a different or newer pulser-ops)",
            versions=missing,
        )
    if unapplied:
        raise MigrationError(
            "missing_remote",
            "local migrations would be inserted before the last applied one: "
            + ", ".join(unapplied),
            versions=unapplied,
        )
    return list(range(len(remote), len(local)))


def is_supabase(conn: psycopg.Connection[Any]) -> bool:
    """True when the Supabase platform (not our bootstrap) provides roles/auth/storage.

    A database carrying our bootstrap marker is plain PostgreSQL even if someone
    created a ``supabase_admin`` role on it.
    """
    row = conn.execute(
        """
        select
          coalesce((select obj_description(oid, 'pg_namespace') = %s
                    from pg_namespace where nspname = 'auth'), false),
          exists (select 1 from pg_roles where rolname = 'supabase_admin')
            and (to_regclass('auth.schema_migrations') is not null
                 or to_regclass('storage.migrations') is not null)
        """,
        (BOOTSTRAP_MARKER,),
    ).fetchone()
    assert row is not None
    marked, platform = bool(row[0]), bool(row[1])
    return platform and not marked


def _has_bootstrap(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = 'auth'"
    ).fetchone()
    return row is not None and row[0] == BOOTSTRAP_MARKER


def _notify(on_progress: Callable[[PushEvent], None] | None, event: PushEvent) -> None:
    if on_progress is not None:
        on_progress(event)


def _apply_migration(conn: psycopg.Connection[Any], mig: MigrationFile) -> None:
    """Statements + history row in one transaction, after ``RESET ALL`` like the CLI."""
    conn.execute("RESET ALL")
    with conn.transaction():
        for idx, stmt in enumerate(mig.statements):
            try:
                conn.execute(stmt)
            except psycopg.Error as exc:
                raise MigrationError(
                    "migration_failed",
                    f"migration {mig.filename} failed at statement {idx}"
                    f" (SQLSTATE {exc.sqlstate}): {str(exc).strip()}\n{stmt}",
                    versions=[mig.version],
                    sqlstate=exc.sqlstate,
                ) from exc
        conn.execute(history.INSERT_VERSION, (mig.version, mig.name, list(mig.statements)))


def _record_squash(conn: psycopg.Connection[Any], squash: Squash) -> None:
    """Forget the replaced history rows and record the squashed migration, atomically.

    Nothing of the migration runs: the database already has everything it creates. The row is
    the one ``supabase db push`` (or ``supabase migration repair --status applied``) writes.
    """
    mig = squash.migration
    with conn.transaction():
        gone = conn.execute(history.DELETE_VERSIONS, (list(squash.replaced),)).fetchall()
        if sorted(str(r[0]) for r in gone) != sorted(squash.replaced):
            raise MigrationError(
                "squash_mismatch",
                f"the history changed while recording {mig.filename}; push again",
                versions=squash.replaced,
            )
        conn.execute(history.INSERT_VERSION, (mig.version, mig.name, list(mig.statements)))


def _apply_seed(conn: psycopg.Connection[Any], path: Path, digest: str, dirty: bool) -> None:
    """Run the seed and record its hash; a changed (dirty) seed only gets its hash
    updated, never re-run, exactly like ``supabase db push --include-seed``."""
    with conn.transaction():
        if not dirty:
            for idx, stmt in enumerate(split_statements(path.read_bytes().decode("utf-8"))):
                try:
                    conn.execute(stmt)
                except psycopg.Error as exc:
                    raise MigrationError(
                        "seed_failed",
                        f"seed {path.name} failed at statement {idx}"
                        f" (SQLSTATE {exc.sqlstate}): {str(exc).strip()}",
                        sqlstate=exc.sqlstate,
                    ) from exc
        conn.execute(history.UPSERT_SEED, (SEED_RECORD_PATH, digest))


def _pending_seed(conn: psycopg.Connection[Any], seed: Path) -> tuple[str, bool] | None:
    """``(sha256, dirty)`` when the seed must be applied or re-hashed, else None."""
    if not seed.is_file():
        return None
    digest = hashlib.sha256(seed.read_bytes()).hexdigest()
    applied = history.remote_seeds(conn).get(SEED_RECORD_PATH)
    if applied == digest:
        return None
    return digest, applied is not None


def _connect(db_url: str) -> psycopg.Connection[Any]:
    try:
        # No auto-prepared statements: migrations change the schema under them.
        return psycopg.connect(db_url, autocommit=True, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        raise MigrationError("connection_failed", f"cannot connect: {exc}".strip()) from exc


def push(
    db_url: str,
    *,
    include_seed: bool = False,
    dry_run: bool = False,
    on_progress: Callable[[PushEvent], None] | None = None,
    migrations_dir: Path | None = None,
    seed_path: Path | None = None,
) -> PushResult:
    """Bring ``db_url`` up to date with the shipped (or given) migrations.

    Needs a session-capable connection (direct or Supavisor session mode, not the
    transaction pooler) because it holds an advisory lock for the whole push.
    """
    migs = load_migrations(migrations_dir or resources.migrations_dir())
    seed = seed_path or resources.seed_path()
    with _connect(db_url) as conn:
        try:
            conn.execute("select pg_advisory_lock(%s)", (PUSH_LOCK_KEY,))
            try:
                return _push_locked(conn, migs, seed, include_seed, dry_run, on_progress)
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("RESET ALL")
                    conn.execute("select pg_advisory_unlock(%s)", (PUSH_LOCK_KEY,))
        except psycopg.OperationalError as exc:
            raise MigrationError(
                "connection_failed", f"connection lost: {exc}".strip(), sqlstate=exc.sqlstate
            ) from exc
        except psycopg.Error as exc:
            raise MigrationError("database_error", f"{exc}".strip(), sqlstate=exc.sqlstate) from exc


def _push_locked(
    conn: psycopg.Connection[Any],
    migs: list[MigrationFile],
    seed: Path,
    include_seed: bool,
    dry_run: bool,
    on_progress: Callable[[PushEvent], None] | None,
) -> PushResult:
    """The push itself; the caller holds the advisory lock."""
    supabase = is_supabase(conn)
    bootstrapped = not supabase and not _has_bootstrap(conn)
    if not supabase and not dry_run:
        if bootstrapped:
            _notify(on_progress, PushEvent("bootstrap", "bootstrap.sql"))
        # Also on an already bootstrapped database: adds pieces newer versions need.
        apply_bootstrap(conn)
    squashes, remote = plan_squashes(migs, history.remote_versions(conn))
    squashed = tuple(s.migration for s in squashes)
    pending = tuple(migs[i] for i in find_pending([m.version for m in migs], remote))
    seed_todo = _pending_seed(conn, seed) if include_seed else None
    seeded = (SEED_RECORD_PATH,) if seed_todo is not None else ()
    if dry_run:
        return PushResult(True, supabase, bootstrapped, pending, seeded, squashed)
    if pending:
        history.create_history_table(conn)
    for squash in squashes:
        _notify(on_progress, PushEvent("squash", squash.migration.filename))
        _record_squash(conn, squash)
    for mig in pending:
        _notify(on_progress, PushEvent("migration", mig.filename))
        _apply_migration(conn, mig)
    if seed_todo is not None:
        digest, dirty = seed_todo
        _notify(on_progress, PushEvent("seed_hash" if dirty else "seed", SEED_RECORD_PATH))
        history.create_seed_table(conn)
        _apply_seed(conn, seed, digest, dirty)
    return PushResult(False, supabase, bootstrapped, pending, seeded, squashed)


def apply_bootstrap(conn: psycopg.Connection[Any]) -> None:
    """Run ``bootstrap.sql`` in one transaction (idempotent and non-destructive).

    ``conn`` must be in autocommit mode. Only for plain PostgreSQL: on Supabase
    the platform owns these objects.
    """
    try:
        with conn.transaction():
            conn.execute(resources.bootstrap_sql().encode("utf-8"))
    except psycopg.Error as exc:
        raise MigrationError(
            "bootstrap_failed", f"plain-PostgreSQL bootstrap failed: {exc}".strip()
        ) from exc
