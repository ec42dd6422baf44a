"""The Storage page and a tenant's Storage section in real headless Chromium, on a desktop and on a phone:
nothing wider than the screen, and a rule added through the form becomes the active one. Screenshots
go to SCREENSHOT_DIR when it is set (to look at them), else to the test's own folder."""
from __future__ import annotations

import os
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.identity import tenants
from app.models import Tenant
from app.storage import billing
from tests.admin.test_browser import open_section, sign_in
from tests.conftest import TEST_ACTOR
from tests.integration.test_storage_billing import GiB, MiB, occupy

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

WIDTHS = {"desktop": 1400, "phone": 390}


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def stored(make):
    """A month of growing storage for Acme (billed day by day), a few other tenants, one owing fees."""
    billing.create_rule(TEST_ACTOR, name="Standard", active=True)
    acme = make.funded_tenant("Acme Creative Studio International", credits=100_000)
    today = datetime.now(timezone.utc).date()
    for days_ago in range(30, 0, -1):
        occupy(acme, (31 - days_ago) * 3 * GiB)
        day = today - timedelta(days=days_ago)
        billing.bill(day, now=datetime.combine(day + timedelta(days=1), time(0, 20), tzinfo=timezone.utc))
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"storage_quota_bytes": 2048 * GiB})
    for name, size in (("Beta", 40 * GiB), ("Gamma Media", 900 * MiB), ("Delta", 12 * MiB)):
        occupy(make.tenant(name), size)
    owing = make.tenant("Owing Ltd")
    occupy(owing, 7 * GiB)
    db.session.execute(sa.update(Tenant).where(Tenant.id == owing.tenant.id)
                       .values(oss_mode="CUSTOM", storage_fees_owed=1234))  # its own bucket, as shown
    db.session.commit()
    return acme


def fits_the_screen(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


@pytest.mark.parametrize("device", WIDTHS)
def test_the_storage_page_and_a_tenants_storage_section_fit_the_screen(page, root, stored, shots, device):
    page.set_viewport_size({"width": WIDTHS[device], "height": 900})
    sign_in(page)
    page.goto("/admin/storage")
    expect(page.get_by_role("heading", name="Storage", exact=True)).to_be_visible()
    expect(page.locator("tr[data-rule='Standard'] .badge")).to_have_text("active")
    fits_the_screen(page)
    page.screenshot(path=shots / f"storage-page-{device}.png", full_page=True)

    page.get_by_role("link", name="Acme Creative Studio International").click()
    section = page.locator("#tenant-storage")
    expect(section.locator("[data-storage=quota]")).to_have_text("2.0 TiB")
    expect(section.locator("rect.bar")).to_have_count(30)
    fits_the_screen(page)
    section.scroll_into_view_if_needed()
    section.screenshot(path=shots / f"tenant-storage-{device}.png")


def test_a_rule_added_in_the_form_becomes_the_active_one(page, root, stored):
    sign_in(page)
    open_section(page, "Storage")
    page.get_by_role("button", name="Add a rule").click()
    form = page.locator("#storage-rule-create-form")
    form.get_by_label("Name").fill("Cheaper")
    form.get_by_label("Tier 1 price").fill("6")
    form.get_by_label("Make it the active rule").check()
    form.get_by_role("button", name="Add rule").click()
    expect(page.locator("#storage-rules .form-notice")).to_contain_text("Added Cheaper")
    expect(page.locator("tr[data-rule='Cheaper'] .badge")).to_have_text("active")
    expect(page.locator("tr[data-rule='Standard'] .badge")).to_have_text("off")
    assert billing.active_rule().name == "Cheaper"

    page.locator("tr[data-rule='Standard']").get_by_role("button", name="Make active").click()
    expect(page.locator("tr[data-rule='Standard'] .badge")).to_have_text("active")
