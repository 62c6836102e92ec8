"""A cache of template versions and their parsed steps.

Why cache: a worker draining a backlog of one template would otherwise fetch and
re-validate the same template once per run. A run executes the template version it was
enqueued with (``run.template_version``): a version never changes, so it is cached for good
(up to ``MAX_VERSIONS``), and a fixed template reaches the runs enqueued after the fix as its
new version. Runs from before templates had versions (no ``template_version``) get the
current template, cached briefly.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from ..client import AsyncClient
from ..models import Template
from ..steps import StepSpec, parse_steps


@dataclass(frozen=True)
class LoadedTemplate:
    template: Template
    steps: list[StepSpec]


#: Template versions kept (the least recently used beyond this are dropped).
MAX_VERSIONS = 256


class TemplateCache:
    """Used from the worker's event loop only (no lock needed)."""

    def __init__(self, client: AsyncClient, ttl_seconds: float = 10.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, LoadedTemplate]] = {}
        self._versions: OrderedDict[tuple[str, int], LoadedTemplate] = OrderedDict()

    async def get(self, name: str, version: int | None = None) -> LoadedTemplate:
        """The template (``version`` of it, or the current one) with validated steps. Raises
        ``NotFound`` or ``StepSpecError`` (a bad template is not cached, so a fix is picked up
        at once)."""
        if version is not None:
            key = (name, version)
            hit = self._versions.get(key)
            if hit is not None:
                self._versions.move_to_end(key)
                return hit
            template = await self._client.templates.get_version(name, version)
            loaded = LoadedTemplate(template, parse_steps(template.steps))
            self._versions[key] = loaded
            while len(self._versions) > MAX_VERSIONS:
                self._versions.popitem(last=False)
            return loaded
        now = time.monotonic()
        current = self._entries.get(name)
        if current is not None and now - current[0] < self._ttl:
            return current[1]
        template = await self._client.templates.get(name)
        loaded = LoadedTemplate(template, parse_steps(template.steps))
        self._entries[name] = (now, loaded)
        return loaded
