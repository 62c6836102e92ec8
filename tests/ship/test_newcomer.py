"""A newcomer's first commands, ./scripts/test and ./scripts/demo, on machines that are not
this one: without root, on a system without apt, with an old Python. Each must stop at once
with one message that says what to install, before it touches anything.

The scripts run from a copy of what they read (scripts/, pyproject.toml, the npm lock file),
with PATH narrowed to this machine's commands minus those the situation lacks. A fresh
Debian machine as root is what CI's `test` job is (python:3.x-bookworm containers).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ship.support import ROOT, tool

SCRIPTS = ["test", "demo", "_system.sh", "_venv.sh"]


@pytest.fixture
def repo() -> Iterator[Path]:
    """A world-readable copy of the scripts and what they read (another user runs them)."""
    base = Path(tempfile.mkdtemp(prefix="pulser-ops-newcomer-"))
    base.chmod(0o755)
    repo = base / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy2(ROOT / "scripts" / name, repo / "scripts" / name)
    shutil.copy2(ROOT / "pyproject.toml", repo)
    (repo / "tools/supabase-cli").mkdir(parents=True)
    shutil.copy2(ROOT / "tools/supabase-cli/package-lock.json", repo / "tools/supabase-cli")
    for d in [repo, *repo.rglob("*")]:
        d.chmod(0o755 if d.is_dir() else 0o755 if os.access(d, os.X_OK) else 0o644)
    try:
        yield repo
    finally:
        shutil.rmtree(base, ignore_errors=True)


SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _path_without(
    tmp: Path, hidden: set[str], extra: dict[str, str] | None = None, search: str = SYSTEM_PATH
) -> str:
    """A PATH of one directory: links to every command on ``search`` except ``hidden``, plus
    ``extra`` (name -> script text)."""
    shim = tmp / "bin"
    shim.mkdir(exist_ok=True)
    shim.chmod(0o755)
    for d in search.split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = Path(d) / name
            link = shim / name
            if name in hidden or link.exists() or not os.access(target, os.X_OK):
                continue
            link.symlink_to(target)
    for name, text in (extra or {}).items():
        (shim / name).unlink(missing_ok=True)
        (shim / name).write_text(text)
        (shim / name).chmod(0o755)
    return str(shim)


def _run(repo: Path, script: str, path: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": str(repo), "LANG": "C.UTF-8"}
    prefix = ["runuser", "-u", user, "--"] if user else []
    return subprocess.run(
        [*prefix, "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()),
         "bash", str(repo / "scripts" / script)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _untouched(repo: Path) -> None:
    assert not (repo / ".venv").exists() and not (repo / "tools/supabase-cli/node_modules").exists()


def test_tests_on_a_system_without_apt_say_what_to_install(repo: Path, tmp_path: Path) -> None:
    path = _path_without(
        repo.parent, {"dpkg-query", "apt-get", "pg_prove", "pg_config"}, search=SYSTEM_PATH
    )
    out = _run(repo, "test", path)
    assert out.returncode == 1, out.stderr
    assert "installs what it needs with apt on Debian and Ubuntu; this system has no apt" in out.stderr
    for need in ("PostgreSQL 15 (server) with the pgTAP, pg_cron and wal2json", "pg_prove",
                 "Node.js 18 or newer with npm", "PULSER_OPS_TEST_PG_BIN"):  # fmt: skip
        assert need in out.stderr, need
    _untouched(repo)


def _system_python_fits() -> bool:
    return Path("/usr/bin/python3").is_file() and subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]
    ).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the script as another user")
@pytest.mark.skipif(not _system_python_fits(), reason="no Python 3.11+ as /usr/bin/python3")
def test_tests_without_root_list_the_debian_packages(repo: Path) -> None:
    """A fresh Debian machine, as a regular user with the system's commands: nothing of
    PostgreSQL is installed (dpkg says so), no Node.js, and apt needs root."""
    not_installed = "#!/bin/sh\nexit 1\n"  # dpkg-query -W on a package that is not there
    path = _path_without(
        repo.parent, {"npm", "pg_config"}, {"dpkg-query": not_installed}, search=SYSTEM_PATH
    )
    out = _run(repo, "test", path, user="nobody")
    assert out.returncode == 1, out.stderr
    listed = re.search(r"^APT_PACKAGES=\(\n(.*?)^\)", (ROOT / "scripts/test").read_text(), re.M | re.S)
    assert listed, "scripts/test lists its Debian packages"
    packages = [line.split("#")[0].strip() for line in listed.group(1).splitlines()]
    assert "postgresql-15" in packages
    wanted = " ".join([p for p in packages if p] + ["nodejs", "npm"])
    if subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"]).returncode:
        wanted += " python3-venv"
    assert f"missing Debian packages: {wanted}" in out.stderr
    assert f"sudo apt-get install {wanted}" in out.stderr
    _untouched(repo)


def _old_python() -> Path | None:
    pyenv = sorted(Path("/root/.pyenv/versions").glob("3.*/bin/python3"))
    for cand in [*pyenv, Path("/usr/bin/python3.9"), Path("/usr/bin/python3.10")]:
        if cand.is_file() and subprocess.run(
            [str(cand), "-c", "import sys; sys.exit(sys.version_info >= (3, 11))"]
        ).returncode == 0:
            return cand
    return None


@pytest.mark.skipif(_old_python() is None, reason="no Python older than 3.11 on this machine")
@pytest.mark.parametrize("script", ["demo", "test"])
def test_an_old_python_is_named(repo: Path, script: str) -> None:
    old = _old_python()
    assert old is not None
    path = _path_without(
        repo.parent, set(), {"python3": f'#!/bin/sh\nexec {old} "$@"\n'}, search=SYSTEM_PATH
    )
    out = _run(repo, script, path)
    assert out.returncode == 1
    assert f"./scripts/{script} needs Python 3.11 or newer; python3" in out.stderr
    _untouched(repo)


def test_the_shell_scripts_pass_shellcheck() -> None:
    scripts = [
        p for p in [*(ROOT / "scripts").iterdir(), *ROOT.glob("deploy/**/*.sh"), ROOT / ".ci/run"]
        if p.is_file() and (p.suffix == ".sh" or p.read_text().startswith("#!/usr/bin/env bash"))
    ]  # fmt: skip
    assert ROOT / "scripts/_system.sh" in scripts and ROOT / "deploy/k8s/deploy.sh" in scripts
    out = subprocess.run(
        [tool("shellcheck"), "-x", *map(str, scripts)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout
