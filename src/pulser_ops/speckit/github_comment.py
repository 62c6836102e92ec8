"""Post the validation report as ONE pull request comment, updated on later pushes.

GitHub's REST API through httpx: list the pull request's issue comments (every page), find
ours by :data:`~.report.COMMENT_MARKER` (hidden in the Markdown), then ``PATCH`` it, or
``POST`` a new one when there is none. The oldest marked comment is the one kept up to date,
so a re-run never adds a second comment. The workflow's ``concurrency`` group keeps two runs of
one pull request from racing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from ..errors import ConfigurationError, InvalidInput, NotFound, PermissionDenied, TransportError
from .report import COMMENT_MARKER

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 50


@dataclass(frozen=True)
class Target:
    repo: str  # owner/name
    pr: int
    token: str
    api_url: str = DEFAULT_API


@dataclass(frozen=True)
class Posted:
    action: Literal["created", "updated", "unchanged"]
    comment_id: int
    url: str


def target_from_env(
    repo: str | None = None,
    pr: int | None = None,
    token: str | None = None,
    api_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Target:
    """Fill what is not given from the Actions environment: ``GITHUB_TOKEN``,
    ``GITHUB_REPOSITORY``, ``GITHUB_API_URL`` and the event payload at ``GITHUB_EVENT_PATH``."""
    e = os.environ if env is None else env
    token = token or e.get("GITHUB_TOKEN")
    if not token:
        raise ConfigurationError("no GitHub token: set GITHUB_TOKEN")
    repo = repo or e.get("GITHUB_REPOSITORY")
    if not repo or repo.count("/") != 1 or not all(repo.split("/")):
        raise ConfigurationError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
    if pr is None:
        pr = _pr_from_event(e.get("GITHUB_EVENT_PATH"))
    if pr <= 0:
        raise InvalidInput(f"pull request number must be positive (got {pr})")
    return Target(repo, pr, token, (api_url or e.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/"))


def _pr_from_event(path: str | None) -> int:
    if not path:
        raise ConfigurationError("no pull request: pass --pr N (or run on a pull_request event)")
    try:
        event: dict[str, Any] = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"cannot read the event payload {path}: {e}") from None
    number = (event.get("pull_request") or {}).get("number") or event.get("number")
    if not isinstance(number, int):
        raise ConfigurationError("the event is not a pull request: pass --pr N")
    return number


def _raise_for(resp: httpx.Response, what: str) -> None:
    if resp.is_success:
        return
    try:
        detail = str(resp.json().get("message", ""))
    except ValueError:
        detail = resp.text[:200]
    message = f"GitHub API: {what}: HTTP {resp.status_code}" + (f" ({detail})" if detail else "")
    if resp.status_code in (401, 403):
        raise PermissionDenied(
            message, hint="the token needs pull-requests: write (a fork's token is read-only)"
        )
    if resp.status_code == 404:
        raise NotFound(message)
    raise TransportError(message)


def find_comment(client: httpx.Client, t: Target) -> dict[str, Any] | None:
    """The oldest comment of the pull request that carries our marker."""
    url: str | None = f"{t.api_url}/repos/{t.repo}/issues/{t.pr}/comments"
    params: dict[str, Any] | None = {"per_page": PER_PAGE}
    for _ in range(MAX_PAGES):
        if url is None:
            return None
        resp = client.get(url, params=params)
        _raise_for(resp, "list comments")
        for comment in resp.json():
            if COMMENT_MARKER in (comment.get("body") or ""):
                found: dict[str, Any] = comment
                return found
        url = resp.links.get("next", {}).get("url")
        params = None  # the next link carries them
    return None


def post(body: str, t: Target, *, transport: httpx.BaseTransport | None = None) -> Posted:
    """Create or update our comment; ``body`` must contain the marker."""
    if COMMENT_MARKER not in body:
        body = f"{COMMENT_MARKER}\n{body}"
    headers = {
        "Authorization": f"Bearer {t.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "pulser-ops-spec-kit",
    }
    try:
        with httpx.Client(headers=headers, timeout=30.0, transport=transport) as client:
            existing = find_comment(client, t)
            if existing is None:
                resp = client.post(
                    f"{t.api_url}/repos/{t.repo}/issues/{t.pr}/comments", json={"body": body}
                )
                _raise_for(resp, "create comment")
                data = resp.json()
                return Posted("created", int(data["id"]), str(data.get("html_url", "")))
            if existing.get("body") == body:
                return Posted("unchanged", int(existing["id"]), str(existing.get("html_url", "")))
            resp = client.patch(
                f"{t.api_url}/repos/{t.repo}/issues/comments/{existing['id']}", json={"body": body}
            )
            _raise_for(resp, "update comment")
            data = resp.json()
            return Posted("updated", int(data["id"]), str(data.get("html_url", "")))
    except httpx.HTTPError as e:
        raise TransportError(f"GitHub API: {e}") from None
