"""The built distributions on their own, as ci.yml's `package` job checks them: its steps run
here as GitHub runs them, on a copy of the checkout: build the wheel and the sdist and
`twine check` them, install the wheel in a fresh venv (its dependencies from PyPI), and run
`pulser-ops --help`, `db sql` and `demo` from a directory outside the repository. Then the
wheel is opened to check that every data file of the package (the workflow templates, the web
assets) is inside, under the version the package says. tests/test_wheel.py checks the
migrations, the seed and the package layout of a wheel built offline.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import pulser_ops
from pulser_ops import embedded
from tests.ship.support import ROOT, load_workflow, run_step, step

pytestmark = pytest.mark.slow


def _checkout(dest: Path) -> None:
    """The files a clone would have, with this worktree's changes (tracked or new)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the checkout copy with dist/ built by the workflow's step, a RUNNER_TEMP)."""
    base = tmp_path_factory.mktemp("package")
    base.chmod(0o755)
    repo, runner_temp = base / "repo", base / "runner-temp"
    repo.mkdir()
    runner_temp.mkdir()
    _checkout(repo)
    script = step(load_workflow("ci.yml"), "package", "Build the wheel and the sdist")["run"]
    out = run_step(script, cwd=repo, env={"RUNNER_TEMP": str(runner_temp)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "PASSED" in out.stdout, "twine check ran"
    yield repo, runner_temp


def test_the_wheel_carries_the_sql_and_every_data_file(built: tuple[Path, Path]) -> None:
    repo, _ = built
    (wheel,) = (repo / "dist").glob("*.whl")
    (sdist,) = (repo / "dist").glob("*.tar.gz")
    version = pulser_ops.__version__
    assert wheel.name == f"pulser_ops-{version}-py3-none-any.whl"
    assert sdist.name == f"pulser_ops-{version}.tar.gz"
    names = set(zipfile.ZipFile(wheel).namelist())
    # (tests/test_wheel.py checks the migrations and the seed byte for byte)
    assert "pulser_ops/_supabase/seed.sql" in names
    package = ROOT / "src/pulser_ops"
    data = [
        p for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]  # fmt: skip
    assert any(p.name == "sweeper.yml" for p in data)
    missing = [p for p in data if f"pulser_ops/{p.relative_to(package).as_posix()}" not in names]
    assert missing == [], "package data left out of the wheel (web assets, templates, ...)"
    metadata = zipfile.ZipFile(wheel).read(f"pulser_ops-{version}.dist-info/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert "License-File: LICENSE" in metadata


def test_the_wheel_in_a_fresh_venv_runs_the_demo_from_elsewhere(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, runner_temp = built
    script = step(
        load_workflow("ci.yml"), "package", "Install the wheel in a fresh venv and run it from elsewhere"
    )["run"]
    tmpdir = tmp_path / "tmp"  # where the step's `mktemp -d` puts its working directory
    tmpdir.mkdir()
    tmpdir.chmod(0o755)
    try:
        out = run_step(
            script, cwd=repo, timeout=900,
            env={"RUNNER_TEMP": str(runner_temp), "TMPDIR": str(tmpdir)},
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
        assert "Usage: pulser-ops" in out.stdout
        assert "demo passed: every run ended in the state it should." in out.stdout
        fresh = runner_temp / "fresh" / "bin" / "python"
        where = subprocess.run(
            [str(fresh), "-c", "import pulser_ops, sys; print(pulser_ops.__file__)"],
            capture_output=True, text=True, cwd=tmp_path, check=True,
        ).stdout  # fmt: skip
        assert str(runner_temp / "fresh") in where, "the installed wheel, not the checkout"
    finally:
        for home in tmpdir.glob("*/.pulser-ops"):
            target = (home / "pg").resolve() if (home / "pg").is_symlink() else None
            embedded.stop(home)
            if target is not None:
                shutil.rmtree(target, ignore_errors=True)
