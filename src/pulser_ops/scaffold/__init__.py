"""Files ``pulser-ops init`` writes into a user's repository besides the SQL: its workflows.

Why package data with a version placeholder: the workflows a user gets must install the
*released* package their project uses (``pip install pulser-ops==<version>``), never ``pip
install .`` of a checkout they do not have; rendering pins the version that wrote them. One
more workflow is one more entry in :data:`WORKFLOWS` (and its file beside this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import __version__

_HERE = Path(__file__).resolve().parent
VERSION_PLACEHOLDER = "__PULSER_OPS_VERSION__"


@dataclass(frozen=True)
class Scaffold:
    """One file: its template beside this module and where it goes in the user's project."""

    template: str
    target: Path

    def render(self, version: str = __version__) -> bytes:
        text = (_HERE / self.template).read_text(encoding="utf-8")
        return text.replace(VERSION_PLACEHOLDER, version).encode("utf-8")


WORKFLOWS: list[Scaffold] = [
    Scaffold("sweeper.yml", Path(".github/workflows/sweeper.yml")),
]

__all__ = ["VERSION_PLACEHOLDER", "WORKFLOWS", "Scaffold"]
