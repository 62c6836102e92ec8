"""Shared fixtures for the step-executor tests (real processes, no database)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:  # the package may not be installed in the venv yet; fall back to the source tree
    import pulser_ops.steps  # noqa: F401
except ImportError:  # pragma: no cover - depends on how pytest is launched
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pulser_ops.steps import RecordingContext


@pytest.fixture
def ctx(tmp_path: Path) -> RecordingContext:
    """A fresh in-memory context whose workdir is the test's tmp_path."""
    return RecordingContext(
        run_id="0b5c6d1e-2f30-4a5b-8c9d-0e1f2a3b4c5d", attempt=1, workdir=tmp_path
    )
