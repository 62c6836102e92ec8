"""The wheel users install: one top-level package, ``pulser_ops``, with the sweeper and the
migrations inside it, and nothing named ``sweeper`` in their site-packages (that folder is a
checkout's scheduled job). Built offline with the project's own backend, then unpacked and run
from outside the checkout, as an install would run it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg
import pytest

import pulser_ops

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",  # hatchling comes from the dev extra: no download
            "--disable-pip-version-check",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("pulser_ops-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked into a directory of its own: what pip puts in site-packages."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_one_top_level_package_with_the_sweeper_and_the_migrations(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        top = {n.split("/", 1)[0] for n in names}
        assert {t for t in top if not t.endswith(".dist-info")} == {"pulser_ops"}, top
        assert not any(n.startswith("sweeper/") for n in names)
        assert {
            "pulser_ops/sweeper/__init__.py",
            "pulser_ops/sweeper/__main__.py",
            "pulser_ops/sweeper/command.py",
            "pulser_ops/sweeper/sweep.py",
        } <= names
        shipped = {
            n.rsplit("/", 1)[1]: zf.read(n)
            for n in names
            if n.startswith("pulser_ops/_supabase/migrations/") and n.endswith(".sql")
        }
        assert zf.read("pulser_ops/_supabase/seed.sql") == (ROOT / "supabase/seed.sql").read_bytes()
        (dist_info,) = {t for t in top if t.endswith(".dist-info")}
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    repo = {p.name: p.read_bytes() for p in (ROOT / "supabase/migrations").glob("*.sql")}
    assert repo, "the repository has migrations"
    assert shipped == repo, "every migration ships, byte for byte, and nothing else"
    assert "pulser-ops = pulser_ops.cli:main" in entry_points


def test_the_installed_sweeper_runs_without_a_checkout(
    installed: Path, db_url: str, tmp_path: Path
) -> None:
    """From an empty directory with only the unpacked wheel first on the path: ``pulser-ops
    sweep`` (and ``python -m pulser_ops.sweeper``) sweep with the wheel's code, and there is no
    ``sweeper`` module to run."""
    with pulser_ops.connect(db_url, storage_dir=tmp_path / "files") as client:
        client.templates.upsert({"name": "whl", "max_attempts": 3, "lease_seconds": 30})
        client.runs.create_many([{"template": "whl"}, {"template": "whl"}])
        assert len(client.runs.claim("w-dead", limit=2)) == 2
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.runs set lease_expires_at = now() - interval '1 s' where status = 'running'"
        )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    env.update(PYTHONPATH=str(installed), PULSER_OPS_DATABASE_URL=db_url)

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )

    where = python("-c", "import pulser_ops.sweeper as s; print(s.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout
    swept = python("-m", "pulser_ops.cli", "sweep")
    assert swept.returncode == 0, swept.stderr
    assert "requeued 2, failed 0, cancelled 0" in swept.stdout, swept.stdout
    again = python("-m", "pulser_ops.sweeper", "--batch", "10")
    assert again.returncode == 0 and "nothing expired" in again.stdout, again.stderr
    missing = python("-m", "sweeper")
    assert missing.returncode != 0 and "No module named sweeper" in missing.stderr


def test_the_spec_kit_files_are_package_data(wheel: Path) -> None:
    """The vendored Spec Kit templates, their licence, the report schema and the workflow."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    base = "pulser_ops/speckit/"
    for name in ("upstream/constitution-template.md", "upstream/spec-template.md",
                 "upstream/plan-template.md", "upstream/tasks-template.md", "upstream/LICENSE",
                 "upstream/UPSTREAM.json", "report.schema.json", "workflows/spec-kit.yml"):  # fmt: skip
        assert base + name in names, name
