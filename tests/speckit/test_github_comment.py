"""One PR comment: created once, found again by its hidden marker, updated in place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulser_ops.errors import ConfigurationError, PermissionDenied
from pulser_ops.speckit import github_comment as gc
from pulser_ops.speckit.report import COMMENT_MARKER, to_markdown
from tests.speckit.github_server import FakeGitHub, fake_github
from tests.speckit.kits import check, kit, tree_of

LIST = "/repos/acme/notes/issues/7/comments"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with fake_github() as server:
        yield server


def target(gh: FakeGitHub) -> gc.Target:
    return gc.Target(repo=gh.repo, pr=gh.pr, token="ghs_test", api_url=gh.url)


def body() -> str:
    return to_markdown(check(tree_of(kit())))


def test_first_run_lists_then_creates(gh: FakeGitHub) -> None:
    gh.add("LGTM")
    posted = gc.post(body(), target(gh))
    assert gh.calls() == [("GET", f"{LIST}?per_page=100"), ("POST", LIST)]
    assert posted.action == "created"
    create = gh.requests[1]
    assert create.body == {"body": body()}
    assert create.headers["authorization"] == "Bearer ghs_test"
    assert create.headers["accept"] == "application/vnd.github+json"
    assert create.headers["x-github-api-version"] == "2022-11-28"
    assert len(gh.comments) == 2


def test_later_runs_update_the_marked_comment_found_on_a_later_page(gh: FakeGitHub) -> None:
    for i in range(150):
        gh.add(f"comment {i}")
    ours = gh.add(f"{COMMENT_MARKER}\nold report")
    gh.add(f"{COMMENT_MARKER}\na second marked comment is never touched")
    posted = gc.post(body(), target(gh))
    assert gh.calls() == [
        ("GET", f"{LIST}?per_page=100"),
        ("GET", f"{LIST}?page=2&per_page=100"),
        ("PATCH", f"/repos/acme/notes/issues/comments/{ours['id']}"),
    ]
    assert (posted.action, posted.comment_id) == ("updated", ours["id"])
    assert gh.requests[-1].body == {"body": body()}
    assert len(gh.comments) == 152  # no new comment


def test_same_report_again_changes_nothing(gh: FakeGitHub) -> None:
    gc.post(body(), target(gh))
    gh.requests.clear()
    posted = gc.post(body(), target(gh))
    assert gh.calls() == [("GET", f"{LIST}?per_page=100")]
    assert posted.action == "unchanged"


def test_read_only_token_is_a_clear_error(gh: FakeGitHub) -> None:
    gh.deny = True
    with pytest.raises(PermissionDenied, match=r"list comments: HTTP 403 .Resource not accessible"):
        gc.post(body(), target(gh))
    assert gh.calls() == [("GET", f"{LIST}?per_page=100")]


def test_target_from_the_actions_environment(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    t = gc.target_from_env(
        env={
            "GITHUB_TOKEN": "t",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_API_URL": "https://ghe.example/api/v3/",
        }
    )
    assert t == gc.Target("o/r", 42, "t", "https://ghe.example/api/v3")
    with pytest.raises(ConfigurationError, match="GITHUB_TOKEN"):
        gc.target_from_env(env={"GITHUB_REPOSITORY": "o/r"})
    with pytest.raises(ConfigurationError, match="pass --pr"):
        gc.target_from_env(env={"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "o/r"})
