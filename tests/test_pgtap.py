"""The pgTAP suite in supabase/tests passes on a freshly migrated database.

Mirrors ``supabase test db`` (which needs Docker): same ``pg_prove`` flags and
the same ``create extension if not exists pgtap with schema extensions`` first,
but against the test cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from tests.support.pgcluster import find_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
PGTAP_DIR = REPO_ROOT / "supabase" / "tests"


def test_pgtap_suite_passes(db_url: str) -> None:
    files = sorted(p for p in PGTAP_DIR.rglob("*") if p.suffix in (".sql", ".pg"))
    assert files, f"no pgTAP tests under {PGTAP_DIR}"
    pg_prove = shutil.which("pg_prove")
    assert pg_prove, "pg_prove not found (apt-get install libtap-parser-sourcehandler-pgtap-perl)"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("create extension if not exists pgtap with schema extensions")
    url = urlsplit(db_url)

    proc = subprocess.run(
        [
            pg_prove, "--psql-bin", str(find_bin_dir() / "psql"),
            "-h", url.hostname or "127.0.0.1", "-p", str(url.port), "-U", url.username or "",
            "-d", url.path.lstrip("/"),
            "--ext", ".pg", "--ext", ".sql", "-r", str(PGTAP_DIR.relative_to(REPO_ROOT)),
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PGPASSWORD": url.password or "", "PGSSLMODE": "disable"},
    )  # fmt: skip

    output = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, output
    assert "Result: PASS" in proc.stdout, output
