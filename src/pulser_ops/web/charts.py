"""Charts as inline SVG, rendered in Python: no chart library, nothing to load, nothing to
break offline, and they morph like any other markup. Colours come from CSS classes so both
themes apply."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


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
