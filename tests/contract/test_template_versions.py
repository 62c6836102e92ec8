"""Template versions and validation over both transports: what a run keeps from the template
version it was enqueued with, validation that writes nothing, the Templates tab's list, and
deleting a template."""

from __future__ import annotations

import pytest

from pulser_ops import Client, Conflict, InvalidInput, NotFound, PermissionDenied
from pulser_ops.models import FieldProblem
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import SCHEMA, new_id, template

SHELL = [{"kind": "shell", "name": "greet", "command": ["echo", "v1"]}]


def test_each_change_of_a_definition_is_a_new_version(env: Env, client: Client) -> None:
    first = template(client, steps=SHELL)
    assert first.version == 1
    again = template(client, steps=SHELL)  # the same definition: no new version
    assert again.version == 1
    changed = template(client, steps=[{**SHELL[0], "command": ["echo", "v2"]}], lease_seconds=45)
    assert changed.version == 2
    assert [(v.version, v.definition["steps"][0]["command"]) for v in
            client.templates.versions("hello")] == [(2, ["echo", "v2"]), (1, ["echo", "v1"])]
    old = client.templates.get_version("hello", 1)
    assert (old.name, old.version, old.steps, old.lease_seconds) == ("hello", 1, SHELL, 30)
    assert client.templates.get("hello").version == 2
    with pytest.raises(NotFound):
        client.templates.get_version("hello", 3)
    # Versioned by the database itself: a direct edit (Studio, SQL) makes a version too.
    env.sql("update public.run_templates set description = 'edited in Studio' where name = 'hello'")
    assert client.templates.get("hello").version == 3
    assert client.templates.get_version("hello", 3).description == "edited in Studio"


def test_an_enqueued_run_keeps_its_template_version(env: Env, client: Client) -> None:
    """Steps, timeout and retry policy come from the version the run was enqueued with;
    max_attempts, lease_seconds and the params (defaults filled in) are copied into the run."""
    template(client, steps=SHELL, max_attempts=2, non_retryable_errors=["fatal"],
             retry_backoff_seconds=0, retry_backoff_max_seconds=0, timeout_seconds=60)  # fmt: skip
    before = client.runs.create("hello", {"name": "before"})
    template(client, steps=[{**SHELL[0], "command": ["echo", "v2"]}], max_attempts=5,
             lease_seconds=90, non_retryable_errors=[], retry_backoff_seconds=3600,
             retry_backoff_max_seconds=3600, timeout_seconds=5,
             params_schema={**SCHEMA, "properties": {**SCHEMA["properties"],
                            "count": {"type": "integer", "default": 9}}})  # fmt: skip
    after = client.runs.create("hello", {"name": "after"})
    assert (before.template_version, after.template_version) == (1, 2)
    assert (before.max_attempts, before.lease_seconds, before.params["count"]) == (2, 30, 1)
    assert (after.max_attempts, after.lease_seconds, after.params["count"]) == (5, 90, 9)
    v1 = client.templates.get_version("hello", before.template_version)
    assert (v1.steps, v1.timeout_seconds) == (SHELL, 60)

    # The retry policy is the run's version's: "fatal" was not retryable in v1, is in v2.
    for run in (before, after):
        [held] = client.runs.claim("w1", lanes=["A"])
        assert held.id == run.id
        client.runs.complete(run.id, "w1", 1, "failed", error="boom", error_class="fatal")
    assert client.runs.get(before.id).status == "failed"
    retried = client.runs.get(after.id)
    assert retried.status == "queued"
    assert (retried.available_at - retried.updated_at).total_seconds() > 3000  # v2's backoff


def test_validate_template_names_every_problem_and_writes_nothing(
    env: Env, client: Client
) -> None:
    template(client)
    before = env.state()
    problems = client.templates.validate(
        {"name": "Bad Name", "max_attempts": 0, "lease_seconds": "60", "default_lane": "E",
         "retry_backoff_seconds": 10, "retry_backoff_max_seconds": 5, "colour": "red",
         "params_schema": {"type": "object", "properties": {"x": {"type": "string",
                                                                 "requried": True}}},
         "steps": [{"kind": "shell"}, {"kind": "ftp"}]})  # fmt: skip
    assert {(p.field, p.message.split(" (")[0]) for p in problems} == {
        ("colour", "unknown field"),
        ("name", "must match ^[a-z0-9][a-z0-9_.-]{0,62}$"),
        ("params_schema.properties.x", 'unsupported keyword "requried"'),
        ("steps[1].kind", "must be shell, http, python, mcp or docker"),
        ("default_lane", "must be one of A, B, C, D"),
        ("max_attempts", "must be between 1 and 100"),
        ("lease_seconds", "expected an integer, got string"),
        ("retry_backoff_max_seconds", "must be at least retry_backoff_seconds"),
    }
    assert client.templates.validate({"name": "fine", "steps": SHELL}) == []
    with pytest.raises(InvalidInput, match="template"):  # refused before it is sent
        client.templates.validate([1, 2])  # type: ignore[arg-type]
    assert env.state() == before
    # upsert refuses with the first of them, worded as before
    with pytest.raises(Exception, match=r"template\.colour: unknown field"):
        client.templates.upsert({"name": "x", "colour": "red"})


def test_validate_params_checks_field_by_field_like_enqueue(env: Env, client: Client) -> None:
    template(client, params_schema={
        "type": "object", "additionalProperties": False, "required": ["name", "size"],
        "properties": {"name": {"type": "string", "minLength": 1},
                       "size": {"type": "string", "enum": ["s", "m", "l"]},
                       "count": {"type": "integer", "minimum": 0, "default": 1}}})  # fmt: skip
    before = env.state()
    got = client.templates.validate_params("hello", {"name": "", "count": -1, "extra": 1})
    assert [(p.field, p.message) for p in got] == [
        ("count", "must be >= 0"),
        ("extra", "is not allowed (the schema has no such property)"),
        ("name", "must be at least 1 characters"),
        ("size", "is required"),
    ]
    assert client.templates.validate_params("hello", {"name": "a", "size": "m"}) == []
    assert client.templates.validate_params("hello", "nope") == [
        FieldProblem(field="", message="expected an object")]
    with pytest.raises(NotFound):
        client.templates.validate_params("missing", {})
    assert env.state() == before
    # Whatever it passes, enqueue accepts; the first field it names is what enqueue refuses.
    with pytest.raises(Exception) as refused:
        client.runs.create("hello", {"name": "", "count": -1, "extra": 1})
    assert getattr(refused.value, "field", None) in {"params.count", "params.extra",
                                                      "params.name", "params.size"}


def test_template_summaries_say_when_each_was_last_used(env: Env, client: Client) -> None:
    template(client, steps=[*SHELL, {"kind": "http", "name": "ping", "url": "http://x"}])
    template(client, "idle")
    run = client.runs.create("hello", {"name": "x"})
    rows = {s.name: s for s in client.templates.summaries()}
    assert list(rows) == ["hello", "idle"]
    assert rows["hello"].step_kinds == ["shell", "http"]
    assert rows["hello"].last_used_at == run.created_at
    assert rows["idle"].last_used_at is None and rows["idle"].version == 1
    # an operator's "last used" counts only the runs they can see
    with env.client(Caller("operator", new_id())) as op:
        assert {s.name: s.last_used_at for s in op.templates.summaries()}["hello"] is None


def test_delete_template_is_for_admins_and_refused_while_runs_refer_to_it(
    env: Env, client: Client
) -> None:
    template(client)
    template(client, "unused")
    client.runs.create("hello", {"name": "x"})
    with env.client(Caller("operator", new_id())) as op, pytest.raises(PermissionDenied):
        op.templates.delete("unused")
    with pytest.raises(Conflict, match="still has runs"):
        client.templates.delete("hello")
    with env.client(Caller("admin", new_id())) as admin:
        gone = admin.templates.delete("unused")
    assert gone.name == "unused"
    assert env.sql("select name from public.run_templates") == [("hello",)]
    assert env.sql("select count(*) from public.run_template_versions where template = 'unused'") \
        == [(0,)]
    with pytest.raises(NotFound):
        client.templates.delete("unused")
