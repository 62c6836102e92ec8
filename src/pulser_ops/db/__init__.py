"""Database tooling: plain-PostgreSQL bootstrap and Supabase-CLI-compatible migrations."""

from pulser_ops.db.migrate import (
    MigrationError,
    MigrationFile,
    PushEvent,
    PushResult,
    apply_bootstrap,
    is_supabase,
    load_migrations,
    push,
)
from pulser_ops.db.sqlsplit import split_statements

__all__ = [
    "MigrationError",
    "MigrationFile",
    "PushEvent",
    "PushResult",
    "apply_bootstrap",
    "is_supabase",
    "load_migrations",
    "push",
    "split_statements",
]
