"""Database tooling: plain-PostgreSQL bootstrap and Supabase-CLI-compatible migrations."""

from pulser_ops.db.migrate import (
    MigrationFile,
    PushEvent,
    PushResult,
    apply_bootstrap,
    is_supabase,
    load_migrations,
    push,
)
from pulser_ops.db.sqlsplit import split_statements
from pulser_ops.errors import MigrationError

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
