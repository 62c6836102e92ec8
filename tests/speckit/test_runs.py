"""Both spec kit templates, seeded by supabase/seed.sql, through a real worker on real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest

from pulser_ops import Client
from pulser_ops.db.migrate import push
from pulser_ops.errors import InvalidParams
from pulser_ops.models import Run
from pulser_ops.speckit.report import Source, schema
from pulser_ops.speckit.source import Opened, read_zip
from pulser_ops.speckit.validate import validate
from tests.speckit.kits import PARAMS, kit
from tests.worker.conftest import WorkerProcess

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def seeded(db_url: str, client: Client) -> Client:
    push(db_url, include_seed=True)
    return client


def drain(spawn: Callable[..., WorkerProcess], **env: str) -> None:
    """One burst worker: it claims every queued run and exits when none is left."""
    w = spawn("--burst", "--lanes", "A,B,C,D", env=env or None)
    assert w.wait(120) == 0, w.output()[-3000:]


def ended(client: Client, run: Run) -> Run:
    r = client.runs.get(run.id)
    assert r.status.value in TERMINAL, r
    return r


def artifacts(client: Client, run: Run) -> dict[str, Any]:
    return {a.name: a for a in client.artifacts.list(run.id)}


def test_generate_then_validate_its_zip(seeded: Client, spawn_worker: Any) -> None:
    session = seeded.sessions.create("spec kits")
    gens = {
        layout: seeded.runs.create(
            "generate_spec_kit", {**PARAMS, "layout": layout}, session_id=session.id
        )
        for layout in ("plan", "speckit")
    }
    drain(spawn_worker)
    for layout, run in gens.items():
        done = ended(seeded, run)
        assert done.status.value == "succeeded", (done.error, done.error_class)
        expected = kit(layout)
        arts = artifacts(seeded, run)
        assert set(arts) == {d.path for d in expected.documents} | {"spec-kit.zip"}
        for doc in expected.documents:
            assert arts[doc.path].kind == "markdown"
            assert seeded.artifacts.download(run.id, doc.path).decode() == doc.content
        docs = seeded.spec_docs.list(run_id=run.id)
        assert sorted((d.path, d.kind, d.title, d.content) for d in docs) == sorted(
            (d.path, d.kind, d.title, d.content) for d in expected.documents
        )
        assert {(d.run_id, d.session_id) for d in docs} == {(run.id, session.id)}
        archive = seeded.artifacts.download(run.id, "spec-kit.zip")
        assert archive == expected.zip_bytes()  # deterministic: same params, same bytes
        report = validate(Opened(read_zip(archive)), Source(kind="zip", location="x"))
        assert report.summary.errors == 0
        assert done.result is not None
        result = done.result["result"]  # the handler's return value: the listed TODOs
        assert result["root"] == expected.kit.root and result["zip"] == "spec-kit.zip"
        assert [(t["file"], t["line"], t["field"]) for t in result["todos"]] == [
            (t.file, t.line, t.field) for t in expected.todos
        ]

    checks = {
        layout: seeded.runs.create("validate_spec_kit", {"run_id": str(run.id)})
        for layout, run in gens.items()
    }
    drain(spawn_worker)
    validator = jsonschema.Draft202012Validator(schema())
    for layout, run in checks.items():
        done = ended(seeded, run)
        assert done.status.value == "succeeded", (done.error, done.error_class)
        arts = artifacts(seeded, run)
        assert set(arts) == {"spec-kit-report.json", "spec-kit-report.md"}
        report = json.loads(seeded.artifacts.download(run.id, "spec-kit-report.json"))
        validator.validate(report)
        assert report["summary"]["errors"] == 0
        assert report["source"] == {
            "kind": "artifact",
            "location": f"{gens[layout].id}/spec-kit.zip",
        }
        assert report["kits"][0]["layout"] == layout


def _write_kit(root: Path, damage: bool = False) -> None:
    for d in kit().documents:
        target = root / d.path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = d.content
        if damage and d.kind == "tasks":
            text += "- [ ] T002 Duplicate\n"
        target.write_text(text)


def test_validate_path_and_git_ref_sources(
    seeded: Client, spawn_worker: Any, tmp_path: Path
) -> None:
    root = tmp_path / "specroot"
    _write_kit(root)
    git = ["git", "-C", str(root)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "-c", "user.email=t@e", "-c", "user.name=t", "add", "-A"], check=True)
    subprocess.run(
        [*git, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "kit"], check=True
    )
    _write_kit(root, damage=True)  # the working tree breaks; the commit stays good

    good_git = seeded.runs.create(
        "validate_spec_kit", {"git_ref": "main", "path": "spec/acme-notes"}
    )
    bad_path = seeded.runs.create("validate_spec_kit", {"path": "spec/acme-notes"})
    escape = seeded.runs.create("validate_spec_kit", {"path": "../.."})
    drain(spawn_worker, PULSER_OPS_SPEC_ROOT=str(root))

    done = ended(seeded, good_git)
    assert done.status.value == "succeeded", done.error
    report = json.loads(seeded.artifacts.download(good_git.id, "spec-kit-report.json"))
    assert report["source"]["kind"] == "git" and report["summary"]["errors"] == 0

    done = ended(seeded, bad_path)
    assert (done.status.value, done.error_class) == ("failed", "spec_kit_invalid")
    assert "task.duplicate" in (done.error or "")
    report = json.loads(seeded.artifacts.download(bad_path.id, "spec-kit-report.json"))
    assert [f["rule"] for f in report["findings"] if f["severity"] == "error"] == ["task.duplicate"]
    assert report["findings"][-1]["file"].startswith("spec/acme-notes/")

    done = ended(seeded, escape)
    assert (done.status.value, done.error_class) == ("failed", "invalid_input")
    assert "leads out of" in (done.error or "")
    assert artifacts(seeded, escape) == {}


def test_bad_input_is_refused_and_nothing_is_saved(
    seeded: Client, spawn_worker: Any, db_url: str
) -> None:
    # refused at enqueue by the template's params schema (SQL)
    with pytest.raises(InvalidParams, match="name"):
        seeded.runs.create("generate_spec_kit", {**PARAMS, "name": "../x"})
    # passes the schema, refused by the handler before anything is saved
    bad_story = seeded.runs.create(
        "generate_spec_kit", {**PARAMS, "features": [{"title": "x", "acceptance": ["nope"]}]}
    )
    junk = seeded.runs.create("validate_spec_kit", {"run_id": str(uuid.uuid4())})
    # another owner's artifact is not readable through a validation run
    theirs = seeded.runs.create("generate_spec_kit", PARAMS)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.runs set owner_id = %s where id = %s", (uuid.uuid4(), theirs.id)
        )
    drain(spawn_worker)
    peek = seeded.runs.create("validate_spec_kit", {"run_id": str(theirs.id)})
    drain(spawn_worker)

    done = ended(seeded, bad_story)
    assert (done.status.value, done.error_class) == ("failed", "invalid_input")
    assert "features[0].acceptance" in (done.error or "")
    assert artifacts(seeded, bad_story) == {}
    assert (ended(seeded, junk).error_class, ended(seeded, junk).attempt) == ("not_found", 1)
    assert ended(seeded, theirs).status.value == "succeeded"
    done = ended(seeded, peek)
    # answered like a run that does not exist: no way to probe which ids exist
    assert (done.status.value, done.error_class) == ("failed", "not_found")
    assert artifacts(seeded, peek) == {}


def test_a_drafting_step_fills_what_the_params_leave_out(seeded: Client, spawn_worker: Any) -> None:
    seeded.templates.upsert(
        {
            "name": "generate_spec_kit_drafted",
            "params_schema": {"type": "object"},
            "default_lane": "B",
            "max_attempts": 1,
            "steps": [
                {
                    "kind": "python",
                    "name": "draft",
                    "handler": "draft_stories",
                    "args": {"features": ["Drafted story one", "Drafted story two"]},
                },
                {
                    "kind": "python",
                    "name": "generate",
                    "handler": "speckit.generate",
                    "args": {"draft_artifact": "draft.json"},
                },
            ],
        }
    )
    run = seeded.runs.create(
        "generate_spec_kit_drafted",
        {"name": "drafted", "description": "A drafted kit.", "title": "Given Title"},
    )
    drain(spawn_worker)
    done = ended(seeded, run)
    assert done.status.value == "succeeded", done.error
    prd = seeded.artifacts.download(run.id, "spec/drafted/prd.md").decode()
    assert "### User Story 2 - Drafted story two (Priority: P2)" in prd
    assert prd.startswith("# Feature Specification: Given Title\n")  # params win over the draft
