"""supabase/schemas/ (the current state) and supabase/migrations/ (the history) build one database.

The rule (supabase/README.md): every change is a new migration AND an edit of the schema file
it touches. This test holds it: one database from the shipped migrations (``pulser-ops db
push``), one from the plain-PostgreSQL bootstrap plus ``supabase/schemas/*.sql`` in file-name
order, compared as a normalised ``pg_dump --schema-only`` plus the catalogs (function bodies
and settings, privileges, RLS, policies, triggers, publication, seeded rows); any difference
fails with a unified diff. Models: Procrastinate's ``test_migration.py`` and graphile-worker's
schema dump check.

Run alone: ``.venv/bin/python -m pytest tests/test_schema_drift.py -n 0 -q``.
"""

from __future__ import annotations

import re
from collections import Counter

import psycopg

from tests.support.schema_snapshot import apply_schema_files, diff, schema_files, snapshot

#: ``create [or replace] <kind> <name>``: what "each object once" counts.
_CREATE_RE = re.compile(
    r"^\s*create\s+(?:or\s+replace\s+)?(function|table|view|type|trigger|policy|index|unique index)"
    r"\s+(\"[^\"]+\"|[\w.]+)(?:\s+on\s+([\w.]+))?",
    re.IGNORECASE | re.MULTILINE,
)


def test_schema_files_and_migrations_build_the_same_database(
    db_url: str, empty_db_url: str
) -> None:
    apply_schema_files(empty_db_url, schema_files())

    from_migrations, from_schemas = snapshot(db_url), snapshot(empty_db_url)

    found = diff(from_migrations, from_schemas, "supabase/migrations", "supabase/schemas")
    assert found == "", (
        "supabase/schemas and supabase/migrations build different databases. Every change is a"
        " new migration AND the same change in the schema file (supabase/README.md):\n" + found
    )


def test_each_object_is_defined_once_in_the_schema_files() -> None:
    defined: Counter[tuple[str, str]] = Counter()
    for path in schema_files():
        for kind, name, table in _CREATE_RE.findall(path.read_text(encoding="utf-8")):
            key = f"{name} on {table}" if table and kind.lower() in ("trigger", "policy") else name
            defined[(kind.lower(), key.lower())] += 1

    assert defined[("function", "public.claim_runs")] == 1
    assert len(defined) > 100, sorted(defined)
    assert [k for k, n in defined.items() if n > 1] == []


def test_the_comparison_sees_a_changed_body_grant_policy_and_seeded_row(
    db_url: str, empty_db_url: str
) -> None:
    """Control: each kind of drift a migration could bring shows up in the diff."""
    apply_schema_files(empty_db_url, schema_files())
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        body = conn.execute(
            "select prosrc from pg_proc where oid = 'public.list_lanes()'::regprocedure"
        ).fetchone()
        assert body is not None
        conn.execute(
            "create or replace function public.list_lanes() returns setof public.lanes"
            f" language plpgsql stable set search_path = '' as $$ {body[0]} -- drifted\n$$"
        )
        conn.execute("grant execute on function public.claim_runs(text, text[], integer, integer)"
                     " to authenticated")  # fmt: skip
        conn.execute('alter policy "operators read lanes" on public.lanes using (false)')
        conn.execute("update public.lanes set description = 'drifted' where id = 'D'")

    found = diff(snapshot(db_url), snapshot(empty_db_url), "migrations", "schemas")

    assert "-- drifted" in found
    assert "authenticated=X/postgres" in found
    assert "operators read lanes | PERMISSIVE | {authenticated} | SELECT | false" in found
    assert '"description": "drifted"' in found
