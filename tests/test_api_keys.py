"""Both styles of Supabase API key, through everything that takes one: the SDK (calls, Storage,
subscriptions), an operator's public key with their JWT, the CLI, ``doctor --smoke``, a worker
and the sweeper.

- legacy: JWT keys, ``SUPABASE_SERVICE_ROLE_KEY`` / ``SUPABASE_ANON_KEY``;
- new: ``sb_secret_...`` / ``sb_publishable_...`` in ``SUPABASE_SECRET_KEY`` /
  ``SUPABASE_PUBLISHABLE_KEY``. They are not JWTs: the gateway (the stand-in's, like
  Supabase's) turns them into one for the services, and Realtime treats an ``sb_`` access token
  as "the socket's own key".

Every process gets its configuration from the environment only, as in a deployment.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

import pulser_ops
from pulser_ops import doctor
from tests.cli.helpers import CLEAN_ENV, GREET, PULSER_OPS_EXE, Cli, assert_ok
from tests.contract.subs import Collector, run_versions
from tests.standin import StandIn
from tests.support.databases import MigratedTemplate
from tests.support.standins import migrated_standin

SECRET = "api-keys-suite-jwt-secret-with-at-least-32-bytes"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Keys:
    style: str
    service_var: str
    service: str
    public_var: str
    public: str

    def service_env(self, sb: StandIn) -> dict[str, str]:
        return {"SUPABASE_URL": sb.url, self.service_var: self.service}

    def public_env(self, sb: StandIn) -> dict[str, str]:
        return {"SUPABASE_URL": sb.url, self.public_var: self.public}


@pytest.fixture(scope="module")
def sb(migrated_template: MigratedTemplate, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[StandIn]:
    with migrated_standin(migrated_template, tmp_path_factory, prefix="keys",
                          secret=SECRET) as standin:
        yield standin


@pytest.fixture(params=["legacy", "new"])
def keys(request: pytest.FixtureRequest, sb: StandIn) -> Keys:
    if request.param == "legacy":
        return Keys("legacy", "SUPABASE_SERVICE_ROLE_KEY", sb.service_key,
                    "SUPABASE_ANON_KEY", sb.anon_key)
    return Keys("new", "SUPABASE_SECRET_KEY", sb.secret_key,
                "SUPABASE_PUBLISHABLE_KEY", sb.publishable_key)


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ambient configuration; tests set what a deployment would."""
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PULSER_OPS_HOME", raising=False)
    return monkeypatch


def _process_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSER_OPS_", "SUPABASE_"))}
    return {**env, **extra}


async def test_the_sdk_works_with_either_key(sb: StandIn, keys: Keys,
                                             environ: pytest.MonkeyPatch) -> None:
    for name, value in keys.service_env(sb).items():
        environ.setenv(name, value)
    with pulser_ops.connect() as svc:
        svc.templates.upsert(GREET)
        run = svc.runs.create("greet", {"name": keys.style})
        [held] = svc.runs.claim(f"w-{keys.style}", lanes="B")
        svc.artifacts.put(run.id, "out/k.bin", b"key " + keys.style.encode(),
                          attempt=held.attempt)
        assert svc.artifacts.download(run.id, "out/k.bin") == b"key " + keys.style.encode()
        async with await pulser_ops.aconnect() as ac:
            got = Collector(ac.subscribe(runs=[run.id]))
            try:
                await got.until(lambda xs: run_versions(xs, run.id) != [], "the run")
                done = await asyncio.to_thread(svc.runs.complete, run.id, f"w-{keys.style}",
                                               held.attempt, "succeeded")
                await got.until(lambda xs: done.version in run_versions(xs, run.id), "the end")
            finally:
                await got.close()


async def test_an_operator_with_the_public_key_and_a_token(sb: StandIn, keys: Keys,
                                                           environ: pytest.MonkeyPatch) -> None:
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as svc:
        svc.templates.upsert(GREET)
    for name, value in keys.public_env(sb).items():
        environ.setenv(name, value)
    sub = "00000000-0000-4000-8000-0000000000a1" if keys.style == "legacy" else (
        "00000000-0000-4000-8000-0000000000a2")
    environ.setenv("PULSER_OPS_ACCESS_TOKEN", sb.user_token(sub))
    with pulser_ops.connect() as op:
        mine = op.runs.create("greet", {"name": "mine"})
        assert {str(r.owner_id) for r in op.runs.list()} == {sub}
        async with await pulser_ops.aconnect() as ac:
            got = Collector(ac.subscribe(runs=True))
            try:
                await asyncio.to_thread(op.runs.cancel, mine.id)
                await got.until(lambda xs: any(c.run and c.run.status == "cancelled"
                                               for c in xs), "my cancelled run")
            finally:
                await got.close()
    environ.delenv("PULSER_OPS_ACCESS_TOKEN")
    with pulser_ops.connect() as anon, pytest.raises(pulser_ops.PermissionDenied):
        anon.runs.list()  # the public key alone is anon: it may not read runs


def test_the_cli_and_doctor_work_with_either_key(sb: StandIn, keys: Keys, tmp_path: Path) -> None:
    cli = Cli({**keys.service_env(sb), "PULSER_OPS_HOME": str(tmp_path / "unused")})
    template = tmp_path / "greet.json"
    template.write_text(json.dumps(GREET))
    assert_ok(cli("templates", "apply", str(template)))
    run_id = assert_ok(cli("enqueue", "greet", "-P", "name=cli")).stdout.split()[0]
    assert run_id in assert_ok(cli("runs", "ls")).stdout
    doc = assert_ok(cli("doctor", "--smoke"))
    assert "service role" in doc.stdout and "fail" not in doc.stdout
    assert not (tmp_path / "unused").exists()


def test_doctor_checks_pass_with_either_key(sb: StandIn, keys: Keys) -> None:
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=keys.service) as c:
        checks, info = doctor.run_checks(c)
        assert info is not None and info["caller"] == "service"
        assert [ch.name for ch in checks if ch.status == "fail"] == []


def test_a_worker_and_the_sweeper_work_with_either_key(sb: StandIn, keys: Keys,
                                                       tmp_path: Path) -> None:
    env = _process_env(keys.service_env(sb))
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=keys.service) as c:
        c.templates.upsert({**GREET, "default_lane": "C"})
        c.lanes.resume("C")
        run = c.runs.create("greet", {"name": f"worker {keys.style}"}, lane="C")
        worker = subprocess.run(
            [PULSER_OPS_EXE, "worker", "--lanes", "C", "--burst", "--poll-seconds", "0.2"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert worker.returncode == 0, worker.stderr
        assert c.runs.get(run.id).status == "succeeded"

        stuck = c.runs.create("greet", {"name": "stuck"}, lane="C")
        [held] = c.runs.claim("gone-worker", lanes="C")
        assert held.id == stuck.id
        with psycopg.connect(sb.app.db_url, autocommit=True) as db:  # its worker went away
            db.execute("update public.runs set lease_expires_at = now() - interval '1 s'"
                       " where id = %s", (stuck.id,))
        sweep = subprocess.run(
            [sys.executable, "-m", "pulser_ops.sweeper"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert sweep.returncode == 0, sweep.stderr
        assert "failed 1" in sweep.stdout
        assert c.runs.get(stuck.id).status == "failed"  # max_attempts 1: the lease expired
        c.lanes.pause("C")
