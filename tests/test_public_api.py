"""The public API is small and unambiguous: each package's ``__all__`` lists every name once,
each name resolves, and each public name is defined in exactly one module (no second
``MigrationError``, ``EventLevel`` or ``StepStatus``; the worker row is not ``Worker``)."""

from __future__ import annotations

import ast
import importlib
from collections import Counter
from pathlib import Path

import pytest

import pulser_ops

SRC = Path(pulser_ops.__file__).parent
PACKAGES = ["pulser_ops", "pulser_ops.client", "pulser_ops.steps", "pulser_ops.worker",
            "pulser_ops.db"]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_lists_each_name_once_and_every_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert [n for n, c in Counter(names).items() if c > 1] == []
    assert [n for n in names if not hasattr(module, n)] == []
    star: dict[str, object] = {}
    exec(f"from {package} import *", star)
    assert set(names) <= star.keys()


def _definitions() -> Counter[str]:
    """Top-level names bound by a class, a function or an assignment (not an import), counted
    over every module of the package."""
    found: Counter[str] = Counter()
    for path in SRC.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                found[node.name] += 1
            elif isinstance(node, ast.Assign):
                found.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found[node.target.id] += 1
    return found


def test_each_public_name_is_defined_once() -> None:
    from pulser_ops import steps

    defined = _definitions()
    public = set(pulser_ops.__all__) | set(steps.__all__) | {
        "StepStatus", "EventLevel", "MigrationError", "MigrationErrorReason", "Worker"}
    assert {n: defined[n] for n in sorted(public) if defined[n] != 1} == {}


def test_the_worker_row_is_not_named_like_the_worker_process() -> None:
    from pulser_ops.worker import Worker

    assert not hasattr(pulser_ops, "Worker")
    assert pulser_ops.WorkerInfo.__module__ == "pulser_ops.models"
    assert issubclass(pulser_ops.WorkerHealth, pulser_ops.WorkerInfo)
    assert Worker.__module__ == "pulser_ops.worker.loop"


def test_one_migration_error_carries_its_reason() -> None:
    from pulser_ops import db, errors

    assert db.MigrationError is errors.MigrationError is pulser_ops.MigrationError
    e = pulser_ops.MigrationError("missing_local", "the database is ahead", versions=["1"])
    assert (e.code, e.reason, e.versions, str(e)) == (
        "migration_error", "missing_local", ("1",), "the database is ahead")
