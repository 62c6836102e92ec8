"""Shared steps of the page tests: the board over a client, through ``httpx.ASGITransport``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from pulser_ops.web import ControlRoom, WebConfig, create_app
from tests.contract.conftest import SERVICE, Caller, Env

#: Headers a browser sends with a form post from our own page.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://board"}


@dataclass
class Board:
    http: httpx.AsyncClient
    room: ControlRoom

    async def get(self, path: str, **kw: object) -> httpx.Response:
        return await self.http.get(path, **kw)  # type: ignore[arg-type]

    async def post(self, path: str, data: object = None, **kw: object) -> httpx.Response:
        headers = {**SAME_ORIGIN, **kw.pop("headers", {})}  # type: ignore[dict-item]
        return await self.http.post(path, data=data, headers=headers, **kw)  # type: ignore[arg-type]


def error_slot(html: str, slot: str) -> str:
    """The messages an editor shows under field ``slot`` (its ``err-<slot>`` box)."""
    m = re.search(rf'id="err-{re.escape(slot)}"[^>]*>((?:<div>.*?</div>)*)</div>', html, re.S)
    assert m, slot
    return m.group(1)


@asynccontextmanager
async def board(
    env: Env, who: Caller = SERVICE, config: WebConfig | None = None
) -> AsyncIterator[Board]:
    """The board over ``who``'s client (the server's identity in a local deployment)."""
    async with env.aclient(who) as ac:
        room = ControlRoom(ac, config=config)
        app = create_app(room=room)
        async with room:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://board") as http:
                yield Board(http, room)
