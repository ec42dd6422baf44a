"""The worker's jobs in real headless Chromium: a running row that updates itself and stops polling once
final, the Jobs page's cancel and retry, and a video playing on its detail page."""
import re

import pytest

from tests.admin.test_browser import open_section, sign_in
from tests.admin.test_jobs_admin import acme, finished_video, queued_video  # noqa: F401
from tests.conftest import key_headers

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402


def test_jobs_page_actions_a_polling_row_and_a_video_detail(page, root, client, acme):  # noqa: F811
    video = finished_video(client, acme)
    leaving = queued_video(acme, prompt="a fox the tenant gives up on")
    stale = queued_video(acme, prompt="a fox nobody waits for")
    broken = finished_video(client, acme, "a fox [sandbox:fail]")["id"]
    sign_in(page)

    open_section(page, "Generations")
    row = page.locator(f"tr[data-generation='{leaving}']")
    expect(row).to_have_attribute("hx-trigger", "every 2s")
    expect(row.locator("progress")).to_be_visible()
    assert client.delete(f"/api/v1/videos/{leaving}", headers=key_headers(acme)).status_code == 200
    expect(row).to_have_attribute("data-status", "FAILED")  # the next poll brought the final row
    expect(row).not_to_have_attribute("hx-trigger", re.compile(".*"))
    expect(row).to_contain_text("cancelled")

    open_section(page, "Jobs")
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(page.locator("[data-count=queued]")).to_have_text("1")
    page.locator(f"tr[data-job='{stale}']").get_by_role("button", name="Cancel").click()  # hx-confirm accepted
    expect(page.locator("#jobs .form-notice")).to_contain_text("its hold is released and nothing is charged")
    expect(page.locator(f"tr[data-job='{stale}']")).to_have_attribute("data-list", "failed")
    expect(page.locator("[data-failures=cancelled]")).to_have_text("2")
    expect(page.locator("[data-failures=upstream_error]")).to_have_text("1")

    page.locator(f"tr[data-job='{stale}']").get_by_role("button", name="Retry").click()
    expect(page.locator("[data-retried]")).to_contain_text("60 credits held, completed")
    expect(page.locator(f"tr[data-job='{stale}'] [data-retry]")).to_be_visible()
    failed_upstream = page.locator(f"tr[data-job='{broken}']").get_by_role("button", name="Retry")
    expect(failed_upstream).to_be_hidden()  # only the largest group starts open
    page.locator("details[data-code=upstream_error] summary").click()
    expect(failed_upstream).to_be_visible()

    page.goto(f"/admin/generations/{video['id']}")
    expect(page.get_by_role("heading", name=re.compile("Video generation"))).to_be_visible()
    page.wait_for_function("document.querySelector('img[data-preview=thumbnail]').naturalWidth > 0")
    # The player reads the file's header through the dashboard's Range-capable route.
    page.wait_for_function("document.querySelector('video[data-preview=video]').readyState >= 1")
    assert page.evaluate("document.querySelector('video[data-preview=video]').duration") == pytest.approx(5, abs=0.5)
