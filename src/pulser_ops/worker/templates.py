"""A short-lived cache of templates and their parsed steps.

Why cache: a worker draining a backlog of one template would otherwise fetch and
re-validate the same template once per run. Why briefly: an operator who fixes a template
expects the next runs to pick the fix up without restarting the fleet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..client import AsyncClient
from ..models import Template
from ..steps import StepSpec, parse_steps


@dataclass(frozen=True)
class LoadedTemplate:
    template: Template
    steps: list[StepSpec]


class TemplateCache:
    """Used from the worker's event loop only (no lock needed)."""

    def __init__(self, client: AsyncClient, ttl_seconds: float = 10.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, LoadedTemplate]] = {}

    async def get(self, name: str) -> LoadedTemplate:
        """The template with validated steps. Raises ``NotFound`` or ``StepSpecError``
        (a bad template is not cached, so a fix is picked up at once)."""
        now = time.monotonic()
        hit = self._entries.get(name)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        template = await self._client.templates.get(name)
        loaded = LoadedTemplate(template, parse_steps(template.steps))
        self._entries[name] = (now, loaded)
        return loaded
