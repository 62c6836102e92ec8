"""The GitHub Actions workflows: actionlint on every one (shellcheck on their scripts), what
each must do, and their ``run:`` scripts that can run here, run as GitHub runs them.

What cannot run here (pushing images, publishing to PyPI, deploying to DigitalOcean) is checked
by its shape only; the deploy scripts it calls are run in test_deploy_scripts.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import pulser_ops
from pulser_ops import scaffold
from pulser_ops.cli import app
from tests.ship.support import (
    ROOT,
    VENV_BIN,
    load_workflow,
    run_step,
    step,
    steps,
    tool,
    workflow_files,
)


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck (from the venv) on PATH: actionlint then checks every run: script with it.
    return subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(ROOT)},
    )  # fmt: skip


def test_the_workflows_this_issue_ships_exist() -> None:
    names = {p.name for p in workflow_files()}
    assert {"ci.yml", "release.yml", "images.yml", "deploy-workers.yml"} <= names
    assert not any("vercel" in p.read_text().lower() for p in workflow_files())


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    out = _actionlint(path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_workflows_init_writes_pass_actionlint(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = [tmp_path / wf.target for wf in scaffold.WORKFLOWS]
    assert written and all(p.is_file() for p in written)
    out = _actionlint(*written)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_really_checks_scripts_and_expressions(tmp_path: Path) -> None:
    """The check above can fail: a script error (shellcheck) and an unknown context are found."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo $UNQUOTED_VAR > ${{ github.nonexistent }}\n"
        "      - run: |\n          cd $(dirname $0)\n"
    )
    out = _actionlint(bad)
    assert out.returncode == 1
    assert "shellcheck reported issue" in out.stdout and "nonexistent" in out.stdout


def test_no_expression_is_pasted_into_a_script() -> None:
    """`${{ ... }}` inside run: is a script-injection risk: values go through env: instead."""
    for path in workflow_files():
        for job_id, _, s in steps(load_workflow(path.name)):
            assert "${{" not in s.get("run", ""), f"{path.name} {job_id}: {s.get('name')}"


# --- ci.yml -----------------------------------------------------------------------------------


def _readme_test_command() -> str:
    found = re.search(r"^(\./scripts/test)\b", (ROOT / "README.md").read_text(), re.M)
    assert found, "the README names its test command"
    return found.group(1)


def test_ci_runs_the_readme_test_command_on_three_pythons_with_caches() -> None:
    wf = load_workflow("ci.yml")
    assert {"push", "pull_request"} <= set(wf["on"])
    job = wf["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert "${{ matrix.python }}" in job["container"]
    run = [s["run"] for s in job["steps"] if "run" in s]
    assert any(r.startswith(_readme_test_command()) and "--junitxml=test-artifacts/" in r for r in run)
    uses = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    assert uses["actions/setup-node"]["with"]["cache"] == "npm"
    assert uses["actions/setup-node"]["with"]["cache-dependency-path"].endswith("package-lock.json")
    assert uses["actions/cache"]["with"]["path"] == "~/.cache/pip"
    upload = uses["actions/upload-artifact"]
    assert upload["if"] == "always()" and upload["with"]["path"] == "test-artifacts/"


def test_screenshots_and_reports_go_where_ci_uploads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser tests write screenshots to test-artifacts/screenshots/, which is ignored by
    git and inside the folder ci.yml uploads."""
    from tests.browser.harness import artifacts_dir

    monkeypatch.delenv("PULSER_OPS_TEST_ARTIFACTS", raising=False)
    assert artifacts_dir() == ROOT / "test-artifacts" / "screenshots"
    assert "test-artifacts/" in (ROOT / ".gitignore").read_text().splitlines()


def test_ci_checks_the_built_distributions() -> None:
    job = load_workflow("ci.yml")["jobs"]["package"]
    assert step(load_workflow("ci.yml"), "package", "Build the wheel and the sdist")["run"] == (
        "scripts/build-dist"
    )
    install = step(load_workflow("ci.yml"), "package", "Install the wheel in a fresh venv and run it from elsewhere")["run"]
    for command in ("python -m venv", "--help", "db sql", "pulser-ops\" demo"):
        assert command in install, command
    assert job["container"].startswith("python:3.12"), "no system PostgreSQL: the wheel's own"


# --- release.yml ------------------------------------------------------------------------------


def test_release_builds_once_and_publishes_with_trusted_publishing() -> None:
    wf = load_workflow("release.yml")
    assert wf["on"] == {"push": {"tags": ["v*"]}}
    builders = [j for j, _, s in steps(wf) if "build-dist" in s.get("run", "")]
    assert builders == ["build"], "built once; the other jobs download that build"
    pypi = wf["jobs"]["pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    assert pypi["environment"]["name"] == "pypi"
    (publish,) = [s for s in pypi["steps"] if "gh-action-pypi-publish" in s.get("uses", "")]
    assert publish["uses"] == "pypa/gh-action-pypi-publish@release/v1"
    assert "with" not in publish, "no password, no token: OIDC trusted publishing"
    text = (ROOT / ".github/workflows/release.yml").read_text()
    assert "PYPI_TOKEN" not in text and "password" not in text
    assert wf["permissions"] == {"contents": "read"}
    gh = step(wf, "github-release", "Create the GitHub release")["run"]
    assert "--notes-file release-notes.md" in gh and "dist/*" in gh
    assert set(wf["jobs"]["github-release"]["needs"]) == {"build", "pypi", "images"}
    assert wf["jobs"]["images"]["uses"] == "./.github/workflows/images.yml"
    assert wf["jobs"]["deploy"]["uses"] == "./.github/workflows/deploy-workers.yml"


def test_release_notes_step_checks_the_tag_and_takes_the_changelog_section(
    tmp_path: Path,
) -> None:
    script = step(load_workflow("release.yml"), "build", "Check the tag against the version, and take the release notes")["run"]
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")  # the checkout, seen from the step's cwd
    env = {"RUNNER_TEMP": str(tmp_path)}
    ok = run_step(script, cwd=tmp_path, env={**env, "GITHUB_REF_NAME": f"v{pulser_ops.__version__}"})
    assert ok.returncode == 0, ok.stderr
    notes = (tmp_path / "release-notes.md").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert notes.strip() and notes.strip() in changelog
    assert not notes.startswith("## ") and "## [Unreleased]" not in notes

    wrong = run_step(script, cwd=tmp_path, env={**env, "GITHUB_REF_NAME": "v99.0.0"})
    assert wrong.returncode == 1
    assert f"tag v99.0.0 does not match the package version {pulser_ops.__version__}" in wrong.stderr


def test_the_version_lives_in_one_place() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.M)
    assert not re.search(r"^version = ", pyproject, re.M)
    assert '[tool.hatch.version]\npath = "src/pulser_ops/__init__.py"' in pyproject
    assert re.search(rf"^## \[{re.escape(pulser_ops.__version__)}\]", (ROOT / "CHANGELOG.md").read_text(), re.M)


# --- images.yml -------------------------------------------------------------------------------


def test_images_are_multi_arch_on_ghcr_with_version_and_commit_tags() -> None:
    wf = load_workflow("images.yml")
    assert "workflow_call" in wf["on"] and "push" in wf["on"]
    job = wf["jobs"]["image"]
    by = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    assert "docker/setup-buildx-action" in by and "docker/setup-qemu-action" in by
    build = by["docker/build-push-action"]["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["file"] == "deploy/Dockerfile" and build["context"] == "."
    meta = by["docker/metadata-action"]["with"]
    assert meta["images"].startswith("ghcr.io/")
    assert "type=semver,pattern={{version}}" in meta["tags"] and "type=sha" in meta["tags"]
    assert by["docker/login-action"]["with"]["registry"] == "ghcr.io"
    assert wf["permissions"]["packages"] == "write"


# --- deploy-workers.yml -----------------------------------------------------------------------


def test_deploy_is_environment_gated_with_every_secret_from_the_environment() -> None:
    wf = load_workflow("deploy-workers.yml")
    assert {"workflow_dispatch", "workflow_call"} == set(wf["on"])
    assert wf["on"]["workflow_dispatch"]["inputs"]["target"]["options"] == [
        "droplet",
        "app-platform",
        "doks",
    ]
    assert wf["on"]["workflow_dispatch"]["inputs"]["environment"]["type"] == "environment"
    for job_id, job in wf["jobs"].items():
        uses_secrets = "secrets." in yaml.safe_dump(job)
        assert not uses_secrets or job.get("environment") == "${{ inputs.environment }}", job_id
    targets: dict[str, Any] = {
        "droplet": "deploy/droplet/deploy.sh",
        "app-platform": "deploy/do/deploy.sh",
        "doks": "deploy/k8s/deploy.sh",
    }
    for target, script in targets.items():
        runs = [s for _, _, s in steps(wf) if s.get("if", "").endswith(f"'{target}'") and script in s.get("run", "")]
        assert len(runs) == 1, target
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is executable"


def _resolve(tmp_path: Path, tag: str, target: str) -> tuple[subprocess.CompletedProcess[str], str]:
    script = step(load_workflow("deploy-workers.yml"), "deploy", "Resolve the image")["run"]
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    env = {
        "TAG_INPUT": tag,
        "TARGET": target,
        "GITHUB_REPOSITORY_OWNER": "Pulser-Ops",
        "GITHUB_ENV": str(github_env),
        "RUNNER_TEMP": str(tmp_path),
    }
    return run_step(script, cwd=ROOT, env=env), github_env.read_text()


def test_deploy_resolves_the_release_tag_to_the_image(tmp_path: Path) -> None:
    out, exported = _resolve(tmp_path, "v1.2.3", "doks")
    assert out.returncode == 0, out.stderr
    assert exported.splitlines() == [
        "TAG=1.2.3",
        "PULSER_OPS_GHCR_OWNER=pulser-ops",
        "PULSER_OPS_IMAGE=ghcr.io/pulser-ops/pulser-ops",
    ]
    assert _resolve(tmp_path, "sha-abc1234", "droplet")[1].startswith("TAG=sha-abc1234\n")
    bad_tag, _ = _resolve(tmp_path, "1.0; rm -rf /", "doks")
    assert bad_tag.returncode == 1 and "::error::not an image tag" in bad_tag.stdout
    bad_target, _ = _resolve(tmp_path, "1.0", "vercel")
    assert bad_target.returncode == 1 and "::error::unknown target: vercel" in bad_target.stdout
