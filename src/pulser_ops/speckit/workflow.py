"""The GitHub Actions workflow that validates spec kits on pull requests.

One template (``workflows/spec-kit.yml``, package data) renders both copies: the one
``pulser-ops init`` writes into a user's repository (installs the released
package from PyPI, pinned to the version that wrote it) and this repository's own
``.github/workflows/spec-kit.yml`` (installs the checkout and always validates
``spec/ops-control-room``); a test keeps the latter equal to its rendering.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

from .. import __version__

WORKFLOW_PATH = ".github/workflows/spec-kit.yml"
USER_PATHS = ("**/spec/**", "**/specs/**", "**/.specify/**", WORKFLOW_PATH)


def template() -> str:
    return (
        resources.files("pulser_ops.speckit")
        .joinpath("workflows", "spec-kit.yml")
        .read_text("utf-8")
    )


def render(
    *,
    install: str | None = None,
    include: Sequence[str] = (),
    paths: Sequence[str] = USER_PATHS,
    version: str = __version__,
) -> str:
    """The workflow text. ``install`` defaults to ``pip install "pulser-ops==<version>"``;
    ``include`` names kits validated on every pull request, changed or not."""
    install = install or f'pip install "pulser-ops=={version}"'
    text = template()
    text = text.replace("__PATHS__", "\n".join(f'      - "{p}"' for p in paths))
    text = text.replace("__INSTALL__", install)
    text = text.replace("__INCLUDE__", "".join(f" --include {k}" for k in include))
    return text


def install(directory: Path) -> tuple[Path, Literal["created", "unchanged", "conflict"]]:
    """Write the user workflow under ``directory`` unless a different file is there."""
    target = directory / WORKFLOW_PATH
    text = render()
    if target.exists():
        same = target.is_file() and target.read_bytes() == text.encode("utf-8")
        return target, "unchanged" if same else "conflict"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target, "created"
