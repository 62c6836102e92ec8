"""``pulser-ops db push`` against real PostgreSQL, checked against the real Supabase CLI.

The two tools must be interchangeable on one database: whichever pushes first,
the other sees nothing to do, and the recorded history (version, name,
statements, seed hash) is identical. Migration sets: the shipped migrations,
and a corpus that exercises every state of the CLI's statement splitter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from pulser_ops import resources
from pulser_ops.cli import app
from pulser_ops.db.migrate import (
    PUSH_LOCK_KEY,
    MigrationError,
    PushEvent,
    PushResult,
    apply_bootstrap,
    is_supabase,
    load_migrations,
    push,
)
from tests.support.databases import unique_name
from tests.support.pgcluster import PgCluster
from tests.support.supabase_cli import db_push, make_project

CORPUS = Path(__file__).parent / "support" / "split_corpus"
SETS = {
    "shipped": (resources.migrations_dir(), resources.seed_path()),
    "split_corpus": (CORPUS / "migrations", CORPUS / "seed.sql"),
}


@dataclass(frozen=True)
class MigrationSet:
    migrations_dir: Path
    seed: Path
    project: Path

    @property
    def versions(self) -> list[str]:
        return [m.version for m in load_migrations(self.migrations_dir)]

    def push(self, url: str, **kwargs: Any) -> PushResult:
        return push(url, migrations_dir=self.migrations_dir, seed_path=self.seed, **kwargs)


@pytest.fixture(params=sorted(SETS))
def mset(request: pytest.FixtureRequest, tmp_path: Path) -> MigrationSet:
    migrations_dir, seed = SETS[request.param]
    if not load_migrations(migrations_dir):
        pytest.fail(f"no migrations found in {migrations_dir}")
    project = make_project(tmp_path / "project", migrations_dir=migrations_dir, seed=seed)
    return MigrationSet(migrations_dir, seed, project)


@pytest.fixture
def second_db_url(pg_cluster: PgCluster) -> Iterator[str]:
    name = unique_name("second")
    url = pg_cluster.create_database(name)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)


def history(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Everything either tool records: migration rows and seed rows."""
    with psycopg.connect(url) as conn:
        migs = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
            " order by version"
        ).fetchall()
        seeds = conn.execute(
            "select path, hash from supabase_migrations.seed_files order by path"
        ).fetchall()
    return migs, seeds


def test_supabase_cli_first_then_pulser_push_is_noop(mset: MigrationSet, empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_bootstrap(conn)
    cli = db_push(mset.project, empty_db_url, include_seed=True)
    assert cli.returncode == 0, cli.describe()
    assert cli.json()["migrations"] == [m.filename for m in load_migrations(mset.migrations_dir)]

    again = mset.push(empty_db_url, include_seed=True)

    assert again.up_to_date, again
    assert again.applied == () and again.seeded == () and not again.bootstrapped


def test_pulser_push_first_then_supabase_cli_is_noop(mset: MigrationSet, empty_db_url: str) -> None:
    first = mset.push(empty_db_url, include_seed=True)
    assert first.bootstrapped
    assert [m.version for m in first.applied] == mset.versions
    assert first.seeded == ("supabase/seed.sql",)

    cli = db_push(mset.project, empty_db_url, include_seed=True)

    assert cli.returncode == 0, cli.describe()
    doc = cli.json()
    assert doc["upToDate"] is True, cli.describe()
    assert doc["migrations"] == [] and doc["seeds"] == [], cli.describe()


@pytest.mark.slow
def test_both_tools_record_identical_history_and_repeat_as_noops(
    mset: MigrationSet, empty_db_url: str, second_db_url: str
) -> None:
    """DB 1 pushed by the CLI, DB 2 by pulser-ops; then both tools again on both."""
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_bootstrap(conn)
    assert db_push(mset.project, empty_db_url, include_seed=True).returncode == 0
    mset.push(second_db_url, include_seed=True)

    for url in (empty_db_url, second_db_url):
        for _ in range(2):
            cli = db_push(mset.project, url, include_seed=True)
            assert cli.returncode == 0 and cli.json()["upToDate"] is True, cli.describe()
            assert mset.push(url, include_seed=True).up_to_date

    by_cli, by_pulser = history(empty_db_url), history(second_db_url)
    assert by_cli == by_pulser
    assert [row[0] for row in by_cli[0]] == mset.versions


def test_unknown_remote_version_is_refused_like_the_cli(
    mset: MigrationSet, empty_db_url: str
) -> None:
    mset.push(empty_db_url)
    with psycopg.connect(empty_db_url) as conn:
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, name, statements)"
            " values ('29991231235959', 'from_the_future', '{}')"
        )

    with pytest.raises(MigrationError) as err:
        mset.push(empty_db_url)
    cli = db_push(mset.project, empty_db_url)

    assert err.value.reason == "missing_local"
    assert err.value.versions == ("29991231235959",)
    assert cli.returncode != 0
    assert cli.json()["error"]["code"] == "DbPushMissingLocalError", cli.describe()
    assert "29991231235959" in cli.json()["error"]["suggestion"]


def test_out_of_order_local_migration_is_refused(tmp_path: Path, empty_db_url: str) -> None:
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    (mdir / "20260101000000_a.sql").write_text("create table public.a (id int);\n")
    (mdir / "20260103000000_c.sql").write_text("create table public.c (id int);\n")
    push(empty_db_url, migrations_dir=mdir)
    (mdir / "20260102000000_b.sql").write_text("create table public.b (id int);\n")

    with pytest.raises(MigrationError) as err:
        push(empty_db_url, migrations_dir=mdir)

    assert err.value.reason == "missing_remote"
    assert err.value.versions == ("20260102000000",)


def test_failed_migration_rolls_back_with_its_history_row(
    tmp_path: Path, empty_db_url: str
) -> None:
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    (mdir / "20260101000000_ok.sql").write_text("create table public.ok (id int);\n")
    (mdir / "20260102000000_bad.sql").write_text(
        "create table public.half (id int);\nselect 1 / 0;\n"
    )

    with pytest.raises(MigrationError) as err:
        push(empty_db_url, migrations_dir=mdir)

    assert err.value.reason == "migration_failed" and err.value.versions == ("20260102000000",)
    assert "22012" in str(err.value)
    with psycopg.connect(empty_db_url) as conn:
        versions = conn.execute(
            "select version from supabase_migrations.schema_migrations"
        ).fetchall()
        half = conn.execute("select to_regclass('public.half')").fetchone()
    assert versions == [("20260101000000",)]
    assert half == (None,)


def test_dry_run_reports_everything_and_changes_nothing(empty_db_url: str) -> None:
    mdir, seed = SETS["split_corpus"]

    result = push(
        empty_db_url, migrations_dir=mdir, seed_path=seed, include_seed=True, dry_run=True
    )

    assert result.dry_run and result.bootstrapped and not result.supabase
    assert [m.filename for m in result.applied] == [p.name for p in sorted(mdir.glob("*.sql"))]
    assert result.seeded == ("supabase/seed.sql",)
    with psycopg.connect(empty_db_url) as conn:
        schemas = conn.execute(
            "select nspname from pg_namespace where nspname in"
            " ('auth', 'storage', 'supabase_migrations')"
        ).fetchall()
    assert schemas == []


def test_concurrent_pushes_apply_each_migration_once(empty_db_url: str) -> None:
    mdir, seed = SETS["split_corpus"]
    barrier = threading.Barrier(4)
    results: list[PushResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(
                push(empty_db_url, migrations_dir=mdir, seed_path=seed, include_seed=True)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    applied = sorted(m.version for r in results for m in r.applied)
    assert applied == [m.version for m in load_migrations(mdir)]
    assert sum(len(r.seeded) for r in results) == 1
    assert sum(r.bootstrapped for r in results) == 1


def test_push_waits_for_the_advisory_lock(empty_db_url: str) -> None:
    """A push blocks while another session holds the push lock, then completes."""
    mdir, _ = SETS["split_corpus"]
    done: list[PushResult] = []
    with psycopg.connect(empty_db_url, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (PUSH_LOCK_KEY,))
        thread = threading.Thread(
            target=lambda: done.append(push(empty_db_url, migrations_dir=mdir))
        )
        thread.start()
        holder.execute("set statement_timeout = '60s'")
        # Block (server-side) until the push's backend queues behind our lock.
        holder.execute(
            """
            do $$
            begin
              loop
                exit when exists (select 1 from pg_locks
                                  where locktype = 'advisory' and not granted
                                    and database = (select oid from pg_database
                                                    where datname = current_database()));
                perform pg_sleep(0.01);
              end loop;
            end $$
            """
        )
        assert done == []
        versions = holder.execute(
            "select to_regclass('supabase_migrations.schema_migrations')"
        ).fetchone()
        assert versions == (None,)
        holder.execute("select pg_advisory_unlock(%s)", (PUSH_LOCK_KEY,))
    thread.join()
    assert [m.version for m in done[0].applied] == [m.version for m in load_migrations(mdir)]


def test_is_supabase_detection(pg_cluster: PgCluster, empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert not is_supabase(conn)
        conn.execute(
            "do $$ begin create role supabase_admin nologin;"
            " exception when duplicate_object then null; end $$"
        )
        try:
            conn.execute("create schema storage; create table storage.migrations (id int)")
            assert is_supabase(conn)
            result = push(empty_db_url, migrations_dir=SETS["split_corpus"][0], dry_run=True)
            assert result.supabase and not result.bootstrapped
            # Our own bootstrap marker wins: such a database is plain PostgreSQL.
            conn.execute("drop table storage.migrations")
            apply_bootstrap(conn)
            conn.execute("create table storage.migrations (id int)")
            assert not is_supabase(conn)
        finally:
            conn.execute("drop schema if exists storage cascade")
            conn.execute("drop role if exists supabase_admin")


def test_bootstrap_is_idempotent_and_keeps_user_changes(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_bootstrap(conn)
        conn.execute(
            "create or replace function auth.uid() returns uuid language sql stable"
            " set search_path to '' as $$ select null::uuid $$"
        )
        apply_bootstrap(conn)
        body = conn.execute("select prosrc from pg_proc where oid = 'auth.uid()'::regprocedure")
        row = body.fetchone()
        roles = conn.execute(
            "select rolname, rolcanlogin, rolbypassrls from pg_roles where rolname in"
            " ('anon', 'authenticated', 'service_role', 'authenticator') order by 1"
        ).fetchall()
        members = conn.execute(
            "select r.rolname, m.rolname from pg_auth_members a"
            " join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member"
            " where r.rolname in ('anon', 'authenticated', 'service_role')"
            " and m.rolname in ('authenticator', 'postgres') order by 1, 2"
        ).fetchall()
    assert row is not None and "null::uuid" in row[0]
    assert members == [
        (api, member)
        for api in ("anon", "authenticated", "service_role")
        for member in ("authenticator", "postgres")
    ]
    assert roles == [
        ("anon", False, False),
        ("authenticated", False, False),
        ("authenticator", True, False),
        ("service_role", False, True),
    ]


def test_auth_helpers_read_postgrest_claims(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        apply_bootstrap(conn)
        conn.execute(
            """select set_config('request.jwt.claims',
               '{"sub": "7f1d5d8e-58c7-4f71-9d1e-2a0c1f2b3c4d", "role": "authenticated",
                 "email": "op@example.com"}', false)"""
        )
        row = conn.execute(
            "select auth.uid()::text, auth.role(), auth.email(), auth.jwt()->>'role'"
        )
        assert row.fetchone() == (
            "7f1d5d8e-58c7-4f71-9d1e-2a0c1f2b3c4d", "authenticated", "op@example.com",
            "authenticated",
        )  # fmt: skip


def test_cli_db_push_command(empty_db_url: str) -> None:
    runner = CliRunner()

    first = runner.invoke(app, ["db", "push", "--db-url", empty_db_url])
    second = runner.invoke(app, ["db", "push"], env={"PULSER_OPS_DATABASE_URL": empty_db_url})

    assert first.exit_code == 0, first.output
    assert "Applied" in first.stdout
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == "Database is up to date."


def test_cli_db_push_error_is_one_line_and_nonzero(pg_cluster: PgCluster) -> None:
    bad = pg_cluster.url("no_such_database_here")

    result = CliRunner().invoke(app, ["db", "push", "--db-url", bad])

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: connection_failed:"), result.stderr


def test_cli_db_sql_prints_every_migration(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["db", "sql", "--bootstrap"])

    assert result.exit_code == 0, result.output
    assert "-- bootstrap.sql (plain PostgreSQL only)" in result.stdout
    for mig in load_migrations(resources.migrations_dir()):
        assert f"-- {mig.filename}\n" in result.stdout


def test_cli_init_copies_and_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    migs = load_migrations(resources.migrations_dir())

    first = runner.invoke(app, ["init", "--dir", str(tmp_path)])
    again = runner.invoke(app, ["init", "--dir", str(tmp_path)])
    mine = tmp_path / "supabase" / "migrations" / migs[0].filename
    mine.write_text("-- my local edit\n")
    conflict = runner.invoke(app, ["init", "--dir", str(tmp_path)])

    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in (tmp_path / "supabase" / "migrations").iterdir()) == sorted(
        m.filename for m in migs
    )
    assert again.exit_code == 0 and "created" not in again.stdout
    assert conflict.exit_code == 1 and str(mine) in conflict.stderr
    assert mine.read_text() == "-- my local edit\n"


def test_changed_seed_is_rehashed_not_rerun_like_the_cli(
    tmp_path: Path, empty_db_url: str, second_db_url: str
) -> None:
    """``--include-seed`` with an edited seed only records the new hash (CLI behaviour)."""
    mdir, seed = SETS["split_corpus"]
    edited = tmp_path / "seed.sql"
    edited.write_bytes(seed.read_bytes() + b'insert into public."we;ird" (id) values (3);\n')
    project = make_project(tmp_path / "project", migrations_dir=mdir, seed=seed)
    with psycopg.connect(second_db_url, autocommit=True) as conn:
        apply_bootstrap(conn)
    assert db_push(project, second_db_url, include_seed=True).returncode == 0
    push(empty_db_url, migrations_dir=mdir, seed_path=seed, include_seed=True)

    (project / "supabase" / "seed.sql").write_bytes(edited.read_bytes())
    cli = db_push(project, second_db_url, include_seed=True)
    events: list[PushEvent] = []
    ours = push(
        empty_db_url,
        migrations_dir=mdir,
        seed_path=edited,
        include_seed=True,
        on_progress=events.append,
    )

    assert cli.returncode == 0 and cli.json()["seeds"] == ["supabase/seed.sql"], cli.describe()
    assert ours.seeded == ("supabase/seed.sql",)
    assert events == [PushEvent("seed_hash", "supabase/seed.sql")]
    assert history(empty_db_url) == history(second_db_url)
    for url in (empty_db_url, second_db_url):
        with psycopg.connect(url) as conn:
            ids = conn.execute('select id from public."we;ird" order by id').fetchall()
        assert ids == [(1,), (2,)]


def test_cli_db_push_without_url_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSER_OPS_DATABASE_URL", raising=False)

    result = CliRunner().invoke(app, ["db", "push"])

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no database URL: pass --db-url or set PULSER_OPS_DATABASE_URL"
    )
