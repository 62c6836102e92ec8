"""``Client`` and ``AsyncClient`` are one API: the same namespaces, methods, parameters (name,
kind, default, annotation), return annotations and docstrings, modulo the async -> sync mapping
of ``scripts/unasync.py``. What differs by nature (``concurrency.py`` in ``_async`` and
``_sync``) sits behind the same names on both sides, so no exception is allowed here."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from pulser_ops.client import AsyncClient, Client
from tests.client import load_unasync

unasync = load_unasync()

def to_sync(text: str) -> str:
    return "\n".join(unasync.unasync_lines(text.split("\n"), set()))


def _methods(cls: type) -> dict[str, Callable[..., Any]]:
    return dict(inspect.getmembers(cls, inspect.isfunction))


def _shape(fn: Callable[..., Any]) -> str:
    if inspect.isasyncgenfunction(fn):
        return "async generator"
    if inspect.iscoroutinefunction(fn):
        return "coroutine"
    return "generator" if inspect.isgeneratorfunction(fn) else "plain"


SYNC_SHAPE = {"async generator": "generator", "coroutine": "plain", "plain": "plain"}


def _annotation(a: Any) -> str:
    return "" if a is inspect.Parameter.empty else str(a)


def differences(async_cls: type, sync_cls: type) -> list[str]:
    """Every way ``sync_cls`` is not what ``async_cls`` becomes on the sync surface."""
    out: list[str] = []
    name = sync_cls.__name__
    if to_sync(async_cls.__name__) != name:
        out.append(f"{async_cls.__name__} pairs with {name}")
    if to_sync(inspect.getdoc(async_cls) or "") != (inspect.getdoc(sync_cls) or ""):
        out.append(f"{name}: class docstring")
    amethods = {to_sync(k): v for k, v in _methods(async_cls).items()}
    smethods = _methods(sync_cls)
    for missing in sorted(amethods.keys() - smethods.keys()):
        out.append(f"{name}.{missing}: only on the async surface")
    for extra in sorted(smethods.keys() - amethods.keys()):
        out.append(f"{name}.{extra}: only on the sync surface")
    for meth in sorted(amethods.keys() & smethods.keys()):
        a, s = amethods[meth], smethods[meth]
        where = f"{name}.{meth}"
        if SYNC_SHAPE[_shape(a)] != _shape(s):
            out.append(f"{where}: {_shape(a)} on async, {_shape(s)} on sync")
        asig, ssig = inspect.signature(a), inspect.signature(s)
        if list(asig.parameters) != list(ssig.parameters):
            out.append(f"{where}: parameters {list(asig.parameters)} vs {list(ssig.parameters)}")
        for pname in [p for p in asig.parameters if p in ssig.parameters]:  # signature order
            ap, sp = asig.parameters[pname], ssig.parameters[pname]
            if ap.kind != sp.kind:
                out.append(f"{where}({pname}): kind {ap.kind.name} vs {sp.kind.name}")
            if ap.default != sp.default:
                out.append(f"{where}({pname}): default {ap.default!r} vs {sp.default!r}")
            if to_sync(_annotation(ap.annotation)) != _annotation(sp.annotation):
                out.append(f"{where}({pname}): {ap.annotation} vs {sp.annotation}")
        aret, sret = _annotation(asig.return_annotation), _annotation(ssig.return_annotation)
        if to_sync(aret) != sret:
            out.append(f"{where}: returns {aret} vs {sret}")
        adoc, sdoc = inspect.getdoc(a), inspect.getdoc(s)
        if to_sync(adoc or "") != (sdoc or ""):
            out.append(f"{where}: docstring {adoc!r} vs {sdoc!r}")
    return out


class _StubTransport:
    """Enough of a transport to build a client: the constructors only keep it."""

    files = None


def _namespaces(client: object) -> dict[str, type]:
    """The namespace attributes of a client (defined in the client's own module)."""
    module = type(client).__module__
    return {k: type(v) for k, v in vars(client).items() if type(v).__module__ == module}


def _pairs() -> list[tuple[type, type]]:
    aspaces = _namespaces(AsyncClient(_StubTransport()))  # type: ignore[arg-type]
    sspaces = _namespaces(Client(_StubTransport()))  # type: ignore[arg-type]
    assert sorted(aspaces) == sorted(sspaces) == [
        "alerts", "artifacts", "events", "lanes", "monitoring", "runs", "schedules", "sessions",
        "spec_docs", "templates", "workers"]
    return [(AsyncClient, Client)] + [(aspaces[k], sspaces[k]) for k in sorted(aspaces)]


@pytest.mark.parametrize(("async_cls", "sync_cls"), _pairs(), ids=lambda c: c.__name__)
def test_the_surfaces_match(async_cls: type, sync_cls: type) -> None:
    assert differences(async_cls, sync_cls) == []


def test_what_drifted_before_exists_on_both_surfaces() -> None:
    from pulser_ops.client import AsyncRuns, Runs

    assert inspect.isasyncgenfunction(AsyncRuns.iter) and inspect.isgeneratorfunction(Runs.iter)
    for cls in (AsyncClient, Client):
        assert "since" in inspect.signature(cls.subscribe).parameters


def test_a_difference_is_reported() -> None:
    """The comparison can fail: each kind of drift between two surfaces is named."""

    class AsyncThing:
        """A thing."""

        async def get(self, key: str, *, fresh: bool = False) -> AsyncIterator[int]:  # noqa: F821
            """Get it."""

        async def only_async(self) -> None: ...

    class Thing:
        """A thing."""

        def get(self, key: int, fresh: bool = True) -> Iterator[str]:  # noqa: F821
            """Get it!"""
            yield "it"

        def only_sync(self) -> None: ...

    found = differences(AsyncThing, Thing)
    assert found == [
        "Thing.only_async: only on the async surface",
        "Thing.only_sync: only on the sync surface",
        "Thing.get: coroutine on async, generator on sync",
        "Thing.get(key): str vs int",
        "Thing.get(fresh): kind KEYWORD_ONLY vs POSITIONAL_OR_KEYWORD",
        "Thing.get(fresh): default False vs True",
        "Thing.get: returns AsyncIterator[int] vs Iterator[str]",
        "Thing.get: docstring 'Get it.' vs 'Get it!'",
    ], found
