"""Charts as inline SVG, rendered in Python: no chart library, nothing to load, nothing to
break offline, and they morph like any other markup. Colours come from CSS classes so both
themes apply."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from .format import secs


def sparkline(
    values: Sequence[int],
    *,
    highlight: Sequence[int] = (),
    width: int = 180,
    height: int = 32,
    label: str = "",
) -> Markup:
    """Bars, one per value (oldest left); ``highlight`` (e.g. failures) is drawn over them."""
    n = len(values)
    if n == 0:
        return Markup("")
    top = max(max(values), 1)
    bar = width / n
    parts = []
    for i, v in enumerate(values):
        if v <= 0:
            continue
        h = max(1.0, v / top * (height - 2))
        parts.append(
            f'<rect class="spark-bar" x="{i * bar:.2f}" y="{height - h:.2f}" '
            f'width="{max(bar - 0.6, 0.6):.2f}" height="{h:.2f}"><title>{v}</title></rect>'
        )
        bad = highlight[i] if i < len(highlight) else 0
        if bad > 0:
            hb = max(1.0, bad / top * (height - 2))
            parts.append(
                f'<rect class="spark-bad" x="{i * bar:.2f}" y="{height - hb:.2f}" '
                f'width="{max(bar - 0.6, 0.6):.2f}" height="{hb:.2f}"/>'
            )
    total = sum(values)
    title = escape(label or f"{total} in the last {n} minutes")
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<line class="spark-base" x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}"/>'
        + "".join(parts)
        + "</svg>"
    )


def stacked_bar(
    segments: Sequence[tuple[str, int]], *, width: int = 180, height: int = 10
) -> Markup:
    """One horizontal bar split by (css class, count), e.g. queue depth by status."""
    total = sum(max(v, 0) for _, v in segments)
    if total == 0:
        return Markup(
            f'<svg class="stack" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
            f' role="img" aria-label="empty"><rect class="stack-empty" width="{width}" '
            f'height="{height}" rx="2"/></svg>'
        )
    x = 0.0
    parts = []
    label = ", ".join(f"{v} {escape(c)}" for c, v in segments if v > 0)
    for cls, v in segments:
        if v <= 0:
            continue
        w = v / total * width
        parts.append(
            f'<rect class="stack-{escape(cls)}" x="{x:.2f}" width="{w:.2f}" height="{height}">'
            f"<title>{v} {escape(cls)}</title></rect>"
        )
        x += w
    return Markup(
        f'<svg class="stack" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{label}">' + "".join(parts) + "</svg>"
    )


def timeline(
    values: Sequence[int],
    *,
    highlight: Sequence[int] = (),
    start: datetime,
    bucket_seconds: int,
    width: int = 720,
    height: int = 150,
    label: str = "",
) -> Markup:
    """Bars over time with an axis: the height of the busiest bucket on the left, the time of
    the first, middle and last bucket below; ``highlight`` (failures) over the bars."""
    n = len(values)
    if n == 0:
        return Markup("")
    left, bottom, top_pad = 40, 18, 6
    plot_w, plot_h = width - left, height - bottom - top_pad
    top = max(max(values), 1)
    bar = plot_w / n
    parts = [
        f'<line class="axis-line" x1="{left}" y1="{top_pad + plot_h + 0.5}" x2="{width}" '
        f'y2="{top_pad + plot_h + 0.5}"/>',
        f'<text class="axis" x="{left - 4}" y="{top_pad + 8}" text-anchor="end">{top:,}</text>',
        f'<text class="axis" x="{left - 4}" y="{top_pad + plot_h}" text-anchor="end">0</text>',
    ]
    for i, v in enumerate(values):
        x = left + i * bar
        if v > 0:
            h = max(1.0, v / top * plot_h)
            parts.append(
                f'<rect class="spark-bar" x="{x:.2f}" y="{top_pad + plot_h - h:.2f}" '
                f'width="{max(bar - 1, 0.8):.2f}" height="{h:.2f}"><title>'
                f'{escape(_when(start, i, bucket_seconds))}: {v:,}</title></rect>'
            )
        bad = highlight[i] if i < len(highlight) else 0
        if bad > 0:
            hb = max(1.0, bad / top * plot_h)
            parts.append(
                f'<rect class="spark-bad" x="{x:.2f}" y="{top_pad + plot_h - hb:.2f}" '
                f'width="{max(bar - 1, 0.8):.2f}" height="{hb:.2f}"><title>{bad:,} failed'
                "</title></rect>"
            )
    for i, anchor in ((0, "start"), (n // 2, "middle"), (n - 1, "end")):
        x = left + i * bar + (bar if anchor == "end" else 0)
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{height - 4}" text-anchor="{anchor}">'
            f"{escape(_when(start, i, bucket_seconds))}</text>"
        )
    title = escape(label or f"{sum(values):,} finished")
    return Markup(
        f'<svg class="chart throughput-chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{title}"><title>{title}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _when(start: datetime, i: int, bucket_seconds: int) -> str:
    at = start + timedelta(seconds=i * bucket_seconds)
    return at.strftime("%a %H:%M" if bucket_seconds >= 3600 else "%H:%M")


#: Gridlines of the percentile chart (log scale), seconds and their labels.
_TICKS = ((0.001, "1 ms"), (0.01, "10 ms"), (0.1, "100 ms"), (1, "1 s"), (10, "10 s"),
          (60, "1 min"), (600, "10 min"), (3600, "1 h"), (36000, "10 h"), (86400, "1 d"))


def percentile_rows(
    rows: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    width: int = 720,
    row_height: int = 24,
    label: str = "",
    empty: str = "No finished runs in this period.",
) -> Markup:
    """One row per name: a bar from p50 to p99 with marks at p50, p95 and p99, on a shared
    log scale (so a 20 ms step and a 20 min one fit one chart). Rows without values are left
    out."""
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        return Markup('<p class="muted empty">{}</p>').format(empty)
    values = [max(v, 0.001) for r in rows for v in r[1:] if v is not None]
    lo = math.floor(math.log10(min(values)))
    hi = max(math.ceil(math.log10(max(values))), lo + 1)
    left, axis_h = 150, 18
    plot_w = width - left - 10
    height = len(rows) * row_height + axis_h + 4

    def x(v: float | None) -> float:
        f = (math.log10(max(v or 0.001, 0.001)) - lo) / (hi - lo)
        return left + min(max(f, 0.0), 1.0) * plot_w

    parts = []
    for t, text in _TICKS:
        if lo <= math.log10(t) <= hi:
            parts.append(
                f'<line class="grid" x1="{x(t):.1f}" y1="0" x2="{x(t):.1f}" '
                f'y2="{height - axis_h}"/><text class="axis" x="{x(t):.1f}" '
                f'y="{height - 4}" text-anchor="middle">{text}</text>'
            )
    for i, (name, p50, p95, p99) in enumerate(rows):
        y = i * row_height + row_height / 2 + 2
        tip = escape(
            f"{name}: p50 {secs(p50)}, p95 {secs(p95)}, p99 {secs(p99)}"
        )
        parts.append(
            f'<g class="pct-row"><title>{tip}</title>'
            f'<text class="pct-name" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(name[:22])}</text>"
            f'<line class="pct-range" x1="{x(p50):.1f}" y1="{y:.1f}" x2="{x(p99):.1f}" '
            f'y2="{y:.1f}"/>'
            f'<circle class="pct-p50" cx="{x(p50):.1f}" cy="{y:.1f}" r="4.5"/>'
            f'<line class="pct-p95" x1="{x(p95):.1f}" y1="{y - 6:.1f}" x2="{x(p95):.1f}" '
            f'y2="{y + 6:.1f}"/>'
            f'<line class="pct-p99" x1="{x(p99):.1f}" y1="{y - 7:.1f}" x2="{x(p99):.1f}" '
            f'y2="{y + 7:.1f}"/></g>'
        )
    title = escape(label or "percentiles")
    return Markup(
        f'<svg class="chart pct" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{title}"><title>{title}</title>'
        + "".join(parts)
        + "</svg>"
    )


