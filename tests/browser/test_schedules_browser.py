"""The Schedules tab in a real browser (Debian's Chromium through Playwright), under the
Content-Security-Policy: reach it by its shortcut, create a schedule through the form while the
preview of its next times follows the cron expression as it is typed (and says what is wrong
with a bad one), see a refused save keep what was typed, pause and resume it from the list,
see the run it enqueued name it on its timeline, and delete it. Screenshots go to
test-artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from playwright.sync_api import expect

from pulser_ops import Client

from .harness import shot

#: A time to come as app.js ticks it.
_IN = re.compile(r"^in \d")


def test_create_a_schedule_with_its_live_preview_then_pause_resume_and_delete_it(
    sdk: Client, base: str, page: Any, db_url: str, csp_violations: list[str]
) -> None:
    page.goto(base + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.keyboard.press("g")
    page.keyboard.press("s")
    page.wait_for_url(base + "/schedules")
    expect(page.locator("#schedules-table")).to_contain_text("No schedules yet")
    page.locator("#new-schedule").click()
    page.wait_for_url(base + "/schedules/new")

    page.locator("#s-name").fill("nightly")
    page.locator("#s-template").select_option("hello")
    # the preview follows the expression as it is typed, a key at a time
    cron = page.locator("#s-cron")
    cron.fill("")
    cron.press_sequentially("30 2 * * *", delay=40)
    expect(page.locator("#preview-words")).to_contain_text("every day at 02:30")
    expect(page.locator("#preview-times tbody tr")).to_have_count(5)
    page.locator("#s-timezone").fill("Europe/Paris")
    expect(page.locator("#preview-words")).to_contain_text("(Europe/Paris)")
    expect(page.locator("#preview-times th").nth(1)).to_have_text("UTC")
    locals_ = page.locator("#preview-times tbody td:first-child").all_inner_texts()
    assert len(locals_) == 5 and all(t.endswith(" 02:30") for t in locals_), locals_
    expected = [t.local_time for t in sdk.schedules.preview("30 2 * * *", "Europe/Paris")]
    assert locals_ == expected
    shot(page, "schedule-editor-preview")
    # a bad expression: the control plane says which field and why, as it is typed
    cron.fill("")
    cron.press_sequentially("61 2 * * *", delay=40)
    expect(page.locator("#preview-error")).to_contain_text(
        'cron: the minute field allows 0 to 59 (got "61")'
    )
    expect(page.locator("#preview-times")).to_have_count(0)
    shot(page, "schedule-editor-bad-cron")
    cron.fill("30 2 * * *")
    expect(page.locator("#preview-times tbody tr")).to_have_count(5)

    # params that do not fit the template: refused next to the field, nothing saved
    page.locator("#s-lane").select_option("C")
    page.locator("#s-params").fill('{"name": ""}')
    page.locator("#s-description").fill("the nightly <hello>")
    page.locator("#save-schedule").click()
    expect(page.locator("#not-saved")).to_be_visible()
    expect(page.locator("#err-params")).to_contain_text("invalid params for template hello")
    expect(page.locator("#s-description")).to_have_value("the nightly <hello>")
    assert sdk.schedules.list() == []
    shot(page, "schedule-editor-refused")
    page.locator("#s-params").fill('{"name": "night"}')
    page.locator("#save-schedule").click()
    page.wait_for_url(base + "/schedules?m=*")
    expect(page.locator("#flash")).to_have_text("saved nightly")
    [saved] = sdk.schedules.list()
    assert (saved.cron, saved.timezone, saved.lane, saved.params, saved.description) == (
        "30 2 * * *", "Europe/Paris", "C", {"name": "night"}, "the nightly <hello>")  # fmt: skip
    row = page.locator("#schedule-nightly")
    expect(row).to_contain_text("every day at 02:30")
    expect(row).to_contain_text("the nightly <hello>")
    expect(row.locator(".next-run time")).to_have_text(_IN)
    shot(page, "schedules-list")

    # pause and resume from the list
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge.paused-badge")).to_have_text("paused")
    expect(page.locator("#flash")).to_have_text("paused nightly")
    assert not sdk.schedules.list()[0].enabled
    shot(page, "schedules-paused")
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge.st-succeeded")).to_have_text("enabled")
    expect(row.locator(".next-run time")).to_have_text(_IN)
    assert sdk.schedules.list()[0].enabled

    # it comes due and the sweeper fires it: the run's timeline names the schedule
    with psycopg.connect(db_url, autocommit=True) as db:
        db.execute("update public.run_schedules set next_run_at = now() - interval '1 minute'")
    [fired] = sdk.schedules.enqueue_due()
    expect(row.locator(".last-run a")).to_have_text(str(fired.run_id)[:8])  # the live refresh
    expect(row.locator(".last-run .badge")).to_have_text("queued")
    row.locator(".last-run a").click()
    page.wait_for_url(f"{base}/runs/{fired.run_id}")
    expect(page.locator("#timeline li.kind-enqueued")).to_contain_text(
        "enqueued by schedule nightly (due "
    )
    shot(page, "schedule-run-timeline")
    page.locator("#by-schedule").click()
    page.wait_for_url(base + "/schedules#schedule-nightly")
    # its editor: what it is now beside the form (next run, the run it enqueued)
    page.locator("#schedule-nightly").get_by_role("link", name="Edit").click()
    page.wait_for_url(base + "/schedules/nightly/edit")
    expect(page.locator("#s-name")).to_have_value("nightly")
    expect(page.locator("#schedule-facts")).to_contain_text(str(fired.run_id)[:8])
    expect(page.locator("#preview-times tbody tr")).to_have_count(5)
    shot(page, "schedule-editor-existing")
    page.locator("#schedules-crumb").click()

    # delete asks first
    messages: list[str] = []

    def accept(d: Any) -> None:
        messages.append(d.message)
        d.accept()

    page.once("dialog", accept)
    page.locator("#schedule-nightly").get_by_role("button", name="Delete").click()
    expect(page.locator("#schedule-nightly")).to_have_count(0)
    assert messages and messages[0].startswith("Delete schedule nightly?")
    assert sdk.schedules.list() == []
