"""``pulser-ops stats``: performance per template and per step kind, from ``performance_stats``.

Throughput (finished runs per hour), failures, and the p50/p95/p99 of the queue wait and the run
duration, over the last hour, day and week; then step durations per step kind. Above 10,000
finished runs in a period the numbers come from a block sample, scaled up, marked with "≈".
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..client import Client
from ..models import PERIODS, PerformanceStats, TemplatePerformance
from ..web.format import secs
from .options import with_client
from .output import as_json, out, show

PERIOD_HELP = "hour, day or week (default: all three)."


def _row(period: str, stats: PerformanceStats, name: str, t: TemplatePerformance) -> list[str]:
    mark = "" if stats.exact else "≈"
    finished = t.succeeded + t.failed
    rate = f"{100 * t.failed / finished:.1f}%" if finished else "-"
    return [
        name, period, f"{mark}{t.runs:,}", f"{t.per_hour:,.1f}", f"{mark}{t.failed:,}", rate,
        secs(t.wait.p50), secs(t.wait.p95), secs(t.wait.p99),
        secs(t.duration.p50), secs(t.duration.p95), secs(t.duration.p99),
    ]  # fmt: skip


@with_client
def stats_command(
    client: Client,
    period: Annotated[str | None, typer.Option(help=PERIOD_HELP, show_default=False)] = None,
    json_: Annotated[bool, typer.Option("--json", help="The raw numbers as JSON.")] = False,
) -> None:
    """Throughput, queue wait and run duration percentiles per template; step durations."""
    from ..errors import InvalidInput

    if period is not None and period not in PERIODS:
        raise InvalidInput(f"--period: expected hour, day or week (got {period!r})")
    periods = [period] if period else list(PERIODS)
    found = [client.monitoring.performance(p) for p in periods]
    if json_:
        out.print(as_json(found), markup=False)
        return
    runs = Table(box=None, header_style="bold", pad_edge=False, title="Runs", title_justify="left")
    for col in ("TEMPLATE", "PERIOD", "RUNS", "/HOUR", "FAILED", "FAIL%", "WAIT p50", "p95",
                "p99", "DURATION p50", "p95", "p99"):  # fmt: skip
        runs.add_column(col, justify="left" if col in ("TEMPLATE", "PERIOD") else "right")
    names = sorted({t.template for s in found for t in s.templates})
    for name in [*names, "(all)"]:
        for s in found:
            t = s.total if name == "(all)" else next(
                (x for x in s.templates if x.template == name), None)  # fmt: skip
            if t is not None and t.runs:
                runs.add_row(*_row(s.period, s, name, t))
    show(runs)
    steps = Table(box=None, header_style="bold", pad_edge=False, title="Steps",
                  title_justify="left")  # fmt: skip
    for col in ("KIND", "PERIOD", "STEPS", "FAILED", "p50", "p95", "p99"):
        steps.add_column(col, justify="left" if col in ("KIND", "PERIOD") else "right")
    kinds = sorted({k.kind for s in found for k in s.steps})
    for kind in kinds:
        for s in found:
            for k in s.steps:
                if k.kind == kind:
                    steps.add_row(kind, s.period, f"{k.steps:,}", f"{k.failed:,}",
                                  secs(k.duration.p50), secs(k.duration.p95),
                                  secs(k.duration.p99))  # fmt: skip
    out.print()
    if kinds:
        show(steps)
    else:
        out.print("Steps: no step rows in these periods", markup=False)
    sampled = ", ".join(f"{s.period}: {s.runs_read:,} runs, a {s.sample_percent:.2g}% sample"
                        for s in found if not s.exact)  # fmt: skip
    if sampled:
        out.print(f"\n≈ over 10,000 runs finished: estimated from a block sample of the runs "
                  f"table, scaled up ({sampled})", markup=False)  # fmt: skip
