"""docs/HTTP_API.md is true: every example in it runs here, in order, and gets what it shows.

The doc's examples are fenced blocks the test reads (the doc's "How to read the examples" says
the same for people):

- a ```` ```bash ```` block is run with bash against the stand-in (tests/standin) on a freshly
  migrated PostgreSQL, with ``SUPABASE_URL``, ``SERVICE_KEY``, ``PUBLISHABLE_KEY``,
  ``USER_TOKEN`` and ``USER_ID`` set; it must be followed by an ```` ```http ```` block, the
  response its ``curl -i`` prints: the status line, the headers shown (others may come too) and
  the JSON body;
- ```` ```json ws-send ```` and ```` ```json ws-receive ```` blocks are Realtime frames (Phoenix
  vsn 2.0.0) sent on, and awaited from, one socket opened as the user.

In what a block shows, ``$NAME`` is a value the examples share: known ones are substituted, and
the first response that shows a new one (``"id": "$RUN_ID"``) defines it for the examples after
it (exported to bash). Other ids and timestamps match any id and any timestamp; ``"<number>"``
any number, ``"<any>"`` any value, ``…`` inside a string any text; an object with a ``"…"`` key
may have more keys than it shows. ``PULSER_DOC_SHOW=1`` prints what each example really got.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from pulser_ops.errors import _BY_SQLSTATE
from tests.standin import StandIn

DOC = Path(__file__).resolve().parents[1] / "docs" / "HTTP_API.md"
SECRET = "http-api-doc-jwt-secret-with-at-least-32-bytes"
USER_ID = "7f3c2e0a-5b1d-4c8e-9a6f-2d4b8c1e0f93"

_BLOCK = re.compile(r"^```(\w+)(?:[ \t]+([\w-]+))?[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_TOKEN = re.compile(r"(\$[A-Z][A-Z0-9_]*|…|<uuid>|<timestamp>)")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)"


@dataclass(frozen=True)
class Block:
    lang: str
    tag: str | None
    text: str
    line: int


def blocks(text: str) -> list[Block]:
    return [Block(m[1], m[2], m[3], text.count("\n", 0, m.start()) + 1)
            for m in _BLOCK.finditer(text)]


class Mismatch(AssertionError):
    pass


def _string_pattern(expected: str, known: dict[str, str]) -> str:
    if re.fullmatch(_UUID, expected):
        return _UUID
    if re.fullmatch(_TIMESTAMP, expected):
        return _TIMESTAMP
    out = []
    for part in _TOKEN.split(expected):
        if part == "…":
            out.append(".*?")
        elif part == "<uuid>":
            out.append(_UUID)
        elif part == "<timestamp>":
            out.append(_TIMESTAMP)
        elif part.startswith("$") and part[1:] in known:
            out.append(re.escape(known[part[1:]]))
        elif part.startswith("$") and len(part) > 1:
            name = part[1:]
            out.append(f"(?P<{name}>.+?)" if f"(?P<{name}>" not in "".join(out)
                       else f"(?P={name})")
        else:
            out.append(re.escape(part))
    return "".join(out)


def match(expected: Any, actual: Any, known: dict[str, str], where: str = "body") -> None:
    """Check ``actual`` against what the doc shows, defining new ``$NAME``s in ``known``."""
    if expected == "<any>":
        return
    if expected == "<number>":
        if not isinstance(actual, int | float) or isinstance(actual, bool):
            raise Mismatch(f"{where}: expected a number, got {actual!r}")
        return
    if isinstance(expected, str):
        if not isinstance(actual, str):
            raise Mismatch(f"{where}: expected {expected!r}, got {actual!r}")
        found = re.fullmatch(_string_pattern(expected, known), actual, re.S)
        if found is None:
            raise Mismatch(f"{where}: expected {expected!r}, got {actual!r}")
        known.update({k: v for k, v in found.groupdict().items() if v is not None})
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{where}: expected an object, got {actual!r}")
        keys = set(expected) - {"…"}
        if "…" in expected:
            missing = keys - set(actual)
            if missing:
                raise Mismatch(f"{where}: missing keys {sorted(missing)} in {actual!r}")
        elif keys != set(actual):
            raise Mismatch(f"{where}: keys {sorted(actual)}, the doc shows {sorted(keys)}")
        for key in expected:
            if key != "…":
                match(expected[key], actual[key], known, f"{where}.{key}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise Mismatch(f"{where}: expected {len(expected)} items, got {actual!r}")
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            match(e, a, known, f"{where}[{i}]")
        return
    if expected != actual or type(expected) is not type(actual):
        raise Mismatch(f"{where}: expected {expected!r}, got {actual!r}")


def _split_http(text: str) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of an HTTP response as ``curl -i`` prints it."""
    text = text.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    while re.match(r"HTTP/\S+ 100\b", head):  # 100 Continue
        head, _, body = body.partition("\n\n")
    status_line, *lines = head.splitlines()
    status = int(status_line.split()[1])
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body.strip()


def check_response(shown: str, got: str, known: dict[str, str]) -> None:
    want_status, want_headers, want_body = _split_http(shown)
    status, headers, body = _split_http(got)
    if status != want_status:
        raise Mismatch(f"status {status}, the doc shows {want_status}; body: {body}")
    for name, value in want_headers.items():
        if name not in headers:
            raise Mismatch(f"no {name} header in {headers}")
        match(value, headers[name], known, f"header {name}")
    if not want_body:
        if body:
            raise Mismatch(f"expected no body, got {body!r}")
        return
    match(json.loads(want_body), json.loads(body), known)


def substitute(text: str, known: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        name = m[0][1:]
        if name not in known:
            raise Mismatch(f"{m[0]} is used before any example defines it")
        return known[name]

    return re.sub(r"\$[A-Z][A-Z0-9_]*", value, text)


class Socket:
    """One Realtime socket (vsn 2.0.0) for the ws-send / ws-receive blocks."""

    def __init__(self, sb: StandIn) -> None:
        url = sb.url.replace("http://", "ws://")
        self.ws: ClientConnection = connect(
            f"{url}/realtime/v1/websocket?apikey={sb.anon_key}&vsn=2.0.0")
        self.pending: list[Any] = []

    def receive(self, shown: Any, known: dict[str, str]) -> Any:
        """The first frame (kept from before, or arriving within 20 s) that matches ``shown``;
        frames of the same transaction may arrive in any order."""
        for frame in self.pending:
            try:
                match(shown, frame, dict(known))
            except Mismatch:
                continue
            self.pending.remove(frame)
            match(shown, frame, known)
            return frame
        while True:
            try:
                frame = json.loads(self.ws.recv(timeout=20))
            except TimeoutError:
                raise Mismatch(f"no frame like {shown!r}; others: {self.pending}") from None
            try:
                match(shown, frame, dict(known))
            except Mismatch:
                self.pending.append(frame)
                continue
            match(shown, frame, known)
            return frame


@pytest.fixture
def sb(db_url: str, tmp_path: Path) -> Iterator[StandIn]:
    with StandIn(db_url, SECRET, tmp_path / "storage") as standin:
        yield standin


def test_every_example_in_the_http_api_doc_runs_and_gets_what_it_shows(
    sb: StandIn, tmp_path: Path
) -> None:
    show = os.environ.get("PULSER_DOC_SHOW") == "1"
    known = {"SUPABASE_URL": sb.url, "SERVICE_KEY": sb.service_key,
             "PUBLISHABLE_KEY": sb.anon_key, "USER_TOKEN": sb.user_token(USER_ID),
             "USER_ID": USER_ID}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    todo = blocks(DOC.read_text())
    assert sum(b.lang == "bash" for b in todo) >= 20
    socket: Socket | None = None
    ran = 0
    try:
        for i, block in enumerate(todo):
            where = f"{DOC.name}:{block.line}"
            if block.lang == "bash":
                shown = todo[i + 1] if i + 1 < len(todo) else None
                assert shown is not None and shown.lang == "http", (
                    f"{where}: a bash example must be followed by its ```http response")
                done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + block.text],
                                      env={**env, **known}, cwd=tmp_path, capture_output=True,
                                      text=True, timeout=60, check=False)
                if show:
                    print(f"--- {where}\n{done.stdout}{done.stderr}")
                assert done.returncode == 0, f"{where}: {done.stderr}"
                try:
                    check_response(shown.text, done.stdout, known)
                except Mismatch as e:
                    raise AssertionError(f"{where}: {e}\n{done.stdout}") from None
                ran += 1
            elif block.lang == "json" and block.tag == "ws-send":
                socket = socket or Socket(sb)
                socket.ws.send(substitute(block.text, known))
            elif block.lang == "json" and block.tag == "ws-receive":
                assert socket is not None, f"{where}: ws-receive before any ws-send"
                try:
                    frame = socket.receive(json.loads(block.text), known)
                except Mismatch as e:
                    raise AssertionError(f"{where}: {e}") from None
                if show:
                    print(f"--- {where}\n{json.dumps(frame)}")
    finally:
        if socket is not None:
            socket.ws.close()
    assert ran == sum(b.lang == "bash" for b in todo)


def test_the_error_table_lists_every_code_the_sdk_maps() -> None:
    """Each SQLSTATE / PostgREST code errors.py maps has its row, with the same SDK code."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 4:
            for code in re.findall(r"`([0-9A-Z]{5,8})`", cells[0]):
                rows[code] = cells[2]
    for code, cls in _BY_SQLSTATE.items():
        assert code in rows, f"{code} ({cls.__name__}) has no row in the error table"
        assert f"`{cls.code}`" in rows[code], f"{code}: the table says {rows[code]}"


def test_the_matcher_is_strict() -> None:
    """The checks above can fail: a wrong value, a missing or extra key, a changed variable."""
    known = {"RUN_ID": str(uuid.uuid4())}
    match({"id": "$RUN_ID", "n": 1}, {"id": known["RUN_ID"], "n": 1}, known)
    for expected, actual in [
        ({"id": "$RUN_ID"}, {"id": str(uuid.uuid4())}),
        ({"n": 1}, {"n": 2}),
        ({"n": 1}, {"n": 1, "extra": 0}),
        ({"n": 1, "…": "…"}, {"m": 1}),
        ([1, 2], [1]),
        ("2026-12-01T10:00:00+00:00", "yesterday"),
        ("<number>", "1"),
        ({"n": 1}, {"n": True}),
    ]:
        with pytest.raises(Mismatch):
            match(expected, actual, dict(known))
    fresh: dict[str, str] = {}
    match("/object/upload/sign/b/x.csv?token=$TOKEN", "/object/upload/sign/b/x.csv?token=abc",
          fresh)
    assert fresh == {"TOKEN": "abc"}
