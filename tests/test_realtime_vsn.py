"""The stand-in's Realtime socket speaks both Phoenix protocol versions, chosen by ``vsn``.

realtime-py 2.34.1 speaks 1.0.0 (JSON objects); supabase-js speaks 2.0.0 by default (JSON
arrays ``[join_ref, ref, topic, event, payload]``, and binary frames for broadcasts). Driven
here frame by frame with a plain WebSocket client, so the framing itself is what is checked;
supabase-js on 2.0.0 is driven by the TypeScript examples' tests (tests/typescript).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import websockets

from tests.standin import StandIn

SECRET = "realtime-vsn-test-secret-with-at-least-32-bytes"


@pytest.fixture
def sb(db_url: str, tmp_path: Path) -> Iterator[StandIn]:
    with StandIn(db_url, SECRET, tmp_path / "storage") as standin:
        yield standin


def _socket_url(sb: StandIn, vsn: str | None) -> str:
    url = sb.url.replace("http://", "ws://") + f"/realtime/v1/websocket?apikey={sb.service_key}"
    return url + (f"&vsn={vsn}" if vsn else "")


def _frame(vsn: str, join_ref: str | None, ref: str | None, topic: str, event: str,
           payload: Any) -> str:
    if vsn == "2.0.0":
        return json.dumps([join_ref, ref, topic, event, payload])
    return json.dumps({"join_ref": join_ref, "ref": ref, "topic": topic, "event": event,
                       "payload": payload})


def _parse(vsn: str, raw: str | bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if vsn == "2.0.0":
        assert isinstance(data, list) and len(data) == 5, data
        return dict(zip(("join_ref", "ref", "topic", "event", "payload"), data, strict=True))
    assert isinstance(data, dict), data
    return data


async def _next(ws: Any, vsn: str, event: str) -> dict[str, Any]:
    while True:
        msg = _parse(vsn, await asyncio.wait_for(ws.recv(), 20))
        if msg["event"] == event:
            return msg


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_join_heartbeat_and_changes_in_either_framing(sb: StandIn, db_url: str,
                                                            vsn: str) -> None:
    async with websockets.connect(_socket_url(sb, vsn)) as ws:
        binding = {"event": "*", "schema": "public", "table": "workers", "filter": "id=eq.w2"}
        await ws.send(_frame(vsn, "1", "1", "realtime:workers", "phx_join",
                             {"config": {"postgres_changes": [binding]},
                              "access_token": sb.service_key}))
        reply = await _next(ws, vsn, "phx_reply")
        assert (reply["join_ref"], reply["ref"], reply["topic"]) == ("1", "1", "realtime:workers")
        assert reply["payload"]["status"] == "ok"
        [echo] = reply["payload"]["response"]["postgres_changes"]
        assert {k: echo[k] for k in binding} == binding
        await _next(ws, vsn, "system")

        await ws.send(_frame(vsn, None, "2", "phoenix", "heartbeat", {}))
        beat = await _next(ws, vsn, "phx_reply")
        assert (beat["ref"], beat["topic"], beat["payload"]["status"]) == ("2", "phoenix", "ok")

        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("insert into public.workers (id, host) values ('w1', 'h1'), ('w2', 'h2')")
        change = await _next(ws, vsn, "postgres_changes")
        assert change["topic"] == "realtime:workers"
        assert change["payload"]["ids"] == [echo["id"]]
        data = change["payload"]["data"]
        assert (data["type"], data["table"], data["record"]["id"]) == ("INSERT", "workers", "w2")
        assert data["record"]["host"] == "h2"


async def test_a_binary_broadcast_push_is_acknowledged(sb: StandIn) -> None:
    """supabase-js 2.0.0 sends ``channel.send({type: 'broadcast', event, payload})`` as a binary
    frame; the stand-in acknowledges it (broadcast itself is not implemented)."""
    async with websockets.connect(_socket_url(sb, "2.0.0")) as ws:
        await ws.send(json.dumps(["1", "1", "realtime:room", "phx_join", {"config": {}}]))
        assert (await _next(ws, "2.0.0", "phx_reply"))["payload"]["status"] == "ok"
        join_ref, ref, topic, event, meta = b"1", b"7", b"realtime:room", b"ping", b""
        header = bytes([3, len(join_ref), len(ref), len(topic), len(event), len(meta), 1])
        await ws.send(header + join_ref + ref + topic + event + meta + b'{"n": 1}')
        ack = await _next(ws, "2.0.0", "phx_reply")
        assert (ack["join_ref"], ack["ref"], ack["topic"]) == ("1", "7", "realtime:room")
        assert ack["payload"]["status"] == "ok"


async def test_an_unknown_protocol_version_is_refused(sb: StandIn) -> None:
    with pytest.raises(websockets.exceptions.WebSocketException):
        async with websockets.connect(_socket_url(sb, "3.0.0")) as ws:
            await ws.recv()


async def test_no_vsn_means_1_0_0(sb: StandIn) -> None:
    async with websockets.connect(_socket_url(sb, None)) as ws:
        await ws.send(_frame("1.0.0", None, "5", "phoenix", "heartbeat", {}))
        assert _parse("1.0.0", await asyncio.wait_for(ws.recv(), 20))["ref"] == "5"
