"""Where a spec kit's documents live, in the two layouts, and how kits are found in a tree.

- ``plan``: the pulser-ops plan's ``spec/<project>/{constitution,prd,plan,tasks}.md``; the
  PRD is Spec Kit's ``spec.md`` under another name.
- ``speckit``: GitHub Spec Kit's own ``.specify/memory/constitution.md`` (one per repository)
  plus ``specs/<NNN-feature>/{spec,plan,tasks}.md`` (one folder per feature).

Both may sit anywhere in a repository (``docs/spec/x/...``, ``services/a/specs/001-y/...``);
each plan project and each Spec Kit feature is one kit to validate.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..errors import InvalidInput
from .upstream import DocKind

Layout = Literal["plan", "speckit"]
LAYOUTS: tuple[Layout, ...] = ("plan", "speckit")

PLAN_FILES: dict[DocKind, str] = {
    "constitution": "constitution.md",
    "spec": "prd.md",
    "plan": "plan.md",
    "tasks": "tasks.md",
}
FEATURE_FILES: dict[DocKind, str] = {"spec": "spec.md", "plan": "plan.md", "tasks": "tasks.md"}
CONSTITUTION = ".specify/memory/constitution.md"

#: A kit name is one path segment: letters, digits, ``-`` and ``_``, dots only between them.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*([.][A-Za-z0-9_-]+)*$"
NAME_MAX = 64
_NAME = re.compile(NAME_PATTERN)


def check_name(name: str, what: str = "name") -> str:
    """Refuse a name that is not one safe path segment (it becomes a directory name)."""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX or not _NAME.match(name):
        raise InvalidInput(
            f"{what}: {name!r} is not a safe path segment (1-{NAME_MAX} letters, digits, "
            "'-' or '_', dots only between them; no '/', no '..')"
        )
    return name


@dataclass(frozen=True)
class Kit:
    """One kit: its layout, the folder it lives in, its name and each document's path.

    ``root`` and the paths are POSIX and relative to the tree that holds them ("" is the
    tree's root). A Spec Kit feature's constitution sits outside ``root``, at the
    repository's ``.specify/memory/constitution.md``.
    """

    layout: Layout
    root: str
    name: str
    files: dict[DocKind, str] = field(hash=False)

    def owns(self, path: str) -> bool:
        return path in self.files.values() or (self.root != "" and path.startswith(self.root + "/"))


def _join(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p]) if any(parts) else ""


def plan_kit(root: str, name: str) -> Kit:
    return Kit("plan", root, name, {k: _join(root, f) for k, f in PLAN_FILES.items()})


def feature_kit(prefix: str, feature: str) -> Kit:
    root = _join(prefix, "specs", feature)
    files: dict[DocKind, str] = {"constitution": _join(prefix, CONSTITUTION)}
    files.update({k: _join(root, f) for k, f in FEATURE_FILES.items()})
    return Kit("speckit", root, feature, files)


def feature_dir(name: str, number: int = 1) -> str:
    """Spec Kit's feature folder name: ``001-<name>``, lower case."""
    return f"{number:03d}-{name.lower()}"


def new_kit(layout: Layout, name: str) -> Kit:
    """Where ``generate`` puts a new kit called ``name``."""
    check_name(name)
    if layout == "plan":
        return plan_kit(_join("spec", name), name)
    return feature_kit("", feature_dir(name))


def discover(paths: Iterable[str], root_name: str = "") -> list[Kit]:
    """Every kit that ``paths`` (the files of a tree) hold, sorted by root.

    A folder counts once it holds one of its layout's documents; the missing ones are then
    findings, not a reason to overlook the kit. The tree's root itself may be a plan project
    (``constitution.md`` or ``prd.md`` at the top) or a Spec Kit feature (``spec.md``).
    """
    kits: dict[str, Kit] = {}
    plan_names = set(PLAN_FILES.values())
    feature_names = set(FEATURE_FILES.values())
    top = set()
    for p in paths:
        parent, base = posixpath.split(p)
        if not parent:
            top.add(base)
            continue
        grand, folder = posixpath.split(parent)
        container = posixpath.basename(grand)
        if container == "spec" and base in plan_names:
            kits.setdefault(parent, plan_kit(parent, folder))
        elif container == "specs" and base in feature_names:
            kits.setdefault(parent, feature_kit(posixpath.dirname(grand), folder))
    if "spec.md" in top:  # a feature folder on its own: its constitution is not in the tree
        files: dict[DocKind, str] = {"constitution": CONSTITUTION, **FEATURE_FILES}
        kits[""] = Kit("speckit", "", root_name or "feature", files)
    elif top & {"constitution.md", "prd.md"}:
        kits.setdefault("", plan_kit("", root_name or "project"))
    return [kits[k] for k in sorted(kits)]


def select_changed(kits: Iterable[Kit], changed: Iterable[str]) -> list[Kit]:
    """The kits that one of the ``changed`` paths belongs to (a Spec Kit constitution
    belongs to every feature of its repository)."""
    changed = list(changed)
    return [k for k in kits if any(k.owns(p) for p in changed)]
