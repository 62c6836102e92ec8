"""The clients a worker needs: one for run work, one (with its own pool) for heartbeats.

Why two: heartbeats must go out even when every connection of the main pool is busy with
slow calls of the run threads (large artifact uploads, a long claim under contention).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..client import Client
from ..config import Settings

ClientOrSettings = Client | Settings | str | None


@dataclass
class WorkerClients:
    main: Client
    heartbeat: Client
    #: A direct database URL when there is one (used for LISTEN wake-ups).
    database_url: str | None
    #: Clients we opened (and must close); a caller's client stays theirs.
    owned: tuple[Client, ...]

    def close(self) -> None:
        for c in self.owned:
            c.close()


def _connect(settings: Settings) -> Client:
    from .. import connect

    return connect(
        settings.database_url,
        supabase_url=settings.supabase_url,
        supabase_key=settings.supabase_key,
        access_token=settings.access_token,
        home=settings.home,
        storage_dir=settings.storage_dir,
        prepare=settings.prepare,
    )


def _second_client(client: Client) -> tuple[Client, bool]:
    """A client with its own small pool for heartbeats, when the transport allows it."""
    from ..transport.postgres import PostgresTransport

    t = client.transport
    if isinstance(t, PostgresTransport):
        clone = PostgresTransport(t.database_url, t.files, min_size=1, max_size=2)
        return Client(clone, description=client.description), True
    # HTTP transports have no long-held connections to starve; sharing is fine.
    return client, False


def open_clients(source: ClientOrSettings) -> WorkerClients:
    """Clients from a ready ``Client``, ``Settings``, a database URL, or the environment."""
    from .. import connect

    owned: list[Client] = []
    if isinstance(source, Client):
        main = source
    elif isinstance(source, Settings):
        main = _connect(source)
        owned.append(main)
    else:
        main = connect(source)
        owned.append(main)
    try:
        heartbeat, new = _second_client(main)
    except Exception:
        for c in owned:
            c.close()
        raise
    if new:
        owned.append(heartbeat)
    url = getattr(main.transport, "database_url", None)
    return WorkerClients(main, heartbeat, url if isinstance(url, str) else None, tuple(owned))
