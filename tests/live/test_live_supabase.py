"""The SDK on a real Supabase project: what the stand-in can only imitate (docs/SUPABASE.md).

Marked ``live`` and deselected unless asked for (``-m live``, or ``tests/live`` named on the
command line). HTTP is recorded in ``cassettes/`` with pytest-vcr and replayed without network;
the Realtime test needs the project itself.
"""

from __future__ import annotations

import pytest

import pulser_ops
from pulser_ops import doctor, doctor_platform
from pulser_ops.errors import ConfigurationError
from tests.live.conftest import Project

pytestmark = pytest.mark.live


@pytest.mark.vcr
def test_the_project_is_ready_for_pulser_ops(project: Project) -> None:
    """Migrations, functions, publication, bucket, RLS; a service key of either style."""
    with project.connect() as c:
        checks, info = doctor.run_checks(c)
    failed = [ch for ch in checks if ch.status == "fail"]
    assert not failed, failed
    assert info is not None and info["caller"] == "service"


@pytest.mark.vcr
def test_more_rows_than_the_cap_are_all_accounted_for(project: Project) -> None:
    """1,500 runs through a Data API that answers 1000 rows at most: every one returned, then
    deleted in pages with their files."""
    with project.connect() as c:
        c.templates.upsert({"name": doctor.SMOKE_TEMPLATE, "description": "pulser-ops live test",
                            "max_attempts": 1, "steps": [{"kind": "python", "handler": "noop"}]})
        checks = {ch.name: ch for ch in doctor_platform.row_cap(
            c, doctor.SMOKE_TEMPLATE, "D", lambda _: None)}
    assert checks["row cap"].status == "ok", checks["row cap"]
    assert checks["paged delete"].status == "ok", checks["paged delete"]


@pytest.mark.vcr
def test_artifact_names_behave_the_same_as_on_every_transport(project: Project) -> None:
    """A name outside Storage's key characters round-trips, or is refused up front with
    InvalidInput; never accepted by the SDK and refused by Storage."""
    with project.connect() as c:
        c.templates.upsert({"name": doctor.SMOKE_TEMPLATE, "description": "pulser-ops live test",
                            "max_attempts": 1, "steps": [{"kind": "python", "handler": "noop"}]})
        run = c.runs.create(doctor.SMOKE_TEMPLATE, lane="D")
        try:
            check = doctor_platform.unicode_artifact(c, run.id, 0)
        finally:
            doctor_platform.delete_all(c, doctor.SMOKE_TEMPLATE)
    assert check.status == "ok", check


@pytest.mark.vcr
def test_a_wrong_key_is_a_configuration_error(project: Project) -> None:
    with pulser_ops.connect(supabase_url=project.url, supabase_key=doctor_platform.WRONG_KEY
                            ) as c, pytest.raises(ConfigurationError, match="API key"):
        c.lanes.list()


@pytest.mark.needs_project
def test_doctor_smoke_on_the_project(project: Project) -> None:
    """Everything of ``pulser-ops doctor --smoke``, Realtime included (not replayable)."""
    with project.connect() as c:
        results = {ch.name: ch for ch in doctor.smoke(c, timeout=60)}
    failed = [ch for ch in results.values() if ch.status == "fail"]
    assert not failed, failed
    for name in ("realtime", "realtime ready", "large change", "deleted run", "row cap"):
        assert results[name].status == "ok", results[name]
