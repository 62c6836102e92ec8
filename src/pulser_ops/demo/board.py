"""The live terminal board: a column per lane, running runs with a pulsing heartbeat, events.

Rendering is a pure function of a ``Snapshot`` so it can be drawn on a terminal (rich Live) or
printed once; the demo takes snapshots through the SDK like any other operator would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..models import LANES, LaneStats, Run, RunEvent, RunStatus

STATUS_STYLE = {
    RunStatus.QUEUED: "cyan",
    RunStatus.RUNNING: "yellow",
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "magenta",
}
LEVEL_STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "red"}


@dataclass
class Snapshot:
    title: str
    elapsed: float
    stats: list[LaneStats]
    runs: list[Run]
    events: list[RunEvent]
    labels: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _pulse(run: Run) -> Text:
    """A heartbeat marker that beats: bright right after a heartbeat, fading, red once the lease
    has expired (the sweeper will take the run)."""
    now = datetime.now(UTC)
    if run.lease_expires_at is not None and run.lease_expires_at < now:
        return Text("✖", style="bold red")
    since = (now - run.heartbeat_at).total_seconds() if run.heartbeat_at else 99.0
    beat = int(time.monotonic() * 2) % 2 == 0
    if since < 1.5:
        return Text("♥" if beat else "♡", style="bold green")
    return Text("♡", style="green" if since < 3 else "dim green")


def _lane_column(lane: str, snap: Snapshot) -> Panel:
    stats = {s.status: s for s in snap.stats if s.lane == lane}
    queued = stats.get("queued")
    paused = bool(queued and queued.paused)
    lines: list[RenderableType] = []
    depth = queued.runs if queued else 0
    bar = "█" * min(depth, 12) + ("+" if depth > 12 else "")
    lines.append(Text.assemble(("queued ", "bold"), (f"{depth:>3} ", "cyan"), (bar, "cyan")))
    for run in sorted(
        (r for r in snap.runs if r.lane == lane and r.status == RunStatus.RUNNING),
        key=lambda r: r.created_at,
    ):
        label = snap.labels.get(str(run.id), run.template)
        worker = (run.worker_id or "?").split("-")[-1]
        cancel = Text(" ⏹", style="magenta") if run.cancel_requested else Text("")
        lines.append(
            Text.assemble(
                _pulse(run),
                " ",
                (label[:18], "yellow"),
                (f" #{run.attempt}", "dim"),
                (f" {worker}", "dim"),
                cancel,
            )
        )
    done = [r for r in snap.runs if r.lane == lane and r.is_terminal]
    if done:
        counts = {
            s: sum(1 for r in done if r.status == s)
            for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
        }
        lines.append(
            Text.assemble(*[(f"{n} {s.value}  ", STATUS_STYLE[s]) for s, n in counts.items() if n])
        )
    title = f"lane {lane}" + (" [paused]" if paused else "")
    return Panel(Group(*lines), title=title, border_style="blue", width=36)


def render(snap: Snapshot) -> RenderableType:
    lanes = Table.grid(padding=(0, 1))
    for _ in LANES:
        lanes.add_column()
    lanes.add_row(*[_lane_column(lane, snap) for lane in LANES])
    ev = Table.grid(padding=(0, 1))
    ev.add_column(style="dim", no_wrap=True)
    ev.add_column(no_wrap=True)
    ev.add_column(style="bold", no_wrap=True)
    ev.add_column(overflow="ellipsis", no_wrap=True, max_width=80)
    for e in snap.events[-10:]:
        ev.add_row(
            e.at.astimezone().strftime("%H:%M:%S"),
            snap.labels.get(str(e.run_id), "?")[:16],
            e.kind,
            Text(
                e.message.splitlines()[0] if e.message else "", style=LEVEL_STYLE.get(e.level, "")
            ),
        )
    notes = Text("\n".join(snap.notes[-4:]), style="italic")
    return Group(
        Text(f"{snap.title}   {snap.elapsed:5.1f}s", style="bold"),
        lanes,
        Panel(ev, title="recent events", border_style="blue"),
        notes,
    )
