"""The control room's second part in a real browser (Debian's Chromium through Playwright),
under its Content-Security-Policy: the template editor and its schema builder, the generated
run form, the artifact viewers and diffs, a hostile markdown artifact that runs nothing, and a
chat session that starts a run, sees it end and survives a reload. Each test leaves
screenshots in test-artifacts/screenshots/ and fails on any CSP violation."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from pulser_ops import Client

from .harness import shot

STEPS = """- kind: shell
  name: greet
  command: ["echo", "hello", "{{ params.who }}"]
"""
REPORT_1 = """# Weekly report

Build status for **lane B**, attempt one.

| check | result |
| :--- | ---: |
| unit tests | passed |
| browser tests | **failed** |

- flaky: `test_board_live`
"""
REPORT_2 = REPORT_1.replace("attempt one", "attempt two").replace("**failed**", "passed") + (
    "- fixed by a retry\n"
)
HOSTILE = """# Totally normal report

<script>document.title = 'pwned by script'; window.pwned = 1;</script>

<img src=x onerror="document.title = 'pwned by onerror'; window.pwned = 2">

[click me](javascript:document.title='pwned by link')

<a href="javascript:window.pwned=3">a raw link</a> and <iframe src="https://example.com"></iframe>

<svg onload="window.pwned = 4"><circle r="5"/></svg>
"""


def test_build_a_template_in_the_schema_builder_save_it_and_run_it(
    sdk: Client, base: str, page: Any, csp_violations: list[str]
) -> None:
    page.goto(base + "/templates/new")
    page.locator("#t-name").fill("greeter")
    page.locator("#t-description").fill("Greets someone, a few times")
    page.locator("#t-lane").select_option("B")
    page.locator("#t-steps").fill(STEPS)
    # param 1: rename the starter row
    page.locator("input[name=f-0-name]").fill("who")
    page.locator("input[name=f-0-description]").fill("whom to greet")
    page.locator("input[name=f-0-description]").press("Tab")
    # param 2: added through the builder
    page.locator("#add-param").click()
    expect(page.locator("input[name=f-1-name]")).to_be_visible()
    page.locator("input[name=f-1-name]").fill("times")
    page.locator("select[name=f-1-type]").select_option("integer")
    page.locator("input[name=f-1-default]").fill("2")
    page.locator("input[name=f-1-default]").press("Tab")
    expect(page.locator("#generated-schema")).to_contain_text('"times"')
    expect(page.locator("#generated-schema")).to_contain_text('"default": 2')
    # live validation, next to the field: a lease that is not a number
    page.locator("#t-lease_seconds").fill("soon")
    expect(page.locator("#err-lease_seconds")).to_contain_text("expected an integer, got string")
    expect(page.locator("#form-status")).to_contain_text("1 problem")
    shot(page, "template-builder-validation")
    page.locator("#t-lease_seconds").fill("30")
    expect(page.locator("#err-lease_seconds")).to_be_empty()
    expect(page.locator("#form-status")).to_have_text("valid")
    page.locator("#save-template").click()
    expect(page.locator("#flash")).to_contain_text("Saved greeter as version 1")
    t = sdk.templates.get("greeter")
    assert t.params_schema["properties"]["times"] == {"type": "integer", "default": 2}
    assert t.params_schema["required"] == ["who"] and t.default_lane == "B"
    shot(page, "template-editor")

    # the run form generated from the schema: one invalid value first
    form = page.locator("#run-form")
    expect(form.locator("#run-lane")).to_have_value("B")
    expect(form.locator("#p-times")).to_have_value("2")
    form.locator("#p-who").fill("ops")
    form.locator("#p-times").fill("many")
    form.locator("#run-submit").click()
    expect(form.locator("#run-err-times")).to_contain_text("expected integer, got string")
    expect(form.locator("#run-err-who")).to_be_empty()
    assert sdk.runs.list() == []
    shot(page, "template-run-form-invalid")
    page.locator("#p-times").fill("3")
    page.locator("#run-submit").click()
    expect(page.locator("#summary .run-status .badge")).to_have_text("queued")
    [run] = sdk.runs.list()
    assert (run.params, run.lane, run.template_version) == ({"who": "ops", "times": 3}, "B", 1)
    page.goto(base + "/templates")
    expect(page.locator("#template-greeter")).to_contain_text("ago")
    shot(page, "templates-list")


def _two_attempts(sdk: Client, page: Any, base: str) -> Any:
    """A run whose first attempt failed and second succeeded, each with its artifacts, and a
    real screenshot (of the board) among them."""
    page.goto(base + "/")
    expect(page.locator("#lane-A")).to_be_visible()
    png = page.screenshot()
    run = sdk.runs.create("hello", {"name": "report"})
    [held] = sdk.runs.claim("w-1", lanes=["A"])
    sdk.events.log(run.id, "writing the report")
    sdk.artifacts.put(run.id, "report.md", REPORT_1, attempt=1)
    sdk.runs.complete(run.id, "w-1", held.attempt, "failed", error="browser tests failed")
    [held] = sdk.runs.claim("w-2", lanes=["A"])
    sdk.artifacts.put(run.id, "report.md", REPORT_2, attempt=2)
    sdk.artifacts.put(run.id, "result.json", json.dumps({
        "ok": True, "checks": {"unit": {"passed": 412, "failed": 0},
                               "browser": {"passed": 18, "failed": 0, "flaky": ["board_live"]}},
        "duration_seconds": 81.5, "notes": None}), attempt=2)  # fmt: skip
    sdk.artifacts.put(run.id, "board.png", png, content_type="image/png", attempt=2)
    sdk.runs.complete(run.id, "w-2", held.attempt, "succeeded", result={"ok": True})
    return run


def test_view_markdown_json_a_screenshot_and_a_diff_between_attempts(
    sdk: Client, base: str, page: Any, csp_violations: list[str]
) -> None:
    run = _two_attempts(sdk, page, base)
    page.goto(f"{base}/runs/{run.id}")
    timeline = page.locator("#timeline")
    for kind in ("enqueued", "claimed", "retry scheduled", "succeeded"):
        expect(timeline).to_contain_text(kind)
    expect(page.locator("h3", has_text="Log")).not_to_contain_text("live")
    table = page.locator("#artifacts")
    expect(table).to_contain_text("report.md")
    table.locator(".preview-link").first.click()  # board.png, previewed in the run detail
    expect(page.locator("#artifact-preview #artifact-image")).to_be_visible()
    shot(page, "run-detail-artifacts")
    page.locator("#artifact-preview [data-clear]").click()
    expect(page.locator("#artifact-preview")).to_be_empty()

    table.locator("a.artifact-link", has_text="report.md").last.click()
    md = page.locator("#markdown")
    expect(md.locator("h1")).to_have_text("Weekly report")
    expect(md.locator("table td").nth(3)).to_have_text("passed")
    expect(page.locator(".attempts a[aria-current=page]")).to_have_text("attempt 2")
    shot(page, "artifact-markdown")

    page.goto(f"{base}/runs/{run.id}/artifacts/result.json?attempt=2")
    tree = page.locator(".json-tree")
    expect(tree.locator(".j-key", has_text='"flaky"')).to_be_visible()
    page.locator("[data-json=collapse]").click()
    expect(tree.locator(".j-key", has_text='"flaky"')).to_be_hidden()
    page.locator("[data-json=expand]").click()
    expect(tree.locator(".j-str", has_text='"board_live"')).to_be_visible()
    shot(page, "artifact-json")

    page.goto(f"{base}/runs/{run.id}/artifacts/board.png?attempt=2")
    img = page.locator("#artifact-image")
    expect(img).to_be_visible()
    page.wait_for_function("document.getElementById('artifact-image').naturalWidth > 0")
    page.locator("[data-zoom=in]").click()
    expect(page.locator("#zoom-level")).to_have_text("150%")
    page.locator("[data-zoom=fit]").click()
    expect(page.locator("#zoom-level")).to_have_text("fit")
    shot(page, "artifact-screenshot")

    page.goto(f"{base}/runs/{run.id}/artifacts/report.md?attempt=2")
    page.locator("#compare-with").select_option(f"{run.id}:1:report.md")
    page.locator("#compare button[type=submit]").click()
    diff = page.locator("#diff")
    expect(diff.locator("td.lt.l", has_text="attempt one")).to_be_visible()
    expect(diff.locator("td.lt.r", has_text="attempt two")).to_be_visible()
    expect(page.locator("#diff-stat")).to_contain_text("+")
    shot(page, "artifact-diff-split")
    page.get_by_role("link", name="Unified").click()
    expect(page.locator("#diff tr.d-add").first).to_be_visible()
    shot(page, "artifact-diff-unified")


def test_a_hostile_markdown_artifact_runs_nothing(
    sdk: Client, base: str, page: Any, csp_violations: list[str]
) -> None:
    run = sdk.runs.create("hello", {"name": "x"})
    [held] = sdk.runs.claim("w-1", lanes=["A"])
    sdk.artifacts.put(run.id, "evil.md", HOSTILE, attempt=held.attempt)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{base}/runs/{run.id}/artifacts/evil.md?attempt=1")
    md = page.locator("#markdown")
    expect(md.locator("h1")).to_have_text("Totally normal report")
    expect(md).to_contain_text("<script>document.title")  # shown as text
    expect(md).to_contain_text("[click me](javascript:")
    assert md.locator("script, iframe, svg, img[onerror], [onload]").count() == 0
    assert md.locator("a[href^='javascript']").count() == 0
    md.get_by_text("a raw link").click()  # plain text: nothing to follow
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    assert "pwned" not in page.title()
    assert dialogs == []
    shot(page, "artifact-hostile-markdown")


def test_a_chat_session_starts_a_run_sees_it_end_and_survives_a_reload(
    sdk: Client, base: str, page: Any, csp_violations: list[str]
) -> None:
    page.goto(base + "/chat")
    page.get_by_label("new session title").fill("friday deploy")
    page.locator("#new-session").click()
    page.wait_for_url(base + "/chat/*")
    page.wait_for_load_state("load")  # chat.js (deferred) listens from here on
    box = page.locator("#chat-text")
    expect(box).to_be_visible()
    # completion: the template's name, then its params
    box.fill("run he")
    expect(page.locator("#chat-suggest li").first).to_contain_text("hello")
    box.press("Tab")
    expect(box).to_have_value("run hello ")
    expect(page.locator("#chat-suggest")).to_contain_text("name=")
    shot(page, "chat-completion")
    box.press_sequentially("name=ops lane=B")
    box.press("Enter")
    stream = page.locator("#stream")
    expect(stream.locator(".msg-reply").last).to_contain_text("started hello as run")
    expect(box).to_have_value("")
    [run] = sdk.runs.list()
    assert (run.lane, run.params["name"]) == ("B", "ops")
    card = page.locator(f"#runcard-{run.id}")
    expect(card).to_contain_text("queued")

    # a worker elsewhere takes it, logs, saves an artifact and finishes: the card follows live
    [held] = sdk.runs.claim("w-chat", lanes=["B"])
    sdk.events.log(run.id, "greeting everyone on lane B")
    sdk.artifacts.put(run.id, "greeting.md", "# Hello, ops", attempt=held.attempt)
    expect(card).to_contain_text("running", timeout=10_000)
    expect(card.locator(".rc-log")).to_have_text("greeting everyone on lane B", timeout=10_000)
    sdk.runs.complete(run.id, "w-chat", held.attempt, "succeeded", result={"ok": True})
    end = page.locator(f"#end-{run.id}")
    expect(end).to_contain_text("succeeded", timeout=10_000)
    expect(card.locator(".rc-artifacts")).to_contain_text("greeting.md")
    box.fill("cancel #9")
    box.press("Enter")
    expect(stream.locator(".msg-error").last).to_contain_text("this session has no run #9")
    shot(page, "chat-session")

    page.reload()
    expect(page.locator(f"#end-{run.id}")).to_contain_text("succeeded")
    expect(page.locator(f"#runcard-{run.id}")).to_contain_text("greeting.md")
    commands = page.locator("#stream .msg-command .bubble").all_inner_texts()
    assert commands == ["run hello name=ops lane=B", "cancel #9"]
    assert sdk.runs.get(run.id).status == "succeeded"  # the bad command changed nothing
    shot(page, "chat-after-reload")
