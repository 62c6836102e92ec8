"""``pulser-ops demo``: the whole system, live, in under a minute, with nothing to set up.

It enqueues a realistic mix from the starter templates, starts two worker processes and the
sweeper, kills one worker in the middle of a run so the recovery shows, cancels a long run,
draws the board the whole time, and ends with a summary. It exits 0 only if every run ended
in the state it should — the demo doubles as an end-to-end check.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .. import connect, resources
from ..client import Client
from ..errors import PulserOpsError
from ..models import Run, RunEvent, RunStatus
from .board import STATUS_STYLE, Snapshot, render
from .http_target import HttpTarget
from .scenario import Planned, plan

TIME_LIMIT = 55.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class DemoState:
    planned: dict[str, Planned] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    events: list[RunEvent] = field(default_factory=list)
    last_seq: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    killed: str | None = None
    cancelled: bool = False


def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> Proc:
    log = logs / f"{name}.log"
    out = log.open("wb")
    popen = subprocess.Popen(
        args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Proc(name, popen, log)


def _ensure_templates(client: Client, db_url: str) -> None:
    """The demo uses the starter templates; (re)apply seed.sql if any is missing."""
    have = {t.name for t in client.templates.list()}
    needed = {p.template for p in plan("http://x")}
    if needed <= have:
        return
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(resources.seed_path().read_text().encode())


def _collect_events(client: Client, st: DemoState, runs: list[Run]) -> None:
    for run in runs:
        key = str(run.id)
        new = client.events.list(run.id, after_seq=st.last_seq.get(key, 0), limit=200)
        if new:
            st.last_seq[key] = new[-1].seq
            st.events.extend(e for e in new if e.kind != "log" or e.level != "debug")
    st.events.sort(key=lambda e: e.at)
    del st.events[:-50]


def run_demo(
    *, db_url: str | None, home: Path, console: Console, time_limit: float = TIME_LIMIT
) -> int:
    started = time.monotonic()
    home = home.resolve()
    logs = home / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    if db_url is None:
        from ..embedded import ensure_database

        with console.status("starting the embedded PostgreSQL under " + str(home)) as status:
            db_url = ensure_database(home, on_progress=lambda m: status.update(m))
    storage = home / "storage"
    client = connect(db_url, storage_dir=storage)
    st = DemoState()
    procs: list[Proc] = []
    env = {
        **os.environ,
        "PULSER_OPS_DATABASE_URL": db_url,
        "PULSER_OPS_STORAGE_DIR": str(storage),
        "PULSER_OPS_HOME": str(home),
    }
    for k in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SECRET_KEY"):
        env.pop(k, None)
    worker_cmd = [
        sys.executable,
        "-m",
        "pulser_ops.cli",
        "worker",
        "--heartbeat-seconds",
        "1",
        "--poll-seconds",
        "0.5",
        "--shutdown-grace-seconds",
        "5",
    ]
    board = _board(db_url, storage, home)
    try:
        with client, HttpTarget() as target, board as board_url:
            console.print(f"[bold]The Ops Control Room:[/] {board_url}/  (open it now)")
            _ensure_templates(client, db_url)
            session = client.sessions.create(f"demo {time.strftime('%H:%M:%S')}")
            items = plan(target.url)
            runs = client.runs.create_many(
                [
                    {
                        "template": p.template,
                        "params": p.params,
                        "lane": p.lane,
                        "session_id": session.id,
                    }
                    for p in items
                ]
            )
            for p, r in zip(items, runs, strict=True):
                st.planned[str(r.id)] = p
                st.labels[str(r.id)] = p.label
            victim = next(str(r.id) for p, r in zip(items, runs, strict=True) if p.role == "victim")
            to_cancel = next(
                str(r.id) for p, r in zip(items, runs, strict=True) if p.role == "cancel"
            )
            st.notes.append(f"enqueued {len(runs)} runs across lanes A-D (session {session.id})")

            # worker-1 serves lane C alone, so it is the one that picks up the victim run.
            procs.append(
                _spawn(
                    "worker-1",
                    [
                        *worker_cmd,
                        "--lanes",
                        "C",
                        "--concurrency",
                        "1",
                        "--worker-id",
                        "demo-worker-1",
                    ],
                    env,
                    logs,
                )
            )
            procs.append(
                _spawn(
                    "sweeper",
                    [
                        sys.executable,
                        "-m",
                        "pulser_ops.sweeper",
                        "--loop",
                        "--interval",
                        "1",
                        "--quiet",
                    ],
                    env,
                    logs,
                )
            )
            worker2_started = False
            ids = list(st.planned)

            def snapshot() -> Snapshot:
                current = client.runs.get_many(ids)
                _collect_events(client, st, current)
                return Snapshot(
                    "pulser-ops demo — the Ops Control Room",
                    time.monotonic() - started,
                    client.lanes.stats(),
                    current,
                    st.events,
                    st.labels,
                    st.notes,
                )

            live_ok = console.is_terminal
            with Live(
                console=console, refresh_per_second=8, transient=False, auto_refresh=False
            ) as live:
                while True:
                    snap = snapshot()
                    by_id = {str(r.id): r for r in snap.runs}
                    v = by_id[victim]
                    if not worker2_started and v.status == RunStatus.RUNNING:
                        procs.append(
                            _spawn(
                                "worker-2",
                                [
                                    *worker_cmd,
                                    "--lanes",
                                    "A,B,C,D",
                                    "--concurrency",
                                    "3",
                                    "--worker-id",
                                    "demo-worker-2",
                                ],
                                env,
                                logs,
                            )
                        )
                        worker2_started = True
                        st.notes.append(
                            "worker-1 picked up the slow run; worker-2 joins on all lanes"
                        )
                    if (
                        st.killed is None
                        and v.status == RunStatus.RUNNING
                        and v.attempt == 1
                        and v.claimed_at is not None
                        and time.monotonic() - started > 3
                    ):
                        os.killpg(procs[0].popen.pid, signal.SIGKILL)
                        st.killed = v.worker_id
                        st.notes.append(
                            f"killed {v.worker_id} (SIGKILL) mid-run: its lease will "
                            "expire and the sweeper will requeue the run"
                        )
                    c = by_id[to_cancel]
                    if (
                        not st.cancelled
                        and c.status == RunStatus.RUNNING
                        and c.claimed_at
                        and (time.monotonic() - started > 6)
                    ):
                        client.runs.cancel(c.id, reason="the demo cancels the long task")
                        st.cancelled = True
                        st.notes.append(
                            "cancel requested for the long task: its worker stops the step"
                        )
                    if live_ok:
                        live.update(render(snap), refresh=True)
                    if all(r.is_terminal for r in snap.runs):
                        break
                    if time.monotonic() - started > time_limit:
                        st.notes.append(f"time limit of {time_limit:.0f}s reached")
                        break
                    time.sleep(0.25)
                final = snapshot()
                live.update(render(final), refresh=True)
            return _summary(client, st, final.runs, console, storage, time.monotonic() - started)
    except PulserOpsError as e:
        console.print(f"[red]error:[/] {e.code}: {e}")
        return 1
    finally:
        _stop_all(procs)


def _board(db_url: str, storage: Path, home: Path) -> AbstractContextManager[str]:
    """The web board on this database, in-process on a free loopback port."""
    from ..config import resolve
    from ..web import create_app
    from ..web.server import serve_in_thread

    return serve_in_thread(create_app(settings=resolve(db_url, storage_dir=storage, home=home)))


def _stop_all(procs: list[Proc]) -> None:
    """SIGTERM (workers drain gracefully), then SIGKILL whatever is still there after 10 s."""
    for proc in reversed(procs):
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()


def _summary(
    client: Client, st: DemoState, runs: list[Run], console: Console, storage: Path, elapsed: float
) -> int:
    table = Table(title=f"pulser-ops demo: {len(runs)} runs in {elapsed:.1f}s", title_style="bold")
    for col in ("run", "what", "lane", "status", "expected", "attempts", "time", "artifacts"):
        table.add_column(col, no_wrap=col in ("run", "status"))
    failures = []
    for run in sorted(runs, key=lambda r: r.created_at):
        p = st.planned[str(run.id)]
        problem = p.check(run)
        if problem:
            failures.append(f"{p.label}: {problem}")
        arts = client.artifacts.list(run.id)
        files = [a for a in arts if a.storage_path]
        where = (
            f"{len(arts)} ({len(files)} files in {storage / 'run-artifacts' / str(run.id)})"
            if files
            else f"{len(arts)} inline"
            if arts
            else "-"
        )
        took = (run.finished_at - run.created_at).total_seconds() if run.finished_at else 0.0
        table.add_row(
            str(run.id)[:8],
            p.label,
            run.lane,
            f"[{STATUS_STYLE[run.status]}]{run.status.value}[/]",
            p.expect.value + (f" (≥{p.min_attempts} attempts)" if p.min_attempts > 1 else ""),
            f"{run.attempt}/{run.max_attempts}"
            + (f" swept x{run.sweep_count}" if run.sweep_count else ""),
            f"{took:.1f}s",
            where,
        )
    console.print(table)
    if st.killed:
        console.print(
            f"recovery: {st.killed} was killed mid-run; the sweeper requeued its run and "
            "another worker finished it."
        )
    if failures:
        console.print("[red bold]demo FAILED[/]: " + "; ".join(failures))
        return 1
    console.print("[green bold]demo passed[/]: every run ended in the state it should.")
    return 0
