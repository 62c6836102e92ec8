"""Locate the SQL files pulser-ops ships: migrations, seed and the plain-PG bootstrap.

Why two layouts: an installed wheel carries ``supabase/migrations`` and
``supabase/seed.sql`` as package data under ``pulser_ops/_supabase/`` (see the
``force-include`` table in pyproject.toml), while a source checkout (or an
editable install) has no such copy and must read ``<repo>/supabase/`` directly,
so edits to the migrations are picked up without reinstalling.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_ROOT.parent.parent


def supabase_dir() -> Path:
    """Directory holding ``migrations/`` and ``seed.sql``.

    Package data wins over the checkout, so an installed wheel never picks up an
    unrelated ``supabase/`` directory that happens to sit two levels up.
    """
    packaged = _PACKAGE_ROOT / "_supabase"
    if (packaged / "migrations").is_dir():
        return packaged
    return _REPO_ROOT / "supabase"


def migrations_dir() -> Path:
    """The shipped migration files (``<version>_<name>.sql``)."""
    return supabase_dir() / "migrations"


def seed_path() -> Path:
    """The shipped seed file (may not exist)."""
    return supabase_dir() / "seed.sql"


def bootstrap_sql() -> str:
    """The plain-PostgreSQL bootstrap script (see ``pulser_ops/db/bootstrap.sql``)."""
    return (_PACKAGE_ROOT / "db" / "bootstrap.sql").read_text(encoding="utf-8")
