"""Performance: per template throughput over time, queue wait and run duration percentiles
(p50, p95, p99), and step duration percentiles per step kind, over the last hour, day or week.

One SQL call (``performance_stats``) per refresh and period, shared by every tab of the same
identity; above 10,000 finished runs in the period it reads a block sample and the page says
so.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...models import PERIODS, PerformanceStats
from .. import charts

if TYPE_CHECKING:
    from ..room import ControlRoom

PERIOD_LABEL = {"hour": "last hour", "day": "last 24 hours", "week": "last 7 days"}
BUCKET_LABEL = {"hour": "minute", "day": "30 minutes", "week": "4 hours"}
#: Chart widths in CSS pixels: the page is laid out for a 1440 px window; narrower ones shrink
#: the charts (max-width: 100%) rather than scaling their text up on wide ones.
WIDE, HALF = 1380, 660


def _period(request: Request) -> str:
    period = request.query_params.get("period", "day")
    return period if period in PERIODS else "day"


def _context(stats: PerformanceStats) -> dict[str, Any]:
    total = stats.total
    finished = total.succeeded + total.failed
    return {
        "stats": stats,
        "periods": [(p, PERIOD_LABEL[p]) for p in PERIODS],
        "period_label": PERIOD_LABEL[stats.period],
        "bucket_label": BUCKET_LABEL[stats.period],
        "fail_pct": (100.0 * total.failed / finished) if finished else None,
        "throughput": charts.timeline(
            total.series,
            highlight=total.failures,
            start=stats.since,
            bucket_seconds=stats.bucket_seconds,
            width=WIDE,
            height=180,
            label=f"{total.runs:,} runs finished in the {PERIOD_LABEL[stats.period]}",
        ),
        "durations": charts.percentile_rows(
            [(t.template, t.duration.p50, t.duration.p95, t.duration.p99) for t in stats.templates],
            width=HALF,
            label="run duration by template",
        ),
        "waits": charts.percentile_rows(
            [(t.template, t.wait.p50, t.wait.p95, t.wait.p99) for t in stats.templates],
            width=HALF,
            label="queue wait by template",
        ),
        "step_chart": charts.percentile_rows(
            [(s.kind, s.duration.p50, s.duration.p95, s.duration.p99) for s in stats.steps],
            width=WIDE,
            label="step duration by kind",
            empty="No step rows in this period (workers on the SDK may not write them).",
        ),
        "sparks": {
            t.template: charts.sparkline(
                t.series, highlight=t.failures, width=140, height=26,
                label=f"{t.template}: {t.runs:,} in the {PERIOD_LABEL[stats.period]}",
            )
            for t in stats.templates
        },
    }


def add(router: APIRouter, room: ControlRoom) -> None:
    async def stats_for(request: Request) -> PerformanceStats:
        who, client = await room.client(request)
        period = _period(request)
        return await room.reads.get(
            (who.client_key, "performance", period),
            partial(client.monitoring.performance, period),
        )

    @router.get("/performance", name="ops.performance")
    async def performance_page(request: Request) -> Response:
        stats = await stats_for(request)
        return room.render(
            request, "performance.html", {"page": "ops.performance", **_context(stats)}
        )

    @router.get("/partials/performance", name="ops.performance_partial")
    async def performance_partial(request: Request) -> Response:
        stats = await stats_for(request)
        return room.render(request, "partials/performance.html", _context(stats))
