"""The report: valid against its JSON Schema, and rendered inert in Markdown and annotations."""

from __future__ import annotations

import json

import jsonschema
import pytest

from pulser_ops.speckit.report import (
    COMMENT_MARKER,
    Finding,
    Report,
    schema,
    to_github,
    to_markdown,
)
from tests.speckit.kits import check, edit, kit, tree_of


@pytest.fixture
def damaged() -> Report:
    files = tree_of(kit())
    tasks = "spec/acme-notes/tasks.md"
    files[tasks] = edit(
        files[tasks].decode(),
        lambda ls: [*ls, "- [ ] <img src=x onerror=alert(1)> | @octocat [link](http://x)"],
    ).encode()
    return check(files)


def test_reports_validate_against_the_schema(damaged: Report) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    validator.check_schema(schema())
    for report in (damaged, check(tree_of(kit("speckit")))):
        validator.validate(json.loads(report.to_json()))
    assert json.loads(damaged.to_json())["schema_version"] == 1


def test_schema_rejects_what_it_should(damaged: Report) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    data = json.loads(damaged.to_json())
    data["findings"][0]["severity"] = "fatal"
    assert not validator.is_valid(data)
    data = json.loads(damaged.to_json())
    del data["summary"]
    assert not validator.is_valid(data)


def test_report_json_is_stable(damaged: Report) -> None:
    assert damaged.to_json() == Report.model_validate_json(damaged.to_json()).to_json()


def test_markdown_escapes_document_text(damaged: Report) -> None:
    md = to_markdown(damaged)
    assert md.startswith(COMMENT_MARKER)
    assert "<img" not in md and "&lt;img" in md
    assert "@octocat" not in md  # no mention
    assert "[link](http" not in md
    body_rows = [ln for ln in md.splitlines() if ln.startswith("| ❌") or ln.startswith("| ⚠️")]
    assert all(ln.count(" | ") == 3 for ln in body_rows)  # a "|" in text never adds a cell


def test_markdown_is_cut_to_fit_with_a_note(damaged: Report) -> None:
    full = to_markdown(damaged)
    cut = to_markdown(damaged, limit=2000)
    assert len(cut) <= 2000 < len(full)
    assert "more finding(s) not shown" in cut


def test_github_annotations_escape_and_point_at_lines() -> None:
    report = Report.model_validate(
        {
            "tool": {"name": "pulser-ops", "version": "0"},
            "spec_kit": {"package": "specify-cli", "version": "1.2.3"},
            "source": {"kind": "path", "location": "."},
            "kits": [],
            "findings": [
                Finding(
                    rule="task.format",
                    severity="error",
                    file="spec/a,b/tasks.md",
                    line=7,
                    message="50% bad\nnext: line",
                ).model_dump(),
                Finding(
                    rule="marker.todo",
                    severity="warning",
                    file="spec/a/prd.md",
                    message="TODO(X) left open",
                ).model_dump(),
            ],
            "summary": {"ok": False, "errors": 1, "warnings": 1, "kits": 1},
        }
    )
    lines = to_github(report).splitlines()
    assert lines[0] == (
        "::error file=spec/a%2Cb/tasks.md,line=7,title=spec-kit task.format::50%25 bad%0Anext: line"
    )
    assert lines[1] == "::warning file=spec/a/prd.md,title=spec-kit marker.todo::TODO(X) left open"
    assert lines[2] == "spec-kit: 1 kit(s), 1 error(s), 1 warning(s) - failing"
