"""The board in a real browser (Debian's Chromium through Playwright): live updates over SSE,
confirmations, bulk actions, the live log, the theme. Each test leaves a screenshot in
test-artifacts/screenshots/. Wait on locators, never on "networkidle" (an SSE stream is
always open)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from pulser_ops import Client

from .harness import shot


def test_a_status_change_by_another_process_shows_on_the_board_within_2s(
    sdk: Client, base: str, page: Any, db_url: str
) -> None:
    for i in range(3):
        sdk.runs.create("hello", {"name": f"r{i}"}, lane="A")
    sdk.runs.create("hello", {"name": "b"}, lane="B")
    page.goto(base + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("queued-A")).to_have_text("3")
    code = (
        "import pulser_ops, sys\n"
        "c = pulser_ops.connect(sys.argv[1])\n"
        "[r] = c.runs.claim('w-elsewhere', lanes=['A'])\n"
        "c.events.log(r.id, 'warming up the <flux> capacitor')\n"
        "print(r.id)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, db_url], capture_output=True, text=True,
                         check=True)  # fmt: skip
    run_id = out.stdout.strip()
    started = time.monotonic()
    card = page.locator(f"#card-{run_id}")
    expect(card).to_be_visible(timeout=2000)
    expect(page.get_by_test_id("queued-A")).to_have_text("2", timeout=2000)
    assert time.monotonic() - started < 2.0
    expect(card).to_contain_text("w-elsewhere")
    expect(card.locator(".card-log")).to_have_text("warming up the <flux> capacitor")
    shot(page, "board-live")
    card.click()
    expect(page.locator("#drawer .run-summary")).to_be_visible()
    expect(page.locator("#drawer")).to_contain_text(run_id)
    shot(page, "board-run-drawer")


def test_cancel_asks_first_dismiss_sends_nothing_accept_cancels(
    sdk: Client, base: str, page: Any
) -> None:
    run = sdk.runs.create("hello", {"name": "to cancel"})
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(f"{base}/runs/{run.id}")
    page.once("dialog", lambda d: d.dismiss())
    page.locator("#cancel-run").click()
    page.wait_for_timeout(500)
    assert posts == []
    assert sdk.runs.get(run.id).status == "queued"
    messages: list[str] = []

    def accept(d: Any) -> None:
        messages.append(d.message)
        d.accept()

    page.once("dialog", accept)
    page.locator("#cancel-run").click()
    expect(page.locator("#summary .run-status .badge")).to_have_text("cancelled")
    assert messages and "Cancel run" in messages[0]
    assert [p for p in posts if p.endswith("/cancel")] != []
    assert sdk.runs.get(run.id).status == "cancelled"
    shot(page, "run-cancelled")


def test_bulk_cancel_of_everything_matching_shows_its_count_first(
    sdk: Client, base: str, page: Any
) -> None:
    target = [sdk.runs.create("hello", {"name": f"c{i}"}, lane="C") for i in range(4)]
    other = sdk.runs.create("hello", {"name": "stays"}, lane="D")
    page.goto(f"{base}/runs?lane=C")
    expect(page.locator("#run-count")).to_contain_text("4 runs")
    page.get_by_label("everything matching").check()
    page.get_by_role("button", name="Cancel…").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#bulk-preview")).to_contain_text("Cancel 4 runs matching")
    expect(dialog.locator("#bulk-preview")).to_contain_text("lane=C")
    shot(page, "runs-bulk-preview")
    assert all(sdk.runs.get(r.id).status == "queued" for r in target)
    dialog.locator("#bulk-confirm").click()
    expect(dialog).to_contain_text("Cancelled 4 runs")
    assert all(sdk.runs.get(r.id).status == "cancelled" for r in target)
    assert sdk.runs.get(other.id).status == "queued"
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("table.runs")).to_contain_text("cancelled")
    shot(page, "runs-after-bulk-cancel")


def test_the_live_log_appends_while_the_run_works_and_closes_when_it_ends(
    sdk: Client, base: str, page: Any
) -> None:
    run = sdk.runs.create("hello", {"name": "<img src=x onerror=alert(1)>"})
    [held] = sdk.runs.claim("w-log", lanes=["A"])
    sdk.events.log(run.id, "first line, before the page")
    page.goto(f"{base}/runs/{run.id}")
    log = page.locator("#log")
    expect(log).to_contain_text("first line, before the page")
    stop = threading.Event()

    def work() -> None:
        for i in range(5):
            if stop.is_set():
                return
            sdk.events.log(run.id, f"working {i} <b>not bold</b>")
            time.sleep(0.2)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    expect(log.locator(".logline").last).to_contain_text("working 4 <b>not bold</b>")
    assert log.locator("b").count() == 0
    sdk.runs.complete(run.id, "w-log", held.attempt, "succeeded", result={"ok": True})
    expect(log.locator(".log-end")).to_contain_text("the run ended")
    expect(page.locator("#log-state")).to_have_text("ended")  # no longer says live
    expect(page.locator("#timeline")).to_contain_text("succeeded")  # the timeline follows too
    texts = log.locator(".logline .msg").all_inner_texts()
    assert [t for t in texts if t.startswith("working")] == [
        f"working {i} <b>not bold</b>" for i in range(5)]  # fmt: skip
    seqs = [int(s) for s in log.locator(".logline").evaluate_all(
        "els => els.map(e => e.dataset.seq)")]  # fmt: skip
    assert seqs == sorted(set(seqs)), "no line lost or repeated"
    expect(page.locator("#summary .run-status .badge")).to_have_text("succeeded")
    assert page.locator("img[src=x]").count() == 0
    shot(page, "run-live-log")


def test_a_waiting_run_is_run_now_from_its_page(sdk: Client, base: str, page: Any) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    run = sdk.runs.create("hello", {"name": "tonight"}, lane="C", run_after=later)
    page.goto(f"{base}/runs/{run.id}")
    expect(page.locator("#due")).to_contain_text("in 1h 59m")
    expect(page.locator("#timeline")).to_contain_text("not to be claimed before this")
    shot(page, "run-waiting")
    page.locator("#run-now").click()
    expect(page.locator("#due")).to_have_count(0)
    expect(page.locator("#run-now")).to_have_count(0)
    expect(page.locator("#timeline")).to_contain_text("moved to now by")
    expect(page.locator("#timeline")).not_to_contain_text("not to be claimed before this")
    assert sdk.runs.get(run.id).available_at <= datetime.now(UTC)
    shot(page, "run-moved-to-now")


def test_the_theme_toggle_works_before_the_deferred_app_script_has_run(
    sdk: Client, base: str, page: Any
) -> None:
    """A click that lands while app.js is still loading must not be lost (CI saw exactly that
    right after a page load): the toggle lives in the <head> script, so it works even with
    app.js not loaded at all."""
    page.route("**/app.js", lambda route: route.abort())
    page.goto(base + "/")
    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")


def test_the_dark_mode_toggle_persists(sdk: Client, base: str, page: Any) -> None:
    sdk.runs.create("hello", {"name": "x"}, lane="B")
    page.goto(base + "/")
    html = page.locator("html")
    page.locator("#theme-toggle").click()
    expect(html).to_have_attribute("data-theme", "dark")
    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(page.get_by_test_id("queued-B")).to_have_text("1")
    shot(page, "board-dark")
    page.keyboard.press("t")
    expect(html).to_have_attribute("data-theme", "light")
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")
    page.keyboard.press("?")
    expect(page.locator("dialog#help")).to_be_visible()
    shot(page, "help-shortcuts")


def test_filters_follow_the_url_and_survive_live_refreshes(
    sdk: Client, base: str, page: Any
) -> None:
    sdk.runs.create("hello", {"name": "needle-1"}, lane="B")
    sdk.runs.create("hello", {"name": "hay"}, lane="A")
    page.goto(base + "/runs")
    page.get_by_label("B", exact=True).check()
    expect(page).to_have_url(base + "/runs?lane=B")
    expect(page.locator("#run-count")).to_contain_text("1 run")
    search = page.locator("#q")
    search.fill("needle")
    expect(page).to_have_url(base + "/runs?lane=B&q=needle")
    search.focus()
    search.press("End")
    sdk.runs.create("hello", {"name": "needle-2"}, lane="B")  # a change: the table refreshes
    expect(page.locator("#run-count")).to_contain_text("2 runs", timeout=5000)
    expect(search).to_be_focused()  # the refresh morphed the table, not the form
    expect(search).to_have_value("needle")
    shot(page, "runs-filtered")
    page.go_back()
    expect(page).to_have_url(base + "/runs?lane=B")
    expect(page.locator("#run-count")).to_contain_text("2 runs matching lane=B")
