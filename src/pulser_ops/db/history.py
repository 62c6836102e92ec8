"""The Supabase CLI's migration-history tables, byte-for-byte.

Why mirror the CLI's SQL exactly (supabase/cli ``pkg/migration/history.go``):
a database pushed by ``pulser-ops db push`` must look the same as one pushed by
``supabase db push``, so either tool can take over later without re-applying or
"repairing" anything.
"""

from __future__ import annotations

from typing import Any

import psycopg

CREATE_HISTORY = (
    "SET LOCAL lock_timeout = '4s'",
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations"
    " (version text NOT NULL PRIMARY KEY)",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text",
)
CREATE_SEED_TABLE = (
    "SET LOCAL lock_timeout = '4s'",
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    "CREATE TABLE IF NOT EXISTS supabase_migrations.seed_files"
    " (path text NOT NULL PRIMARY KEY, hash text NOT NULL)",
)
INSERT_VERSION = (
    "INSERT INTO supabase_migrations.schema_migrations(version, name, statements)"
    " VALUES (%s, %s, %s::text[])"
)
#: What ``supabase migration repair --status reverted`` runs (plus RETURNING, to check).
DELETE_VERSIONS = (
    "DELETE FROM supabase_migrations.schema_migrations WHERE version = ANY(%s) RETURNING version"
)
UPSERT_SEED = (
    "INSERT INTO supabase_migrations.seed_files(path, hash) VALUES (%s, %s)"
    " ON CONFLICT (path) DO UPDATE SET hash = EXCLUDED.hash"
)

Conn = psycopg.Connection[Any]


def create_history_table(conn: Conn) -> None:
    """Create ``schema_migrations`` like the CLI (idempotent; own transaction)."""
    with conn.transaction():
        for stmt in CREATE_HISTORY:
            conn.execute(stmt)


def create_seed_table(conn: Conn) -> None:
    """Create ``seed_files`` like the CLI (idempotent; own transaction)."""
    with conn.transaction():
        for stmt in CREATE_SEED_TABLE:
            conn.execute(stmt)


def remote_versions(conn: Conn) -> list[str]:
    """Applied versions in the CLI's order; empty when the table does not exist yet."""
    row = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    ).fetchone()
    if not row or not row[0]:
        return []
    rows = conn.execute(
        "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version"
    ).fetchall()
    return [str(r[0]) for r in rows]


def remote_seeds(conn: Conn) -> dict[str, str]:
    """``path -> hash`` of applied seed files; empty when the table does not exist."""
    row = conn.execute(
        "select to_regclass('supabase_migrations.seed_files') is not null"
    ).fetchone()
    if not row or not row[0]:
        return {}
    rows = conn.execute("SELECT path, hash FROM supabase_migrations.seed_files").fetchall()
    return {str(p): str(h) for p, h in rows}
