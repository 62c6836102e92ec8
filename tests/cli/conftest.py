"""Fixtures for CLI tests: a fresh migrated database with one template, and a CLI bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pulser_ops
from tests.cli.helpers import GREET, Cli


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "storage"


@pytest.fixture
def client(db_url: str, storage_dir: Path) -> Iterator[pulser_ops.Client]:
    with pulser_ops.connect(db_url, storage_dir=storage_dir) as c:
        c.templates.upsert(GREET)
        yield c


@pytest.fixture
def cli(db_url: str, tmp_path: Path, client: pulser_ops.Client) -> Cli:
    """The CLI, pointed at ``db_url`` through the environment (home under tmp_path)."""
    return Cli({"PULSER_OPS_DATABASE_URL": db_url, "PULSER_OPS_HOME": str(tmp_path / "home")})
