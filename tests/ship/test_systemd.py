"""The systemd units: ``systemd-analyze verify`` on each, and their stop timeouts above the
worker's drain. systemd does not run here, so verify works on a throwaway root holding the
host's unit library, the unit, and stand-ins for the executables it names (verify only checks
that they exist). Skipped, with the reason, where systemd-analyze is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ship.support import ROOT

UNITS = sorted(ROOT.glob("deploy/**/*.service"))
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _settings(unit: Path) -> dict[str, str]:
    text = unit.read_text().replace("\\\n", " ")
    return dict(re.findall(r"^(\w+)=(.*)$", text, re.M))


def test_the_units_this_repository_ships() -> None:
    assert {p.relative_to(ROOT).as_posix() for p in UNITS} >= {
        "deploy/pulser-ops-worker.service",
        "deploy/droplet/pulser-ops-worker.service",
    }


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: str(p.relative_to(ROOT)))
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    # Units other packages install (docker.service, from Docker's) get a minimal stand-in.
    for needed in re.findall(r"^Requires=(.*)$", unit.read_text(), re.M):
        for name in needed.split():
            if not (root / "usr/lib/systemd/system" / name).exists():
                (root / "etc/systemd/system" / name).write_text("[Service]\nExecStart=/bin/true\n")
                (root / "bin").mkdir(exist_ok=True)
                (root / "bin/true").write_text("#!/bin/sh\n")
                (root / "bin/true").chmod(0o755)
    for line in re.findall(r"^Exec\w+=[-@:+!]*(/\S+)", unit.read_text(), re.M):
        exe = root / line.lstrip("/")
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", unit.name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
def test_verify_really_complains(tmp_path: Path) -> None:
    """The check above can fail: a bad directive is reported (as a message, exit 0)."""
    assert SYSTEMD_ANALYZE is not None
    (tmp_path / "root/usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, tmp_path / "root/usr/lib/systemd/system", symlinks=True)
    (tmp_path / "root/etc/systemd/system").mkdir(parents=True)
    bad = tmp_path / "root/etc/systemd/system/bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\nKillMode=sometimes\n")
    (tmp_path / "root/bin").mkdir()
    (tmp_path / "root/bin/true").write_text("#!/bin/sh\n")
    (tmp_path / "root/bin/true").chmod(0o755)
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={tmp_path / 'root'}", "bad.service"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Failed to parse kill mode" in out.stdout + out.stderr


def _seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_stop_timeouts_exceed_the_drain() -> None:
    venv = _settings(ROOT / "deploy/pulser-ops-worker.service")
    assert venv["KillSignal"] == "SIGTERM"
    assert _seconds(venv["TimeoutStopSec"]) >= 60 + 10  # the grace its header sets
    docker = _settings(ROOT / "deploy/droplet/pulser-ops-worker.service")
    docker_stop = float(re.search(r"docker stop --time (\d+)", docker["ExecStop"]).group(1))  # type: ignore[union-attr]
    assert docker_stop >= 60 + 10, "docker's SIGKILL comes after the 60 s drain + release"
    assert _seconds(docker["TimeoutStopSec"]) > docker_stop
    assert "--publish 127.0.0.1:8081:8081" in docker["ExecStart"], "health on loopback only"
