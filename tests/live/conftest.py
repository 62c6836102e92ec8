"""The live suite: the SDK against a real Supabase project, recorded with pytest-vcr.

- With ``SUPABASE_URL`` and a secret (or service role) key set and ``--record-mode=once``, a test
  whose cassette is missing runs against the project and records one in ``cassettes/``.
- Otherwise a test replays its cassette without any network, or skips, saying why.
- Keys and JWTs never reach a cassette: ``apikey``/``Authorization``/cookies are dropped
  (``filter_headers``), the project's host becomes ``LIVE_HOST``, and every JWT or ``sb_`` key
  in a URL or a body is replaced (``before_record_request``/``before_record_response``, which
  vcrpy also applies to requests it matches on replay).

Realtime (websockets) cannot be recorded: tests that subscribe need the project itself.
docs/SUPABASE.md says how a maintainer records and refreshes the cassettes. Commit only cassettes
recorded from a real project: never write one by hand, never record one from the stand-in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import pulser_ops

CASSETTES = Path(__file__).parent / "cassettes"
#: The host every recorded request is rewritten to (the project's stays out of the cassettes).
LIVE_HOST = "live-project.supabase.co"
#: JWTs (access tokens, signed URL tokens) and the new API keys.
SECRETS = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+|sb_(?:secret|publishable)_[\w-]+")
FILTERED_HEADERS = ["apikey", "authorization", "cookie", "set-cookie", "x-client-info"]
SERVICE_KEYS = ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY")


def _scrub(text: str) -> str:
    return SECRETS.sub("<redacted>", text)


def scrub_request(request: Any) -> Any:
    parts = urlsplit(request.uri)
    request.uri = _scrub(urlunsplit(parts._replace(netloc=LIVE_HOST, scheme="https")))
    if isinstance(request.body, bytes):
        request.body = _scrub(request.body.decode("utf-8", "replace")).encode()
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("body", {}).get("string")
    if isinstance(body, bytes):
        response["body"]["string"] = _scrub(body.decode("utf-8", "replace")).encode()
    for name in list(response.get("headers", {})):
        if name.lower() in FILTERED_HEADERS:
            del response["headers"][name]
    return response


@pytest.fixture(scope="module")
def vcr_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    mode = request.config.getoption("--record-mode") or "none"
    return {
        "record_mode": mode,
        "filter_headers": FILTERED_HEADERS,
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
        # Bodies hold timestamps and ids of the moment: requests match by where they go, and
        # identical ones are played back in the order they were recorded.
        "match_on": ["method", "scheme", "host", "path", "query"],
    }


@dataclass(frozen=True)
class Project:
    """Where the live tests point: the real project (recording), or the placeholder a
    cassette was recorded under (replaying)."""

    url: str
    key: str
    recording: bool

    def connect(self, **kwargs: Any) -> pulser_ops.Client:
        return pulser_ops.connect(supabase_url=self.url, supabase_key=self.key, **kwargs)


def _credentials() -> tuple[str, str] | None:
    url = os.environ.get("SUPABASE_URL")
    key = next((os.environ[k] for k in SERVICE_KEYS if os.environ.get(k)), None)
    return (url, key) if url and key else None


@pytest.fixture
def project(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The project, or a skip that says what is missing. A test that subscribes (Realtime)
    marks itself ``needs_project``: it cannot be replayed."""
    creds = _credentials()
    mode = request.config.getoption("--record-mode")
    cassette = CASSETTES / f"{request.node.name}.yaml"
    for name in ("PULSER_OPS_DATABASE_URL", "PULSER_OPS_ACCESS_TOKEN", "PULSER_OPS_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    if request.node.get_closest_marker("needs_project"):
        if creds is None:
            pytest.skip("needs a real project (Realtime cannot be replayed): set SUPABASE_URL"
                        " and SUPABASE_SECRET_KEY (docs/SUPABASE.md, 'The live suite')")
        yield Project(creds[0], creds[1], recording=True)
        return
    if cassette.exists():
        url, key = creds or (f"https://{LIVE_HOST}", "sb_secret_replayed-from-a-cassette")
        yield Project(url, key, recording=False)
        return
    if creds is None:
        pytest.skip(f"no cassette {cassette.relative_to(CASSETTES.parent.parent.parent)} and no"
                    " SUPABASE_URL with SUPABASE_SECRET_KEY to record one (docs/SUPABASE.md,"
                    " 'The live suite')")
    if mode in (None, "none"):
        pytest.skip(f"no cassette {cassette.name}: run with --record-mode=once to record it")
    yield Project(creds[0], creds[1], recording=True)
