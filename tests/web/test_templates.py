"""The Templates tab through the app, on both transports: the list, the editor with the
params schema builder and live validation (the control plane's checks and the worker's step
parser), saving, the generated run form with per-field errors, YAML import/export in the
format of `pulser-ops templates apply`, delete, and who may do what."""

from __future__ import annotations

import re
from typing import Any

import yaml

from pulser_ops import Client, templates_file
from pulser_ops.web import WebConfig
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import new_id, template

from .helpers import board, error_slot

STEPS_YAML = """- kind: shell
  name: greet
  command: ["echo", "hi", "{{ params.who }}"]
"""


def _form(**over: Any) -> dict[str, Any]:
    form = {
        "name": "greeter", "description": "says hi", "default_lane": "B", "steps": STEPS_YAML,
        "schema_mode": "builder", "allow_other": "on",
        "f-0-name": "who", "f-0-type": "string", "f-0-required": "on", "f-0-description": "name",
        "f-1-name": "times", "f-1-type": "integer", "f-1-default": "2", "f-1-enum": "1, 2, 3",
        "max_attempts": "2", "retry_backoff_seconds": "1", "retry_backoff_max_seconds": "10",
        "retry_jitter": "0", "lease_seconds": "30", "timeout_seconds": "", "non_retryable_errors": "",
    }  # fmt: skip
    form.update(over)
    return {k: v for k, v in form.items() if v is not None}


async def test_the_list_shows_lane_steps_attempts_and_last_use(env: Env, client: Client) -> None:
    template(client, steps=[{"kind": "shell", "name": "a", "command": "true"},
                            {"kind": "http", "name": "b", "url": "https://x"}])  # fmt: skip
    template(client, "idle", default_lane="D")
    client.runs.create("hello", {"name": "x"})
    async with board(env) as b:
        html = (await b.get("/templates")).text
    row = html[html.index('id="template-hello"'):html.index('id="template-idle"')]
    assert "<td>A</td>" in row and "2 <span class=\"muted\">shell, http</span>" in row
    assert "<td>3</td>" in row and "ago" in row and "v1" in row
    idle = html[html.index('id="template-idle"'):]
    assert "<td>D</td>" in idle and "never" in idle
    assert 'id="new-template"' in html and 'id="import"' in html


async def test_save_from_the_builder_then_edit_keeps_enqueued_runs(env: Env, client: Client) -> None:
    async with board(env) as b:
        saved = await b.post("/templates/save", data=_form())
        assert saved.status_code == 303 and saved.headers["location"] == "/templates/greeter?saved=1"
        t = client.templates.get("greeter")
        assert t.params_schema == {"type": "object", "required": ["who"], "properties": {
            "who": {"type": "string", "description": "name"},
            "times": {"type": "integer", "enum": [1, 2, 3], "default": 2}}}  # fmt: skip
        assert (t.default_lane, t.max_attempts, t.lease_seconds, t.timeout_seconds) == ("B", 2, 30, None)
        assert t.steps == [{"kind": "shell", "name": "greet", "command": ["echo", "hi", "{{ params.who }}"]}]
        page = (await b.get("/templates/greeter?saved=1")).text
        assert "Saved greeter as version 1" in page
        assert 'name="f-0-name" value="who"' in page and 'name="f-1-enum" value="1, 2, 3"' in page
        run = client.runs.create("greeter", {"who": "ops"})
        edited = await b.post("/templates/save", data=_form(**{"f-1-default": "3", "lease_seconds": "90"}))
        assert edited.status_code == 303
    assert client.templates.get("greeter").version == 2
    kept = client.runs.get(run.id)
    assert (kept.template_version, kept.lease_seconds, kept.params) == (1, 30, {"who": "ops", "times": 2})


async def test_live_validation_names_each_field_and_writes_nothing(env: Env, client: Client) -> None:
    before = env.state()
    bad = _form(name="Bad Name", max_attempts="0", lease_seconds="soon", default_lane="B",
                retry_backoff_seconds="20", retry_backoff_max_seconds="5",
                steps='- kind: shell\n  name: greet\n  comand: "echo"\n',
                **{"f-1-default": "two"})  # fmt: skip
    async with board(env) as b:
        got = await b.post("/templates/validate", data=bad)
        html = got.text
        assert got.status_code == 200 and 'hx-swap-oob="true"' in html
        assert "must match" in error_slot(html, "name")
        assert "max_attempts: must be between 1 and 100" in error_slot(html, "max_attempts")
        assert "expected an integer, got string" in error_slot(html, "lease_seconds")
        assert "must be at least retry_backoff_seconds" in error_slot(html, "retry_backoff_max_seconds")
        # the step DSL through the worker's own parser
        steps = error_slot(html, "steps")
        assert "steps[0].comand: unknown field" in steps and "steps[0].command: field required" in steps
        assert error_slot(html, "description") == ""
        ok = (await b.post("/templates/validate", data=_form())).text
        assert 'id="form-status" hx-swap-oob="true">valid<' in ok
        # a raw schema the control plane refuses, next to the schema
        raw = await b.post("/templates/validate", data=_form(
            schema_mode="raw", params_schema='{"type": "object", "properties": {"x": {"requried": 1}}}'))
        assert 'unsupported keyword &#34;requried&#34;' in error_slot(raw.text, "params_schema")
        refused = await b.post("/templates/save", data=bad)
        assert refused.status_code == 422 and "Not saved" in refused.text
        assert "default: not a valid integer" in refused.text  # the builder row's own problem
    assert env.state() == before


async def test_the_schema_editor_adds_removes_and_switches_to_raw(env: Env) -> None:
    async with board(env) as b:
        added = (await b.post("/templates/schema", data=_form(action="add"))).text
        assert 'name="f-2-name" value=""' in added
        removed = (await b.post("/templates/schema", data=_form(action="remove:0"))).text
        assert 'value="who"' not in removed and 'name="f-0-name" value="times"' in removed
        raw = (await b.post("/templates/schema", data=_form(action="mode:raw"))).text
        assert 'id="raw-schema"' in raw and "&#34;who&#34;" in raw
        back = (await b.post("/templates/schema", data=_form(
            action="mode:builder", schema_mode="raw",
            params_schema='{"type": "object", "properties": {"z": {"type": "boolean"}}}'))).text
        assert 'name="f-0-name" value="z"' in back and "f-1-name" not in back


async def test_the_run_form_shows_per_field_errors_then_enqueues(env: Env, client: Client) -> None:
    template(client, default_lane="C", params_schema={
        "type": "object", "required": ["name", "size"], "properties": {
            "name": {"type": "string", "minLength": 2},
            "size": {"type": "string", "enum": ["s", "m"]},
            "count": {"type": "integer", "minimum": 0, "default": 1}}})  # fmt: skip
    async with board(env) as b:
        page = (await b.get("/templates/hello")).text
        form = page[page.index('id="run-form"'):]
        assert '<option value="C" selected>C (default)</option>' in form
        assert 'id="p-count" name="p.count" value="1"' in form
        bad = await b.post("/templates/hello/run", data={"p.name": "x", "p.count": "-1", "lane": "C"})
        assert bad.status_code == 422
        assert re.search(r'id="run-err-name"[^>]*>must be at least 2 characters<', bad.text)
        assert re.search(r'id="run-err-count"[^>]*>must be &gt;= 0<', bad.text)
        assert re.search(r'id="run-err-size"[^>]*>is required<', bad.text)
        assert 'value="x"' in bad.text  # what was typed stays
        assert client.runs.list() == []
        ok = await b.post("/templates/hello/run", data={"p.name": "ops", "p.size": "m", "lane": "C",
                                                        "priority": "5"})  # fmt: skip
        assert ok.status_code == 204
        [run] = client.runs.list()
        assert ok.headers["HX-Redirect"] == f"/runs/{run.id}"
        assert (run.params, run.lane, run.priority) == ({"name": "ops", "size": "m", "count": 1}, "C", 5)


async def test_yaml_export_and_import_use_the_apply_format(env: Env, client: Client) -> None:
    made = template(client, steps=[{"kind": "shell", "name": "greet", "command": ["echo", "hi"]}])
    async with board(env) as b:
        exported = await b.get("/templates/hello/export.yaml")
        assert exported.headers["content-disposition"] == 'attachment; filename="hello.yaml"'
        doc = yaml.safe_load(exported.text)
        assert doc == templates_file.as_file_object(made) and "version" not in doc
        changed = exported.text.replace("says hello", "says hello, imported")
        second = "- " + changed.replace("\n", "\n  ").rstrip() + "\n- {name: other, default_lane: D}\n"
        ok = await b.post("/templates/import", data={"yaml": second})
        assert ok.status_code == 303 and "applied%20hello%2C%20other" in ok.headers["location"]
        before = env.state()
        bad = await b.post("/templates/import", data={
            "yaml": "- {name: fine}\n- {name: broken, steps: [{kind: shell, name: x}]}\n"})
        assert bad.status_code == 422 and "steps[0].command: field required" in bad.text
        assert env.state() == before  # all or none
        upload = await b.post("/templates/import", files={
            "file": ("t.yaml", b"name: uploaded\n", "application/yaml")})
        assert upload.status_code == 303
    assert client.templates.get("hello").description == "says hello, imported"
    assert {t.name for t in client.templates.list()} == {"hello", "other", "uploaded"}


async def test_delete_is_for_admins_and_refused_while_runs_refer_to_it(
    env: Env, client: Client
) -> None:
    template(client)
    template(client, "unused")
    client.runs.create("hello", {"name": "x"})
    async with board(env, config=WebConfig(read_only=True)) as b:
        assert (await b.post("/templates/unused/delete")).status_code == 403
    async with board(env) as b:
        used = await b.post("/templates/hello/delete")
        assert used.status_code == 409 and "still has runs" in used.text
        gone = await b.post("/templates/unused/delete")
        assert gone.status_code == 204 and gone.headers["HX-Redirect"].startswith("/templates?m=")
    assert [t.name for t in client.templates.list()] == ["hello"]


async def test_only_admins_edit_others_see_it_read_only(env: Env, client: Client) -> None:
    template(client)
    before = env.state()
    async with board(env, config=WebConfig(read_only=True)) as b:
        page = (await b.get("/templates/hello")).text
        assert '<fieldset disabled class="editor">' in page and 'id="save-template"' not in page
        assert 'id="read-only-note"' in page and 'id="run-form"' not in page
        assert (await b.post("/templates/save", data=_form())).status_code == 403
        assert (await b.post("/templates/import", data={"yaml": "name: x"})).status_code == 403
        assert 'id="new-template"' not in (await b.get("/templates")).text
    # an operator's credentials: the control plane refuses the write whatever the room shows
    async with board(env, Caller("operator", new_id())) as b:
        refused = await b.post("/templates/save", data=_form())
        assert refused.status_code == 403 and "permission_denied" in refused.text
        assert (await b.post("/templates/hello/run", data={"p.name": "op"})).status_code == 204
    assert env.state()["public.run_templates"] == before["public.run_templates"]
