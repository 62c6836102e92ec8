"""``pulser-ops speckit`` and the workflow ``pulser-ops init`` writes, with no database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from pulser_ops.cli import app
from pulser_ops.speckit import workflow
from pulser_ops.speckit.report import schema
from tests.speckit.github_server import fake_github

REPO = Path(__file__).resolve().parents[2]
ACTIONLINT = Path(sys.executable).with_name("actionlint")
REPO_WORKFLOW_ARGS = {
    "install": "pip install .",
    "include": ["spec/ops-control-room"],
    "paths": (
        "spec/**",
        "specs/**",
        ".specify/**",
        "src/pulser_ops/speckit/**",
        ".github/workflows/spec-kit.yml",
    ),
}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    env = {"COLUMNS": "300", **(env or {})}
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def generate(out: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        "speckit",
        "generate",
        "--name",
        "acme-notes",
        "--description",
        "Team notes.",
        "--feature",
        "Write a note",
        "--feature",
        "Share a note",
        "--principle",
        "Simplicity: start small",
        "--date",
        "2026-11-30",
        "--out",
        str(out),
        *extra,
    )


@pytest.mark.parametrize("layout", ["plan", "speckit"])
def test_generate_then_validate(tmp_path: Path, layout: str) -> None:
    code, out, err = generate(tmp_path, "--layout", layout, "--zip", str(tmp_path / "kit.zip"))
    assert code == 0, err
    created = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.md"))
    expected = {
        "plan": [
            "spec/acme-notes/constitution.md",
            "spec/acme-notes/plan.md",
            "spec/acme-notes/prd.md",
            "spec/acme-notes/tasks.md",
        ],
        "speckit": [
            ".specify/memory/constitution.md",
            "specs/001-acme-notes/plan.md",
            "specs/001-acme-notes/spec.md",
            "specs/001-acme-notes/tasks.md",
        ],
    }[layout]
    assert created == expected
    assert "TODO(s) left for you to fill in" in err
    for target in (tmp_path, tmp_path / "kit.zip"):
        code, out, err = run("speckit", "validate", str(target))
        assert code == 0, out + err
        assert "Spec Kit validation: 0 error(s)" in out


def test_generate_refuses_to_overwrite_and_writes_nothing_on_bad_input(tmp_path: Path) -> None:
    assert generate(tmp_path)[0] == 0
    prd = tmp_path / "spec/acme-notes/prd.md"
    prd.write_text("mine")
    code, _out, err = generate(tmp_path)
    assert (code, err.startswith("error: refusing to overwrite")) == (2, True)
    assert prd.read_text() == "mine"
    assert generate(tmp_path, "--force")[0] == 0 and prd.read_text() != "mine"

    empty = tmp_path / "empty"
    code, _, err = run(
        "speckit", "generate", "--name", "../evil", "--description", "x", "--out", str(empty)
    )
    assert code == 2
    assert err.splitlines() == [
        "error: name: '../evil' is not a safe path segment (1-64 letters, digits, '-' or '_', "
        "dots only between them; no '/', no '..')"
    ]
    assert not empty.exists()


def test_paths_the_file_system_cannot_name_are_one_error_line(tmp_path: Path) -> None:
    """Found by the hostile CLI suite: a 5,000-character --out raised OSError (name too long)
    from the overwrite check, and a path that long to validate raised it too."""
    too_long = "x" * 5000
    code, _, err = generate(Path(too_long))
    assert code == 2 and err.startswith("error: cannot write ") and len(err.splitlines()) == 1
    assert "File name too long" in err
    code, _, err = run("speckit", "validate", too_long)
    assert code == 2 and len(err.splitlines()) == 1 and "File name too long" in err


def test_validate_errors_exit_1_with_annotations_and_reports(tmp_path: Path) -> None:
    generate(tmp_path)
    tasks = tmp_path / "spec/acme-notes/tasks.md"
    tasks.write_text(tasks.read_text() + "- [ ] T001 Duplicate id\n")
    json_out, md_out = tmp_path / "r.json", tmp_path / "r.md"
    code, out, _ = run(
        "speckit",
        "validate",
        str(tmp_path),
        "--format",
        "github",
        "--json-out",
        str(json_out),
        "--md-out",
        str(md_out),
    )
    assert code == 1
    lines = tasks.read_text().splitlines()
    first = next(i for i, ln in enumerate(lines, 1) if ln.startswith("- [ ] T001 "))
    assert (
        f"::error file={tmp_path}/spec/acme-notes/tasks.md,line={len(lines)},"
        f"title=spec-kit task.duplicate::task T001 is defined twice (also line {first})"
    ) in out.splitlines()
    report = json.loads(json_out.read_text())
    jsonschema.validate(report, schema())
    assert report["summary"]["errors"] == 1
    assert "task.duplicate" in md_out.read_text()


def test_validate_bad_input_exits_2(tmp_path: Path) -> None:
    code, out, err = run("speckit", "validate", str(tmp_path / "missing"))
    assert (code, out) == (2, "")
    assert err == f"error: {tmp_path / 'missing'}: no such file or directory\n"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
    ).stdout


def test_changed_since_validates_only_the_changed_kits(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    generate(repo)
    run("speckit", "generate", "--name", "other", "--description", "Other.", "--out", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "two kits")
    base = _git(repo, "rev-parse", "HEAD").strip()
    prd = repo / "spec/other/prd.md"
    prd.write_text(prd.read_text().replace("## Assumptions", "## Notes"))
    _git(repo, "commit", "-qam", "break other")

    code, out, _ = run(
        "speckit", "validate", str(repo), "--changed-since", base, "--format", "json"
    )
    report = json.loads(out)
    assert code == 1
    assert [k["name"] for k in report["kits"]] == ["other"]
    assert [f["rule"] for f in report["findings"] if f["severity"] == "error"] == [
        "section.missing"
    ]

    code, out, _ = run(
        "speckit",
        "validate",
        str(repo),
        "--changed-since",
        base,
        "--include",
        "spec/acme-notes",
        "--format",
        "json",
    )
    assert [k["name"] for k in json.loads(out)["kits"]] == ["acme-notes", "other"]

    code, out, _ = run(
        "speckit", "validate", str(repo), "--changed-since", "HEAD", "--format", "json"
    )
    assert (code, json.loads(out)["kits"]) == (0, [])


def test_comment_command_posts_one_comment(tmp_path: Path) -> None:
    generate(tmp_path)
    report = tmp_path / "report.json"
    run("speckit", "validate", str(tmp_path), "--json-out", str(report))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    with fake_github() as gh:
        env = {
            "GITHUB_TOKEN": "t",
            "GITHUB_REPOSITORY": "acme/notes",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_API_URL": gh.url,
        }
        first = run("speckit", "comment", "--report", str(report), env=env)
        again = run("speckit", "comment", "--report", str(report), env=env)
        assert [m for m, _ in gh.calls()] == ["GET", "POST", "GET"]
        assert len(gh.comments) == 1
    assert first[0] == 0 and first[1].startswith("created comment 1001")
    assert again[0] == 0 and again[1].startswith("unchanged comment 1001")


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ACTIONLINT), "-color=false", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_workflows_pass_actionlint(tmp_path: Path) -> None:
    assert ACTIONLINT.exists(), "actionlint comes with the dev dependencies"
    user = tmp_path / "user.yml"
    user.write_text(workflow.render())
    done = _actionlint(REPO / workflow.WORKFLOW_PATH, user)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(workflow.render().replace("steps.validate.outcome", "steps.validat.outcome"))
    assert _actionlint(broken).returncode == 1  # the check can fail


def test_repository_workflow_is_the_rendered_template() -> None:
    assert (REPO / workflow.WORKFLOW_PATH).read_text() == workflow.render(**REPO_WORKFLOW_ARGS)  # type: ignore[arg-type]
    user = workflow.render(version="9.9.9")
    assert 'pip install "pulser-ops==9.9.9"' in user
    assert "pip install ." not in user


def test_init_writes_the_workflow_once(tmp_path: Path) -> None:
    code, out, err = run("init", "--dir", str(tmp_path))
    assert code == 0, err
    target = tmp_path / ".github/workflows/spec-kit.yml"
    assert f"created    {target}" in out.replace("\n", "")  # init's console may wrap
    assert target.read_text() == workflow.render()
    code, out, _ = run("init", "--dir", str(tmp_path))
    assert code == 0 and f"unchanged  {target}" in out.replace("\n", "")
    target.write_text("# mine\n")
    code, _, err = run("init", "--dir", str(tmp_path))
    assert code == 1 and str(target) in err.replace("\n", "")
    assert target.read_text() == "# mine\n"


def test_init_into_a_directory_the_file_system_cannot_name_is_one_error_line(
    tmp_path: Path,
) -> None:
    too_long = tmp_path / ("x" * 300)  # longer than a file name may be (255 bytes)
    code, out, err = run("init", "--dir", str(too_long))
    assert code == 1 and out == ""
    assert err.replace("\n", "").startswith("error: cannot read ") and "Traceback" not in err


def test_the_projects_own_spec_kit_is_valid() -> None:
    code, out, _ = run(
        "speckit", "validate", str(REPO / "spec" / "ops-control-room"), "--format", "json"
    )
    report = json.loads(out)
    assert code == 0, out
    assert report["summary"]["errors"] == 0
    assert report["summary"]["warnings"] == 0
    assert report["kits"][0]["counts"]["user_stories"] >= 5
