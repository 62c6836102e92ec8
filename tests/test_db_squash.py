"""A database migrated before the squash upgrades to exactly what a fresh one is.

The five migrations shipped before ``20261130000000_baseline.sql`` are kept verbatim in
tests/fixtures/migrations_before_squash/. Each test builds a database from them, as a
developer's embedded database or a Supabase project pushed back then would be, upgrades it
(``pulser-ops db push``, or the Supabase CLI's ``migration repair`` as supabase/README.md says),
and compares it with a fresh database the way the drift test does.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from pulser_ops import embedded, resources
from pulser_ops.cli import app
from pulser_ops.db.migrate import (
    MigrationError,
    MigrationFile,
    PushEvent,
    load_migrations,
    parse_replaces,
    push,
)
from tests.support.databases import unique_name
from tests.support.pgcluster import PgCluster
from tests.support.schema_snapshot import diff, snapshot
from tests.support.supabase_cli import db_push, make_project, run_cli

OLD = Path(__file__).parent / "fixtures" / "migrations_before_squash"
#: sha256 of each old migration as it was shipped (commit 5608d25): the fixture stays verbatim.
OLD_SHA256 = {
    "20261123230000_control_plane.sql": "a860d2e023cc8f8a01f6606e4b558f252c2884f15af39c006216c1167f1c791f",
    "20261124020000_batched_hot_path.sql": "ca4ebe6d5a7e692f15a1609d18facb9cdaf6fc60c648a0cefdaed3650ab2bf9f",
    "20261124030000_upsert_templates.sql": "fcabd47b2eb3cf13311d5fb5c5c3e2c21e55f64c2e2c1019f69ffbf18d1b1571",
    "20261124050000_event_seq_under_run_lock.sql": "048f29f14592f71bfab073b36c6568f2675f0d42901d9d263b167c45af11ae1f",
    "20261124070000_completion_carries_events.sql": "cc1edfc3257d340f33de745babc66c46f8bf1c8b078ac7a2b8e10f3813365dac",
}
README = Path(__file__).resolve().parents[1] / "supabase" / "README.md"


def shipped() -> list[MigrationFile]:
    return load_migrations(resources.migrations_dir())


def baseline() -> MigrationFile:
    (mig,) = [m for m in shipped() if m.replaces]
    return mig


def history(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
            " order by version"
        ).fetchall()


@pytest.fixture
def old_db_url(empty_db_url: str) -> str:
    """A database as the migrations before the squash left it."""
    push(empty_db_url, migrations_dir=OLD)
    return empty_db_url


@pytest.fixture
def second_old_db_url(pg_cluster: PgCluster) -> Iterator[str]:
    name = unique_name("old")
    url = pg_cluster.create_database(name)
    try:
        push(url, migrations_dir=OLD)
        yield url
    finally:
        pg_cluster.drop_database(name)


def test_the_baseline_comes_first_and_replaces_exactly_the_old_migrations() -> None:
    old = load_migrations(OLD)

    assert {m.filename: hashlib.sha256(m.path.read_bytes()).hexdigest() for m in old} == OLD_SHA256
    assert shipped()[0] == baseline()
    assert baseline().replaces == tuple(m.version for m in old)
    assert all(m.version > old[-1].version for m in shipped())


def test_pulser_push_upgrades_an_old_database_to_a_fresh_one(old_db_url: str, db_url: str) -> None:
    events: list[PushEvent] = []

    result = push(old_db_url, on_progress=events.append)

    assert result.squashed == (baseline(),)
    assert result.applied == tuple(shipped()[1:])
    assert events[0] == PushEvent("squash", baseline().filename)
    assert [e.name for e in events[1:]] == [m.filename for m in shipped()[1:]]
    assert history(old_db_url) == history(db_url)
    assert [row[0] for row in history(old_db_url)] == [m.version for m in shipped()]
    assert diff(snapshot(db_url), snapshot(old_db_url), "fresh", "upgraded") == ""
    assert push(old_db_url).up_to_date


def test_an_embedded_database_from_before_the_squash_upgrades_on_its_next_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = Path(tempfile.mkdtemp(prefix="pulser-ops-emb-"))
    base.chmod(0o755)  # under root the server runs as the postgres OS user
    home = base / "home"
    try:
        with monkeypatch.context() as before_the_squash:
            before_the_squash.setattr(resources, "migrations_dir", lambda: OLD)
            url = embedded.ensure_database(home)
        assert [row[0] for row in history(url)] == [m.version for m in load_migrations(OLD)]
        said: list[str] = []

        again = embedded.ensure_database(home, on_progress=said.append)

        assert again == url
        assert [row[0] for row in history(url)] == [m.version for m in shipped()]
        assert any(baseline().filename in line for line in said), said
    finally:
        embedded.stop(home)
        shutil.rmtree(base, ignore_errors=True)


def test_a_run_from_before_the_squash_finishes_after_it(old_db_url: str) -> None:
    push(old_db_url, migrations_dir=OLD, include_seed=True)
    with psycopg.connect(old_db_url, autocommit=True) as conn:
        run_id = conn.execute("select id from public.enqueue_run('hello')").fetchone()
        assert run_id is not None
        claimed = conn.execute("select attempt from public.claim_runs('w-1', '{A}', 1)").fetchone()
        assert claimed == (1,)

    push(old_db_url)

    with psycopg.connect(old_db_url, autocommit=True) as conn:
        done = conn.execute(
            "select status from public.complete_run(%s, 'w-1', 1, 'succeeded')", run_id
        ).fetchone()
        events = conn.execute(
            "select seq, kind from public.run_events where run_id = %s order by seq", run_id
        ).fetchall()
    assert done == ("succeeded",)
    assert events == [(1, "claimed"), (2, "succeeded")]


def test_dry_run_names_the_squash_and_changes_nothing(old_db_url: str) -> None:
    before = history(old_db_url)

    result = push(old_db_url, dry_run=True)

    assert result.squashed == (baseline(),) and not result.up_to_date
    assert history(old_db_url) == before


def test_a_partial_old_history_is_refused_and_says_what_to_do(
    tmp_path: Path, empty_db_url: str
) -> None:
    first_two = tmp_path / "migrations"
    first_two.mkdir()
    for mig in load_migrations(OLD)[:2]:
        shutil.copy(mig.path, first_two / mig.filename)
    push(empty_db_url, migrations_dir=first_two)
    before = history(empty_db_url)

    with pytest.raises(MigrationError) as err:
        push(empty_db_url)

    assert err.value.reason == "squash_mismatch"
    assert err.value.versions == tuple(m.version for m in load_migrations(OLD)[2:])
    assert "stopped partway" in str(err.value) and baseline().filename in str(err.value)
    assert history(empty_db_url) == before


def test_the_baseline_next_to_a_replaced_version_is_refused(db_url: str) -> None:
    first = load_migrations(OLD)[0]
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, name, statements)"
            " values (%s, %s, '{}')",
            (first.version, first.name),
        )

    with pytest.raises(MigrationError) as err:
        push(db_url)

    assert err.value.reason == "squash_mismatch"
    assert f"supabase migration repair --status reverted {first.version}" in str(err.value)


def _readme_repair_commands(db_url: str) -> list[list[str]]:
    """The commands supabase/README.md gives, aimed at ``db_url`` instead of the linked project."""
    block = README.read_text(encoding="utf-8").split("## Squashed migrations", 1)[1]
    lines = re.findall(r"^\s*(supabase (?:migration repair|db push) .*)$", block, re.MULTILINE)
    assert len(lines) == 3, lines
    return [
        [f"--remote={db_url}" if arg == "--remote" else arg for arg in shlex.split(line)[1:]]
        for line in lines
    ]


@pytest.mark.slow  # the real CLI, four times: about 10 s
def test_the_readmes_supabase_cli_repair_upgrades_like_pulser_push(
    tmp_path: Path, old_db_url: str, second_old_db_url: str
) -> None:
    project = make_project(
        tmp_path / "project", migrations_dir=resources.migrations_dir(), seed=resources.seed_path()
    )
    refused = db_push(project, old_db_url)
    assert refused.returncode != 0, refused.describe()
    assert refused.json()["error"]["code"] == "DbPushMissingLocalError", refused.describe()

    for args in _readme_repair_commands(old_db_url):
        res = run_cli([*args, "--yes", "--output-format", "json"], workdir=project)
        assert res.returncode == 0, res.describe()
    push(second_old_db_url)

    assert history(old_db_url) == history(second_old_db_url)
    assert diff(snapshot(second_old_db_url), snapshot(old_db_url), "pulser", "cli") == ""
    assert push(old_db_url).up_to_date
    again = db_push(project, second_old_db_url)
    assert again.returncode == 0 and again.json()["upToDate"] is True, again.describe()


def test_doctor_says_how_to_upgrade_an_old_database(old_db_url: str) -> None:
    result = CliRunner().invoke(app, ["doctor", "--db-url", old_db_url])

    assert result.exit_code == 1
    text = " ".join(result.output.split())
    # The table wraps the list inside its cell as it grows, so look for each version.
    assert "not applied: " in text
    assert all(m.version in text for m in shipped()), text
    assert "pulser-ops db push" in text and "supabase/README.md" in text


def test_init_refuses_to_copy_the_baseline_next_to_the_files_it_replaces(tmp_path: Path) -> None:
    mine = tmp_path / "supabase" / "migrations"
    mine.mkdir(parents=True)
    shutil.copy(OLD / "20261123230000_control_plane.sql", mine)

    result = CliRunner().invoke(app, ["init", "--dir", str(tmp_path)])

    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "20261123230000_control_plane.sql" in lines[0] and baseline().filename in lines[0]
    assert "supabase migration repair --status reverted" in lines[0]
    assert sorted(p.name for p in mine.iterdir()) == ["20261123230000_control_plane.sql"]


def test_replaces_is_read_from_the_opening_comments_only() -> None:
    assert parse_replaces("-- a squash\n--   replaces: 1 22 333\ncreate table t ();\n") == (
        "1", "22", "333",
    )  # fmt: skip
    assert parse_replaces("create table t ();\n-- replaces: 1\n") == ()
    assert parse_replaces("-- nothing replaced\n\nselect 1;\n") == ()
    with pytest.raises(MigrationError) as err:
        parse_replaces("-- replaces: 20261123230000 and more\n", "x.sql")
    assert err.value.reason == "migration_failed" and "x.sql" in str(err.value)

