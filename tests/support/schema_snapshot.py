"""A database's schema as comparable text: normalised ``pg_dump --schema-only`` plus the catalogs.

Why both: ``pg_dump`` is the broad net (every table, column, constraint, index, view, type,
comment, trigger, policy, publication member), and the catalog sections say the same things
that matter most for pulser-ops in a form that reads well in a diff and does not depend on what
one ``pg_dump`` version chooses to print: function definitions with their ``SET`` clauses,
privileges (sorted, so the order of GRANT statements does not count), RLS flags, policies,
triggers, publication membership, and the rows the SQL seeds as data.

Used by the drift test (migrations vs ``supabase/schemas``) and the squash upgrade test (a
database migrated before the squash vs a fresh one). The history schema
(``supabase_migrations``) is left out: that two databases were built differently is the point.
"""

from __future__ import annotations

import difflib
import subprocess
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from pulser_ops.db.migrate import apply_bootstrap
from pulser_ops.db.sqlsplit import split_statements
from tests.support.pgcluster import find_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = REPO_ROOT / "supabase" / "schemas"
IGNORED_SCHEMAS = ("supabase_migrations",)
_NOT_OURS = """
  n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
  and n.nspname not like 'pg_temp%%' and n.nspname not like 'pg_toast_temp%%'
  and n.nspname <> all(%(ignored)s)
"""
_NO_EXTENSION_MEMBER = """
  not exists (select 1 from pg_catalog.pg_depend d
              where d.classid = %(cls)s::regclass and d.objid = {oid} and d.deptype = 'e')
"""


def schema_files(schemas_dir: Path = SCHEMAS_DIR) -> list[Path]:
    """The declarative schema files in the order they are applied: by file name."""
    return sorted(schemas_dir.glob("*.sql"), key=lambda p: p.name)


def apply_schema_files(url: str, files: Iterable[Path]) -> None:
    """Bootstrap (plain PostgreSQL), then each file in one transaction, split like a migration."""
    with psycopg.connect(url, autocommit=True) as conn:
        apply_bootstrap(conn)
        for path in files:
            with conn.transaction():
                for stmt in split_statements(path.read_text(encoding="utf-8")):
                    try:
                        conn.execute(stmt)
                    except psycopg.Error as exc:
                        raise AssertionError(f"{path.name} failed: {exc}\n{stmt}") from exc


# --- pg_dump -------------------------------------------------------------------------------


def _pg_dump(url: str) -> str:
    parts = urlsplit(url)
    proc = subprocess.run(
        [
            str(find_bin_dir() / "pg_dump"), "--schema-only", "--no-tablespaces",
            *(f"--exclude-schema={s}" for s in IGNORED_SCHEMAS),
            "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port), "-U", parts.username or "",
            parts.path.lstrip("/"),
        ],
        capture_output=True, text=True, check=False, timeout=120,
        env={"PGPASSWORD": parts.password or "", "PGSSLMODE": "disable", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"pg_dump failed: {proc.stderr}")
    return proc.stdout


def normalise_dump(text: str) -> list[str]:
    """``pg_dump`` output without what differs between equal databases.

    Dropped: the version banner, the random key of ``\\restrict`` (pg_dump 15.14 and later)
    and blank lines. Kept: the ``-- Name: ...; Type: ...`` headers (they make a diff readable
    and hold no OIDs). Sorted: the GRANT/REVOKE lines of each ACL entry, because the order of
    grants in a privilege array carries no meaning.
    """
    out: list[str] = []
    block: list[str] = []
    in_acl = False

    def flush() -> None:
        out.extend(sorted(block) if in_acl else block)
        block.clear()

    for line in text.splitlines():
        if line.startswith(("-- Dumped from", "-- Dumped by", "\\restrict ", "\\unrestrict ")):
            continue
        if line.startswith("-- ") and line.strip() != "--":
            flush()
            in_acl = line.startswith("-- Name: ") and (
                "; Type: ACL;" in line or "; Type: DEFAULT ACL;" in line
            )
            out.append(line)
            continue
        if line.strip() in ("", "--"):
            continue
        block.append(line)
    flush()
    return out


# --- catalogs ------------------------------------------------------------------------------

#: (section, query); every query returns rows of text columns, in a stable order.
CATALOG_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "functions (pg_get_functiondef)",
        f"""
        select p.oid::regprocedure::text, pg_catalog.pg_get_functiondef(p.oid)
        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where {_NOT_OURS} and p.prokind in ('f', 'p', 'w')
          and {_NO_EXTENSION_MEMBER.format(oid="p.oid") % {"cls": "'pg_proc'"}}
        order by 1
        """,
    ),
    (
        "function settings (proconfig, security, volatility, rows, cost, parallel)",
        f"""
        select p.oid::regprocedure::text,
               coalesce(array_to_string(p.proconfig, ', '), '-'),
               case when p.prosecdef then 'security definer' else 'security invoker' end,
               p.provolatile::text, p.prorows::text, p.procost::text, p.proparallel::text,
               p.proleakproof::text
        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where {_NOT_OURS}
          and {_NO_EXTENSION_MEMBER.format(oid="p.oid") % {"cls": "'pg_proc'"}}
        order by 1
        """,
    ),
    (
        "grants on schemas",
        f"""
        select n.nspname::text, {{acl}}
        from pg_catalog.pg_namespace n where {_NOT_OURS} order by 1
        """.replace("{acl}", "pg_temp.pulser_ops_test_acl(n.nspacl)"),
    ),
    (
        "grants on tables, views and sequences",
        f"""
        select c.oid::regclass::text, c.relkind::text, pg_temp.pulser_ops_test_acl(c.relacl)
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where {_NOT_OURS} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
        order by 1
        """,
    ),
    (
        "grants on columns",
        f"""
        select c.oid::regclass::text, a.attname::text, pg_temp.pulser_ops_test_acl(a.attacl)
        from pg_catalog.pg_attribute a
        join pg_catalog.pg_class c on c.oid = a.attrelid
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where {_NOT_OURS} and a.attnum > 0 and not a.attisdropped and a.attacl is not null
        order by 1, 2
        """,
    ),
    (
        "grants on functions",
        f"""
        select p.oid::regprocedure::text, pg_temp.pulser_ops_test_acl(p.proacl)
        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where {_NOT_OURS}
        order by 1
        """,
    ),
    (
        "grants on types",
        f"""
        select t.oid::regtype::text, pg_temp.pulser_ops_test_acl(t.typacl)
        from pg_catalog.pg_type t join pg_catalog.pg_namespace n on n.oid = t.typnamespace
        where {_NOT_OURS} and t.typacl is not null
        order by 1
        """,
    ),
    (
        "default privileges",
        """
        select pg_catalog.pg_get_userbyid(d.defaclrole)::text, coalesce(n.nspname, '(all)')::text,
               d.defaclobjtype::text, pg_temp.pulser_ops_test_acl(d.defaclacl)
        from pg_catalog.pg_default_acl d
        left join pg_catalog.pg_namespace n on n.oid = d.defaclnamespace
        order by 1, 2, 3
        """,
    ),
    (
        "row level security (enabled, forced)",
        f"""
        select c.oid::regclass::text, c.relrowsecurity::text, c.relforcerowsecurity::text
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where {_NOT_OURS} and c.relkind in ('r', 'p')
        order by 1
        """,
    ),
    (
        "policies (pg_policies)",
        """
        select schemaname || '.' || tablename, policyname::text, permissive, roles::text, cmd,
               coalesce(qual, '-'), coalesce(with_check, '-')
        from pg_catalog.pg_policies
        order by 1, 2
        """,
    ),
    (
        "triggers",
        f"""
        select c.oid::regclass::text, t.tgname::text, t.tgenabled::text,
               pg_catalog.pg_get_triggerdef(t.oid)
        from pg_catalog.pg_trigger t
        join pg_catalog.pg_class c on c.oid = t.tgrelid
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where {_NOT_OURS} and not t.tgisinternal
        order by 1, 2
        """,
    ),
    (
        "publications and their tables",
        """
        select p.pubname::text, p.puballtables::text,
               concat_ws(',', case when p.pubinsert then 'insert' end,
                         case when p.pubupdate then 'update' end,
                         case when p.pubdelete then 'delete' end,
                         case when p.pubtruncate then 'truncate' end),
               coalesce(string_agg(t.schemaname || '.' || t.tablename, ', '
                                   order by t.schemaname, t.tablename), '-')
        from pg_catalog.pg_publication p
        left join pg_catalog.pg_publication_tables t on t.pubname = p.pubname
        group by 1, 2, 3
        order by 1
        """,
    ),
    (
        "replica identity",
        f"""
        select c.oid::regclass::text, c.relreplident::text
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where {_NOT_OURS} and c.relkind in ('r', 'p')
        order by 1
        """,
    ),
)

#: Sorted privileges of an ACL; NULL (the owner's defaults) stays apart from an empty ACL.
_ACL_HELPER = """
create or replace function pg_temp.pulser_ops_test_acl(acl aclitem[]) returns text
language sql immutable as $$
  select case when acl is null then 'default'
              else coalesce((select string_agg(x::text, ' ' order by x::text) from unnest(acl) x), '')
         end
$$
"""

#: Every table's rows, minus columns of time types (their values are when the SQL ran).
_SEEDED_TABLES = f"""
select c.oid::regclass::text,
       coalesce(array_agg(a.attname::text order by a.attnum)
                  filter (where a.atttypid in ('timestamptz'::regtype, 'timestamp'::regtype,
                                                'date'::regtype, 'time'::regtype)), '{{}}')
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where {_NOT_OURS} and c.relkind in ('r', 'p')
group by c.oid
order by 1
"""


def _catalog_sections(url: str) -> list[str]:
    lines: list[str] = []
    params = {"ignored": list(IGNORED_SCHEMAS)}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_ACL_HELPER)
        conn.execute("set search_path = pg_temp, pg_catalog")
        for title, query in CATALOG_QUERIES:
            lines.append(f"## {title}")
            for row in conn.execute(query, params if "%(" in query else None).fetchall():
                lines.extend(" | ".join(str(v) for v in row).splitlines())
        lines.append("## rows the SQL seeds (columns of time types left out)")
        for table, time_cols in conn.execute(_SEEDED_TABLES, params).fetchall():
            rows = conn.execute(
                f"select (to_jsonb(t) - %s::text[])::text as r from {table} t order by 1",
                (time_cols,),
            ).fetchall()
            lines.extend(f"{table}: {r[0]}" for r in rows)
    return lines


def snapshot(url: str) -> list[str]:
    """Everything compared, as lines: the normalised dump, then the catalog sections."""
    return ["# pg_dump --schema-only", *normalise_dump(_pg_dump(url)), *_catalog_sections(url)]


def diff(left: list[str], right: list[str], left_name: str, right_name: str) -> str:
    """A unified diff of two snapshots ('' when they are equal)."""
    return "\n".join(
        difflib.unified_diff(left, right, fromfile=left_name, tofile=right_name, lineterm="", n=4)
    )
