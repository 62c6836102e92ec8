"""What only the Supabase side has: HTTP failures, JWT errors, and the mixed mode (database URL
for RPC, Supabase Storage for files). Runs under the ``supabase`` parameter only.

Failing servers are real sockets on 127.0.0.1 that count connections, so the retry rule
(reads and other ``retry_safe`` calls are retried, other writes are sent once) is observed on
the wire.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

import pulser_ops
from pulser_ops import PermissionDenied, TransportError
from pulser_ops.transport.base import RETRY_ATTEMPTS
from tests.contract.conftest import Env
from tests.contract.helpers import claimed, fetch, template
from tests.standin.auth import sign

# These tests are about the Supabase transport only: run the module's `env` for it alone.
pytestmark = pytest.mark.parametrize("env", ["supabase"], indirect=True)


@dataclass
class BadServer:
    """Accepts connections and answers each with ``reply`` (or just closes), counting them."""

    reply: bytes
    connections: int = 0
    url: str = ""
    _sock: socket.socket = field(default_factory=socket.socket)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> BadServer:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    if self.reply:
                        conn.sendall(self.reply)
                except OSError:
                    pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()


HTTP_502 = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 11\r\n"
            b"Connection: close\r\n\r\nbad gateway")


@pytest.fixture
def dropping() -> Iterator[BadServer]:
    with BadServer(reply=b"") as server:
        yield server


def test_dropped_connections_retry_reads_but_not_writes(env: Env, dropping: BadServer) -> None:
    assert env.sb is not None
    with pulser_ops.connect(supabase_url=dropping.url, supabase_key=env.sb.service_key) as c:
        with pytest.raises(TransportError) as err:
            c.runs.list()
        assert err.value.code == "transport_error"
        assert dropping.connections == RETRY_ATTEMPTS
        with pytest.raises(TransportError):
            c.runs.claim("w1")  # a lost claim response must not be repeated blindly
        assert dropping.connections == RETRY_ATTEMPTS + 1


def test_gateway_error_without_sqlstate_is_a_transport_error(env: Env) -> None:
    assert env.sb is not None
    with BadServer(reply=HTTP_502) as server, pulser_ops.connect(
        supabase_url=server.url, supabase_key=env.sb.service_key
    ) as c:
        with pytest.raises(TransportError) as err:
            c.sessions.create("x")
        assert type(err.value) is TransportError and "502" in str(err.value)
        assert server.connections == 1


def test_a_token_signed_by_someone_else_is_permission_denied(env: Env) -> None:
    assert env.sb is not None
    forged = sign("not-the-project-secret-but-long-enough-000", {"role": "service_role"})
    before = env.state()
    with pulser_ops.connect(supabase_url=env.sb.url, supabase_key=env.sb.anon_key,
                            access_token=forged) as c:
        with pytest.raises(PermissionDenied) as err:
            c.templates.upsert({"name": "forged"})
        assert err.value.sqlstate == "PGRST301"
    assert env.state() == before


def test_expired_user_token_is_permission_denied(env: Env) -> None:
    assert env.sb is not None
    expired = env.sb.user_token("00000000-0000-4000-8000-000000000009", ttl_seconds=-60)
    with pulser_ops.connect(supabase_url=env.sb.url, supabase_key=env.sb.anon_key,
                            access_token=expired) as c, pytest.raises(PermissionDenied):
        c.runs.list()


def test_database_url_with_supabase_storage(env: Env) -> None:
    """Both configured: RPC over the database, files in Supabase Storage."""
    assert env.sb is not None
    with pulser_ops.connect(env.db_url, supabase_url=env.sb.url,
                            supabase_key=env.sb.service_key) as c:
        assert c.transport.files.describe() == "supabase-storage://run-artifacts"
        template(c)
        run = claimed(c)
        art = c.artifacts.put(run.id, "mixed/out.bin", b"\x00mixed")
        assert c.artifacts.download(run.id, "mixed/out.bin") == b"\x00mixed"
        assert fetch(c.artifacts.signed_url(run.id, "mixed/out.bin")) == b"\x00mixed"
        http = c.transport.files._http  # type: ignore[attr-defined]
        assert http is not None and not http.is_closed
    assert http.is_closed  # closing the client closes Storage's HTTP client too
    assert (art.storage_path,) in env.sql(
        "select name from storage.objects where bucket_id = 'run-artifacts'")


async def test_unreachable_realtime_fails_the_feed_with_transport_error(
    env: Env, dropping: BadServer
) -> None:
    assert env.sb is not None
    ac = await pulser_ops.aconnect(supabase_url=dropping.url, supabase_key=env.sb.service_key)
    async with ac:
        with pytest.raises(TransportError):
            async with ac.transport.feed(frozenset({"runs"})):
                pass
