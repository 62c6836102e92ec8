"""The one results table: rich on the terminal, markdown in bench/results/latest.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from common import Measurement
from settings import render

HEADERS = ["benchmark", "system", "metric", "median", "min", "max", "unit", "target", "status"]


def fmt(v: float) -> str:
    if v != v:  # nan
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cells(m: Measurement) -> list[str]:
    vals = m.values or [float("nan")]
    return [
        m.bench,
        m.system,
        m.metric,
        fmt(m.median),
        fmt(min(vals)),
        fmt(max(vals)),
        m.unit,
        m.target.text if m.target else "",
        m.status,
    ]


def print_table(rows: list[Measurement]) -> None:
    table = Table(title="pulser-ops benchmarks (median / min / max over repetitions)")
    for h in HEADERS:
        table.add_column(h, justify="right" if h in ("median", "min", "max") else "left")
    for m in rows:
        c = cells(m)
        if m.status == "MISSED":
            c[-1] = "[bold red]MISSED[/]"
        elif m.status == "met":
            c[-1] = "[green]met[/]"
        table.add_row(*c)
    Console(width=200).print(table)


def markdown(rows: list[Measurement], info: dict[str, Any], elapsed: float) -> str:
    out = [
        "# pulser-ops benchmark results",
        "",
        f"Run of `python bench/run.py{' --quick' if info['parameters'].get('quick') else ''}`"
        f" ({elapsed / 60:.1f} min). Median, min and max over "
        f"{info['parameters']['repetitions']} repetitions.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for m in rows:
        out.append("| " + " | ".join(cells(m)) + " |")
    out += ["", "## Settings", "", render(info), ""]
    return "\n".join(out)


def write(rows: list[Measurement], info: dict[str, Any], elapsed: float, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(rows, info, elapsed))
    raw = [
        {
            "bench": m.bench,
            "system": m.system,
            "metric": m.metric,
            "unit": m.unit,
            "values": m.values,
            "status": m.status,
        }
        for m in rows
    ]
    path.with_suffix(".json").write_text(json.dumps({"settings": info, "rows": raw}, indent=1))
