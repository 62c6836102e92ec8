"""The Supabase advisors (security + performance lints) accept our migrated schema.

Runs the real ``supabase db advisors`` against a freshly migrated database, so
problems the Supabase dashboard would show (RLS disabled, mutable search_path,
exposed SECURITY DEFINER functions, unindexed foreign keys, ...) fail CI.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests.support.supabase_cli import db_advisors

#: Lints that cannot be meaningful on a database that has never served a query.
NOT_APPLICABLE_ON_FRESH_DB = {
    "unused_index": "pg_stat_user_indexes.idx_scan is 0 for every index of a new database",
}


def findings(db_url: str) -> list[dict[str, Any]]:
    result = db_advisors(db_url)
    assert result.returncode == 0, result.describe()
    found: list[dict[str, Any]] = result.json()["results"]
    return found


def _brief(items: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{f['level']} {f['name']}: {f['detail']}  [{json.dumps(f.get('metadata'))}]" for f in items
    )


def test_migrated_schema_has_no_advisor_findings(db_url: str) -> None:
    relevant = [f for f in findings(db_url) if f["name"] not in NOT_APPLICABLE_ON_FRESH_DB]

    assert relevant == [], "Supabase advisors findings:\n" + _brief(relevant)


def test_advisors_flag_a_planted_problem(db_url: str) -> None:
    """Control: the advisors really inspect this database (the test above can fail)."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "create function public.advisor_control() returns int"
            " language plpgsql as $$ begin return 1; end $$"
        )

    names = {(f["name"], (f.get("metadata") or {}).get("name")) for f in findings(db_url)}

    assert ("function_search_path_mutable", "advisor_control") in names
