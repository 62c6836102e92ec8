"""The container image's Dockerfiles: hadolint on every one, and the worker image built from
exactly what the wheel is built from. No image is built here (no Docker engine): the wheel it
installs is built and run by test_wheel.py, and images.yml builds the image on GitHub.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.ship.support import ROOT, tool

SKIP_DIRS = {".git", ".venv", "node_modules", ".tmp", "dist", "build"}


def dockerfiles() -> list[Path]:
    """Every Dockerfile in the repository (other changes may add more)."""
    found = [
        p
        for p in ROOT.rglob("*Dockerfile*")
        if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
    ]
    return sorted(found)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("hadolint"), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_there_is_the_image() -> None:
    assert ROOT / "deploy/Dockerfile" in dockerfiles()


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(path: Path) -> None:
    out = _hadolint(path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && apt-get install curl\n")
    out = _hadolint(bad)
    assert out.returncode == 1 and "DL3006" in out.stdout and "DL3008" in out.stdout


def test_the_image_copies_what_the_wheel_is_built_from() -> None:
    """The build stage COPYs exactly the sdist's includes, and .dockerignore lets them in."""
    sdist = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["sdist"]["include"]
    wanted = {p.strip("/") for p in sdist} | {"pyproject.toml"}  # always in an sdist
    text = (ROOT / "deploy/Dockerfile").read_text()
    build_stage = text.split("\nFROM ")[1]
    copied: set[str] = set()
    for line in build_stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(line.split()[1:-1])
    assert copied == wanted
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") - 1].startswith("#") and "*" in ignore, "all out, then in:"
    for p in sorted(wanted):
        assert (f"!{p}/" if (ROOT / p).is_dir() else f"!{p}") in ignore, p


def test_one_image_serves_the_worker_and_the_control_room() -> None:
    text = (ROOT / "deploy/Dockerfile").read_text()
    assert 'ENTRYPOINT ["pulser-ops"]' in text and 'CMD ["worker"]' in text
    assert re.search(r"^USER 10001$", text, re.M), "never root"
    assert re.search(r"^EXPOSE 8080 8081$", text, re.M)
    assert "PULSER_OPS_HEALTH_PORT=8081" in text
