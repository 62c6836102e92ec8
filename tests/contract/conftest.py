"""One contract, two transports: every test in this package runs once over a direct PostgreSQL
URL and once over Supabase (the stand-in: real PostgREST-style HTTP, Storage and Realtime
served from the same kind of database), with the same assertions.

Per module and transport there is one migrated database (and, for Supabase, one stand-in on
it); every test starts from an emptied control plane (``reset``), so tests do not see each
other's runs while paying for a stand-in only once per module.

Callers other than the service role work over both transports: over Supabase they carry a
user's JWT; over PostgreSQL the session is opened with the same ``role`` and
``request.jwt.claims`` settings PostgREST would set, so the same RLS and checks apply.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

import pulser_ops
from pulser_ops import AsyncClient, Client
from tests.standin import StandIn
from tests.standin import auth as standin_auth
from tests.support.databases import MigratedTemplate

SECRET = "contract-suite-jwt-secret-with-at-least-32-bytes"
TRANSPORTS = ("postgres", "supabase")

#: Environment variables that would override the explicit arguments the suite passes.
_ENV_VARS = (
    "PULSER_OPS_DATABASE_URL",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_SECRET_KEY",
    "SUPABASE_PUBLISHABLE_KEY",
    "SUPABASE_ANON_KEY",
    "PULSER_OPS_ACCESS_TOKEN",
    "PULSER_OPS_REFRESH_TOKEN",
    "PULSER_OPS_MAX_ROWS",
    "PULSER_OPS_HOME",
    "PULSER_OPS_STORAGE_DIR",
)

#: Tables of the control plane, each with the key that orders its rows in a snapshot.
STATE_TABLES = {
    "public.runs": "id",
    "public.run_events": "run_id, seq",
    "public.run_steps": "run_id, attempt, idx",
    "public.artifacts": "id",
    "public.run_templates": "name",
    "public.sessions": "id",
    "public.workers": "id",
    "public.lanes": "id",
    "public.spec_docs": "id",
    "public.alerts": "id",
    "public.run_schedules": "name",
}


@dataclass(frozen=True)
class Caller:
    """Who calls: the service role, an operator or admin (a user JWT), anon, or ``nouser``: a
    signed, authenticated JWT that names no user (no ``sub``)."""

    kind: str
    sub: str | None = None

    def claims(self) -> dict[str, Any]:
        if self.kind == "anon":
            return {"role": "anon"}
        app = {"ops_role": "admin"} if self.kind == "admin" else {}
        out = {"role": "authenticated", "aud": "authenticated", "sub": self.sub,
               "app_metadata": app}
        return {k: v for k, v in out.items() if v is not None}


SERVICE = Caller("service")
ANON = Caller("anon")
NO_USER = Caller("nouser")


@dataclass
class Env:
    kind: str
    db_url: str
    storage_dir: Path
    sb: StandIn | None
    _conn: psycopg.Connection[Any] | None = None
    _clients: dict[Caller, Client] = field(default_factory=dict)

    def _kwargs(self, who: Caller) -> dict[str, Any]:
        if self.sb is None:
            url = self.db_url
            if who.kind != "service":
                role = "anon" if who.kind == "anon" else "authenticated"
                claims = json.dumps(who.claims(), separators=(",", ":"))
                options = f"-c role={role} -c request.jwt.claims={claims}"
                url = f"{url}?options={quote(options)}"
            return {"database_url": url, "storage_dir": self.storage_dir,
                    "home": self.storage_dir / "home"}
        if who.kind == "service":
            return {"supabase_url": self.sb.url, "supabase_key": self.sb.service_key}
        token = None
        if who.kind == "nouser":
            now = int(time.time())
            token = standin_auth.sign(self.sb.jwt_secret,
                                      {**who.claims(), "iat": now, "exp": now + 3600})
        elif who.kind != "anon":
            assert who.sub is not None
            app = {"ops_role": "admin"} if who.kind == "admin" else {}
            token = self.sb.user_token(who.sub, app_metadata=app)
        return {"supabase_url": self.sb.url, "supabase_key": self.sb.anon_key,
                "access_token": token}

    def client(self, who: Caller = SERVICE) -> Client:
        return pulser_ops.connect(**self._kwargs(who))

    def shared_client(self, who: Caller = SERVICE) -> Client:
        """A client kept open for the whole module (closed by the ``env`` fixture)."""
        if who not in self._clients:
            self._clients[who] = self.client(who)
        return self._clients[who]

    @asynccontextmanager
    async def aclient(self, who: Caller = SERVICE) -> AsyncIterator[AsyncClient]:
        client = await pulser_ops.aconnect(**self._kwargs(who))
        try:
            yield client
        finally:
            await client.close()

    # --- the database as it is, for "nothing changed" checks ----------------------------------
    def state(self) -> dict[str, Any]:
        """Every row of the control plane, the artifact objects and the files on disk."""
        parts = [
            f"'{table}', (select coalesce(jsonb_agg(to_jsonb(t) order by {key}), '[]')"
            f" from {table} t)"
            for table, key in STATE_TABLES.items()
        ]
        parts.append(
            "'storage.objects', (select coalesce(jsonb_agg(name order by name), '[]')"
            " from storage.objects where bucket_id = 'run-artifacts')"
        )
        [(out,)] = self.sql(f"select jsonb_build_object({', '.join(parts)})")
        out["files"] = sorted(
            [str(p.relative_to(self.storage_dir)), p.stat().st_size]
            for p in self.storage_dir.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        return dict(out)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.db_url, autocommit=True)
        return self._conn

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self._connection().execute(query.encode(), params)
        return cur.fetchall() if cur.description else []

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        if self._conn is not None:
            self._conn.close()

    def reset(self) -> None:
        self.sql(
            "truncate public.runs, public.run_templates, public.sessions, public.workers,"
            " public.spec_docs, public.alerts cascade;"
            " update public.lanes set paused = false, max_running = null;"
        )


@pytest.fixture(scope="module", params=TRANSPORTS)
def env(
    request: pytest.FixtureRequest,
    migrated_template: MigratedTemplate,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    """A migrated database per module and transport, behind the stand-in for ``supabase``."""
    kind: str = request.param
    url = migrated_template.clone(prefix="c")
    storage_dir = tmp_path_factory.mktemp(f"contract-{kind}")
    try:
        if kind == "postgres":
            e = Env(kind, url, storage_dir, None)
            yield e
            e.close()
        else:
            with StandIn(url, SECRET, storage_dir) as sb:
                e = Env(kind, url, storage_dir, sb)
                yield e
                e.close()
    finally:
        migrated_template.cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(scope="module", autouse=True)
def _no_env_overrides(env: Env) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in _ENV_VARS:
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def _clean(env: Env, request: pytest.FixtureRequest) -> None:
    """An empty control plane per test, unless the module shares one world on purpose
    (``RESET_EACH_TEST = False``: its tests must not change anything, and check that)."""
    if getattr(request.module, "RESET_EACH_TEST", True):
        env.reset()


@pytest.fixture
def client(env: Env) -> Iterator[Client]:
    """The service-role client (workers, sweeper)."""
    with env.client() as c:
        yield c
