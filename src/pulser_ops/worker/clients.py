"""The clients a worker needs: the caller's, one (with its own pool) for heartbeats, and the
event loop's own.

Why a heartbeat client: heartbeats must go out even when every connection of the main pool is
busy with slow calls (large artifact uploads, a long claim under contention).

Why a loop client (:func:`open_link`): the event loop claims, completes and talks to the
control plane with async calls. With a direct database URL it gets its own async pool; over
any other transport (Supabase over HTTP, a wrapper a caller built) it uses that very transport,
one call per thread hop, so the worker sends nothing around it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..client import AsyncClient, Client
from ..config import Settings
from ..transport.threaded import ThreadedTransport

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


#: The event loop's own pool: claims, completions, checks between steps, releases.
LINK_POOL = (1, 4)


async def open_link(client: Client) -> AsyncClient:
    """The event loop's client for ``client``'s control plane. Closing it leaves ``client``
    (and its file store) open."""
    from ..transport.postgres import AsyncPostgresTransport, PostgresTransport

    t = client.transport
    if isinstance(t, PostgresTransport):
        link = await AsyncPostgresTransport.open(
            t.database_url,
            t.files,
            min_size=LINK_POOL[0],
            max_size=LINK_POOL[1],
            prepare=t.prepare,
            owns_files=False,
        )
        return AsyncClient(link, description=client.description)
    return AsyncClient(ThreadedTransport(t), description=client.description)
