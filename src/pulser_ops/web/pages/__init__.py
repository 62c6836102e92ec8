"""One module per page; each adds its routes to the room's router. A new tab is a new module
here plus a line in ``room.NAV``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from . import (
    artifacts,
    board,
    chat,
    live,
    login,
    metrics,
    performance,
    run,
    runs,
    schedules,
    static,
    templates,
    workers,
)

if TYPE_CHECKING:
    from ..room import ControlRoom

PAGES = (
    static, live, login, board, runs, run, artifacts, workers, templates, schedules, chat,
    performance, metrics,
)  # fmt: skip


def add_all(router: APIRouter, room: ControlRoom) -> None:
    for page in PAGES:
        page.add(router, room)
