"""The embedded PostgreSQL: created once, reused, restarted with its data, shared safely.

These tests start real servers under throwaway homes (one module-scoped home for the slow
first start, one more for the concurrent-start test). Homes live in a world-traversable temp
directory because, under root, the server runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pulser_ops
from pulser_ops import embedded
from pulser_ops.embedded import placement
from pulser_ops.errors import ConfigurationError
from tests.cli.helpers import PULSER_OPS_EXE, Cli, assert_ok, assert_one_error
from tests.support.dirs import reachable_temp_dir


@pytest.fixture
def base() -> Iterator[Path]:
    path = reachable_temp_dir("pulser-ops-emb-")
    try:
        yield path
    finally:
        for home in path.iterdir():
            if (home / "pg").exists():
                embedded.stop(home)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def first_start() -> Iterator[tuple[Path, str, list[str]]]:
    """One embedded database for the module: its home, URL and what the first start said.

    Every test that uses it works whichever tests ran before it on this worker (pytest-xdist
    may split the module), so none of them depends on the server's state on entry.
    """
    path = reachable_temp_dir("pulser-ops-emb-")
    home = path / "home"
    said: list[str] = []
    try:
        url = embedded.ensure_database(home, on_progress=said.append)
        yield home, url, said
    finally:
        embedded.stop(home)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def home(first_start: tuple[Path, str, list[str]]) -> Path:
    return first_start[0]


def test_first_use_creates_starts_migrates_and_seeds(
    first_start: tuple[Path, str, list[str]],
) -> None:
    home, _, said = first_start
    assert any(s.startswith("Creating the embedded PostgreSQL") for s in said), said
    assert any("migration" in s for s in said) and any("seed" in s for s in said), said
    st = embedded.status(home)
    assert st.initialized and st.major is not None
    assert (home / "embedded.json").stat().st_mode & 0o077 == 0  # it holds a password
    with pulser_ops.connect(home=home) as client:  # no URL anywhere: the SDK finds it too
        assert "hello" in {t.name for t in client.templates.list()}
    assert embedded.status(home).url == embedded.ensure_database(home)


def test_second_use_reuses_the_running_server(home: Path) -> None:
    url = embedded.ensure_database(home)  # running on entry, whatever ran before
    before = embedded.status(home)
    assert before.running and before.url == url
    said: list[str] = []
    assert embedded.ensure_database(home, on_progress=said.append) == url
    assert said == []  # nothing created, started or migrated
    assert embedded.status(home).pid == before.pid


def test_cli_on_the_embedded_database_and_data_survives_stop(home: Path) -> None:
    cli = Cli({"PULSER_OPS_HOME": str(home)})
    run_id = assert_ok(cli("enqueue", "hello", "-P", "name=embedded")).stdout.split()[0]
    assert_one_error(cli("enqueue", "hello", "-P", "name=3"), "params.name")
    assert_one_error(cli("enqueue", "no-such-template"), "unknown template")
    listed = json.loads(assert_ok(cli("runs", "ls", "-f", "json")).stdout)
    assert [r["id"] for r in listed] == [run_id]

    assert assert_ok(cli("local", "start")).stdout.strip() == embedded.status(home).url
    status = json.loads(assert_ok(cli("local", "status", "--json")).stdout)
    old_pid = status["pid"]
    assert status["running"] and old_pid
    assert "stopped the embedded database" in assert_ok(cli("local", "stop")).stdout
    assert not embedded.status(home).running
    assert "not running" in assert_ok(cli("local", "stop")).stderr
    assert "stopped" in assert_ok(cli("local", "status")).stdout

    # --home on the command line (no environment): starts it again, with the data
    bare = Cli({"PULSER_OPS_HOME": None})
    again = json.loads(assert_ok(bare("runs", "ls", "-f", "json", "--home", str(home))).stdout)
    assert [(r["id"], r["params"]) for r in again] == [(run_id, {"name": "embedded"})]
    assert embedded.status(home).pid not in (None, old_pid)


@pytest.mark.slow
def test_concurrent_first_starts_share_one_cluster(base: Path) -> None:
    target = base / "shared"
    code = (
        "import sys; from pulser_ops import embedded; print(embedded.ensure_database(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1] for r in results]
    urls = {r[0].strip() for r in results}
    assert len(urls) == 1
    with pulser_ops.connect(urls.pop()) as client:
        assert "hello" in {t.name for t in client.templates.list()}


def test_data_of_an_unknown_postgres_version_is_a_clear_error(base: Path) -> None:
    home = base / "future"
    (home / "pg" / "data").mkdir(parents=True)
    (home / "pg" / "data" / "PG_VERSION").write_text("99\n")
    with pytest.raises(ConfigurationError, match="no PostgreSQL 99 server binaries"):
        embedded.ensure_database(home)
    cli = Cli({"PULSER_OPS_HOME": str(home)})
    assert_one_error(cli("runs", "ls"), "no PostgreSQL 99 server binaries")
    assert not embedded.status(home).running


ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root hands the server to another OS user"
)


def _pulser_ops(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed CLI as a user types it: no connection settings, so the embedded default."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    return subprocess.run(
        [PULSER_OPS_EXE, *args], cwd=cwd, env={**clean, "COLUMNS": "300", **env},
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.mark.slow  # 11-35 s: it starts a server in a fresh private directory
@ROOT_ONLY
def test_root_in_a_private_directory_keeps_the_data_where_postgres_can_reach_it(
    base: Path,
) -> None:
    """Root working in a mode-700 directory (a container in /root/project): the `postgres` OS
    user cannot enter it, so the cluster lives under /var/lib/pulser-ops, owned by that user,
    and `local status` says where."""
    project = base / "project"
    project.mkdir(mode=0o700)
    home = project / ".pulser-ops"
    try:
        made = _pulser_ops(project, "enqueue", "hello", "-P", "name=root")
        assert made.returncode == 0, made.stderr
        run_id = made.stdout.split()[0]

        st = json.loads(_pulser_ops(project, "local", "status", "--json").stdout)
        data = Path(st["data_dir"])
        assert st["running"] and st["relocated"] and st["home"] == str(home)
        assert data.is_relative_to(placement.DEFAULT_DATA_ROOT / "embedded"), data
        assert (home / "pg").resolve() == data.parent
        info = data.stat()
        assert info.st_uid == pwd.getpwnam("postgres").pw_uid and info.st_mode & 0o777 == 0o700
        assert (data.parent / placement.HOME_MARKER).read_text().strip() == str(home)
        assert project.stat().st_mode & 0o777 == 0o700, "the project directory was not opened up"
        shown = _pulser_ops(project, "local", "status").stdout
        assert str(data) in shown and "outside the home" in shown

        # Stopped and started again, the data is still there.
        assert _pulser_ops(project, "local", "stop").returncode == 0
        listed = _pulser_ops(project, "runs", "ls", "-f", "json")
        assert listed.returncode == 0, listed.stderr
        assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    finally:
        if (home / "pg").is_symlink():
            target = (home / "pg").resolve()
            embedded.stop(home)
            shutil.rmtree(target, ignore_errors=True)


@ROOT_ONLY
def test_binaries_in_a_private_virtualenv_are_copied_where_postgres_can_run_them(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root with the pgserver wheel inside a mode-700 directory (`pip install pulser-ops` in
    /root/project/.venv on a machine without PostgreSQL): the binaries are copied once under
    the data root ($PULSER_OPS_PG_DATA_ROOT here) and the cluster goes there too."""
    pgserver = pytest.importorskip("pgserver", reason="no pgserver wheel for this Python/platform")

    project = base / "project"
    project.mkdir(mode=0o700)
    site = project / ".venv" / "site-packages"  # the wheel's layout: package + auditwheel libs
    wheel = Path(pgserver.__file__).parent
    shutil.copytree(wheel / "pginstall", site / "pgserver" / "pginstall", symlinks=True)
    shutil.copytree(wheel.parent / "pgserver.libs", site / "pgserver.libs", symlinks=True)
    install = site / "pgserver" / "pginstall"
    data_root = base / "var-lib"
    monkeypatch.setenv("PULSER_OPS_PG_BIN", str(install / "bin"))
    monkeypatch.setenv(placement.DATA_ROOT_ENV, str(data_root))
    home = project / ".pulser-ops"
    try:
        url = embedded.ensure_database(home)
        with pulser_ops.connect(url, storage_dir=home / "storage") as client:
            assert "hello" in {t.name for t in client.templates.list()}
        state = json.loads((home / "embedded.json").read_text())
        assert Path(state["bin_dir"]).is_relative_to(data_root / "bin"), state["bin_dir"]
        assert embedded.status(home).data_dir.is_relative_to(data_root / "embedded")
    finally:
        embedded.stop(home)


def test_the_pgserver_wheel_serves_when_no_system_postgres_is_chosen(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback for machines without PostgreSQL: the pgserver wheel's own server (16)."""
    pgserver = pytest.importorskip("pgserver", reason="no pgserver wheel for this Python/platform")

    wheel_bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
    monkeypatch.setenv("PULSER_OPS_PG_BIN", str(wheel_bin))
    home = base / "wheel"
    url = embedded.ensure_database(home)
    with pulser_ops.connect(url, storage_dir=home / "storage") as client:
        assert {t.name for t in client.templates.list()} >= {"hello", "noop", "slow-step"}
        run = client.runs.create("hello", {"name": "wheel"})
        (claimed,) = client.runs.claim("w", lanes="A")
        assert claimed.id == run.id
        done = client.runs.complete(run.id, "w", 1, "succeeded")
        assert done.status == "succeeded"
    state = json.loads((home / "embedded.json").read_text())
    assert Path(state["bin_dir"]).resolve() == wheel_bin.resolve(), "it really ran the wheel's server"
