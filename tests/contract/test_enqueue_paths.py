"""Bad input to enqueue answers the same on every path a run takes into the database (issue 18).

enqueue_runs reads a batch set-based, and checks params against a template's schema compiled to
rules, or walks the schema when the rules cannot state it; a batch with idempotency keys takes
one more statement. Each bad request here goes through every combination: ``runs.create``, and
``runs.create_many`` with the bad item first, after good ones, or in a batch where every item
has an idempotency key; against a template whose schema compiles to rules and one that is
walked. Every path must raise the same typed error, with the same code, message and field, and
write nothing (not even the good items of the batch).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pulser_ops import Conflict, InvalidParams, NotFound, PulserOpsError
from tests.contract.conftest import Env

RESET_EACH_TEST = False

UNKNOWN_SESSION = "00000000-0000-4000-8000-000000000002"
PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
    "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
    "mode": {"enum": ["fast", "slow"]},
    "opts": {
        "type": "object",
        "properties": {"depth": {"type": "integer", "exclusiveMaximum": 5}},
        "required": ["depth"],
        "additionalProperties": False,
    },
}
#: Two templates with the same checks: one compiled to rules, one its runs walk (``items`` given
#: as a schema is what the rules cannot state).
TEMPLATES = {
    "rules": {"type": "object", "required": ["name"], "additionalProperties": False,
              "properties": PROPERTIES},
    "walked": {"type": "object", "required": ["name"], "additionalProperties": False,
               "properties": {**PROPERTIES, "list": {"type": "array", "items": {"type": "string"}}}},
}  # fmt: skip


@dataclass(frozen=True)
class Bad:
    id: str
    #: the request's fields (the template is filled in per schema)
    request: dict[str, Any]
    error: type[PulserOpsError]
    field: str | None = None


BAD = [
    Bad("missing-required", {"params": {"count": 2}}, InvalidParams, "params.name"),
    Bad("wrong-type", {"params": {"name": "a", "count": "2"}}, InvalidParams, "params.count"),
    Bad("not-whole", {"params": {"name": "a", "count": 2.5}}, InvalidParams, "params.count"),
    Bad("below-minimum", {"params": {"name": "a", "count": 0}}, InvalidParams, "params.count"),
    Bad("above-maximum", {"params": {"name": "a", "count": 11}}, InvalidParams, "params.count"),
    Bad("pattern", {"params": {"name": "A1"}}, InvalidParams, "params.name"),
    Bad("min-length", {"params": {"name": ""}}, InvalidParams, "params.name"),
    Bad("enum", {"params": {"name": "a", "mode": "medium"}}, InvalidParams, "params.mode"),
    Bad("unknown-param", {"params": {"name": "a", "colour": "red"}}, InvalidParams,
        "params.colour"),
    Bad("nested-required", {"params": {"name": "a", "opts": {}}}, InvalidParams,
        "params.opts.depth"),
    Bad("nested-exclusive", {"params": {"name": "a", "opts": {"depth": 5}}}, InvalidParams,
        "params.opts.depth"),
    Bad("nested-closed", {"params": {"name": "a", "opts": {"depth": 1, "x": 1}}}, InvalidParams,
        "params.opts.x"),
    Bad("unknown-template", {"template": "no-such-template", "params": {"name": "a"}}, NotFound),
    Bad("unknown-session", {"params": {"name": "a"}, "session_id": UNKNOWN_SESSION}, NotFound),
    Bad("key-reused", {"params": {"name": "other"}, "idempotency_key": "taken"}, Conflict),
]  # fmt: skip

#: How the bad request is sent: ``(client, bad request, good request maker) -> result``.
PATHS: dict[str, Callable[[Any, dict[str, Any], Callable[[int], dict[str, Any]]], Any]] = {
    "create": lambda c, bad, good: c.runs.create(**bad),
    "many-first": lambda c, bad, good: c.runs.create_many([bad, good(1), good(2)]),
    "many-after-good": lambda c, bad, good: c.runs.create_many([good(1), good(2), good(3), bad]),
    "many-keyed": lambda c, bad, good: c.runs.create_many(
        [{**good(1), "idempotency_key": "k1"}, {"idempotency_key": "k2", **bad},
         {**good(3), "idempotency_key": "k3"}]),
}  # fmt: skip


@pytest.fixture(scope="module")
def world(env: Env) -> None:
    env.reset()
    client = env.shared_client()
    for name, schema in TEMPLATES.items():
        client.templates.upsert({"name": name, "params_schema": schema})
    client.runs.create("rules", {"name": "first"}, idempotency_key="taken")


def _request(bad: Bad, template: str) -> dict[str, Any]:
    return {"template": template, **bad.request}


def _good(template: str) -> Callable[[int], dict[str, Any]]:
    return lambda i: {"template": template, "params": {"name": "good", "count": i}}


async def _raised(call: Callable[..., Any], *args: Any) -> PulserOpsError:
    with pytest.raises(PulserOpsError) as raised:
        result = call(*args)
        if inspect.isawaitable(result):
            await result
    return raised.value


@pytest.mark.parametrize("schema", sorted(TEMPLATES))
@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
async def test_every_enqueue_path_refuses_bad_input_alike(
    env: Env, world: None, bad: Bad, schema: str
) -> None:
    before = env.state()
    request, good = _request(bad, schema), _good(schema)
    answers: dict[str, tuple[str, str, str, str | None]] = {}
    for path, send in PATHS.items():
        e = await _raised(send, env.shared_client(), request, good)
        async with env.aclient() as c:
            again = await _raised(send, c, request, good)
        for got in (e, again):
            assert type(got) is bad.error, f"{path}: {type(got).__name__}: {got}"
            field = got.field if isinstance(got, InvalidParams) else None
            answers.setdefault(path, (type(got).__name__, got.code, _message(got), field))
            assert answers[path] == (type(got).__name__, got.code, _message(got), field)
        if bad.field is not None:
            assert answers[path][3] == bad.field, path
    # One answer, whichever way the run was sent.
    assert len(set(answers.values())) == 1, answers
    assert env.state() == before


def _message(e: PulserOpsError) -> str:
    """The error's message; a batch names the item's position (``runs[3].session_id``), which
    differs by path on purpose, so it is left out."""
    text = str(e)
    for i in range(4):
        text = text.replace(f"runs[{i}]", "runs[…]")
    return text
