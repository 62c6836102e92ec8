"""The vendored templates are Spec Kit's own, from the pinned specify-cli wheel."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from pulser_ops.speckit import upstream

UPSTREAM = Path(str(resources.files("pulser_ops.speckit").joinpath("upstream")))


def test_vendored_files_match_the_recorded_sha256() -> None:
    meta = upstream.metadata()
    assert meta["package"] == "specify-cli"
    assert upstream.version() == meta["version"] == "1.2.3"
    for name, info in meta["files"].items():
        assert hashlib.sha256((UPSTREAM / name).read_bytes()).hexdigest() == info["sha256"], name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned wheel from PyPI, checked against the recorded sha256."""
    meta = upstream.metadata()
    dest = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--retries",
            "3",
            "--only-binary=:all:",
            f"{meta['package']}=={meta['version']}",
            "-d",
            str(dest),
        ],
        check=True,
        timeout=180,
    )
    path = dest / meta["wheel"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["wheel_sha256"]
    return path


def test_vendored_files_are_the_wheels_files(wheel: Path) -> None:
    meta = upstream.metadata()
    with zipfile.ZipFile(wheel) as zf:
        for name, info in meta["files"].items():
            assert zf.read(info["wheel_path"]) == (UPSTREAM / name).read_bytes(), name


def test_required_sections_are_headings_of_the_templates() -> None:
    for kind, keys in upstream.REQUIRED_SECTIONS.items():
        heads = upstream.template_headings(kind)
        for key in keys:
            assert any(h == key or h.startswith(key + " ") for h in heads), (kind, key)


def test_placeholders_come_from_the_templates() -> None:
    tokens = upstream.placeholders()
    for token in (
        "[PROJECT_NAME]",
        "[FEATURE NAME]",
        "[Brief Title]",
        "[initial state]",
        "[###-feature-name]",
        "[REMOVE IF UNUSED]",
        "[GOVERNANCE_RULES]",
    ):
        assert token in tokens
    # the format's own markers are not placeholders
    assert not tokens & {"[P]", "[US1]", "[X]", "[ID]", "[Story]", "[P?]"}
