"""Credits screens in real headless Chromium: models and prices with the live estimate, recharging a
tenant, and the billing overview."""
import re
from datetime import timedelta

import pytest

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.core.transaction import atomic
from app.models import utcnow
from tests.admin.test_browser import open_section, sign_in
from tests.admin.test_models_prices import SEEDREAM, find
from tests.conftest import TEST_ACTOR

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def seeded(app):
    return catalog.seed_catalog(TEST_ACTOR)


def test_disable_and_enable_a_model(page, root, seeded):
    sign_in(page)
    open_section(page, "Models & prices")
    expect(page.get_by_role("heading", name="Models & prices")).to_be_visible()
    row = page.locator(f"tr[data-model='{SEEDREAM}']")
    expect(row.locator(".badge")).to_have_text("enabled")
    page.evaluate("window.stillTheSamePage = true")

    row.get_by_role("button", name="Disable").click()  # hx-confirm is accepted by the fixture
    expect(row.locator(".badge")).to_have_text("disabled")
    expect(page.locator("#model-list .form-notice")).to_contain_text("tenants can no longer use it")
    assert page.evaluate("window.stillTheSamePage") is True
    assert not find(SEEDREAM)[0].is_active
    page.screenshot(path="/tmp/admin-models.png", full_page=True)

    row.get_by_role("button", name="Enable").click()
    expect(row.locator(".badge")).to_have_text("enabled")
    assert find(SEEDREAM)[0].is_active


def test_edit_a_price_rule_and_watch_the_estimate_before_saving(page, root, seeded):
    sign_in(page)
    page.goto("/admin/models")
    page.locator(f"tr[data-model='{SEEDREAM}']").get_by_role("button", name="Edit").click()
    expect(page.get_by_role("heading", name="Seedream 4.0")).to_be_visible()
    estimate = page.locator("#price-preview .estimate-value")
    expect(estimate).to_have_text("20")  # one 2K image at the seeded price

    prices = page.get_by_label("Prices")
    prices.fill('{"credits": 20, "by_resolution": {"2K": 35, "4K": 90}}')
    expect(estimate).to_have_text("35")
    page.get_by_label("Sample request").fill('{"n": 4, "image_size": "4K"}')
    expect(estimate).to_have_text("360")
    assert find(SEEDREAM)[1].prices["by_resolution"]["2K"] == 20  # only previewed so far

    prices.fill('{"credits": 20, "by_resolution": {"2K": -1}}')
    expect(page.locator("#price-preview [data-preview-error]")).to_contain_text("Price rule: Invalid prices")
    page.get_by_label("Billing type").select_option("PER_REQUEST")
    prices.fill('{"credits": 55}')
    expect(estimate).to_have_text("55")
    page.screenshot(path="/tmp/admin-model-edit.png", full_page=True)

    page.get_by_role("button", name="Save model").click()
    expect(page.locator("#model-form .form-notice")).to_contain_text("Saved.")
    expect(estimate).to_have_text("55")
    model, rule = find(SEEDREAM)
    assert (rule.billing_type, rule.prices) == ("PER_REQUEST", {"credits": 55})

    page.get_by_label("Capabilities").fill('["not", "an object"]')
    page.get_by_role("button", name="Save model").click()
    expect(page.locator("#model-capabilities-error")).to_have_text("Capabilities must be a JSON object ({…}).")
    assert find(SEEDREAM)[0].capabilities == model.capabilities


def test_recharge_a_tenant_and_see_the_balance_and_the_ledger_row(page, root, make):
    acme = make.tenant("Acme")
    sign_in(page)
    page.goto(f"/admin/tenants/{acme.tenant.id}")
    credits = page.locator("#tenant-credits")
    expect(credits.locator("[data-account=balance]")).to_have_text("0")
    expect(credits).to_contain_text("No transactions yet.")

    form = page.locator("#recharge-form")
    form.get_by_label("Credits to add").fill("1500")
    form.get_by_label("Description").fill("Invoice 2025-014")
    form.get_by_role("button", name="Recharge").dblclick()  # a double click still recharges once
    expect(credits.locator(".form-notice")).to_contain_text("Balance is now 1,500.")
    expect(credits.locator("[data-account=balance]")).to_have_text("1,500")
    expect(credits.locator("[data-account=available]")).to_have_text("1,500")
    rows = credits.locator("#tenant-ledger tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("+1,500")
    expect(rows.first).to_contain_text("Invoice 2025-014")
    expect(rows.first).to_contain_text("root")

    form = page.locator("#adjust-form")
    form.get_by_label("Credits (+ or −)").fill("-2000")
    form.get_by_label("Reason").fill("Duplicate invoice")
    form.get_by_role("button", name="Apply adjustment").click()
    expect(page.locator("#adjust-form .field-error")).to_have_text(
        "Cannot take 2000 credits: only 1500 are available.")
    page.locator("#adjust-form").get_by_label("Credits (+ or −)").fill("-200")
    page.locator("#adjust-form").get_by_role("button", name="Apply adjustment").click()
    expect(credits.locator("[data-account=balance]")).to_have_text("1,300")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("-200")

    page.get_by_label("Type").select_option("RECHARGE")  # filters on change, without a reload
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/ledger\?type=RECHARGE"))
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute("href", re.compile(r"ledger\.csv\?type=RECHARGE$"))
    page.screenshot(path="/tmp/admin-tenant-credits.png", full_page=True)

    assert [e.amount for e in billing.list_entries(acme.tenant.id).entries] == [-200, 1500]
    assert ledger.verify() == []


def test_billing_overview_per_period(page, root, make):
    acme, globex = make.tenant("Acme"), make.tenant("Globex")
    billing.recharge(acme.tenant.id, 1000, TEST_ACTOR)
    billing.recharge(globex.tenant.id, 800, TEST_ACTOR)
    for created, amount in ((acme, 120), (globex, 480)):
        with atomic():
            hold = ledger.hold(created.tenant.id, amount)
        with atomic():
            ledger.settle(hold.id, amount, TEST_ACTOR)
    with atomic():
        ledger.hold(acme.tenant.id, 50)

    sign_in(page)
    open_section(page, "Billing")
    expect(page.locator("[data-total=recharged]")).to_have_text("1,800")
    expect(page.locator("[data-total=consumed]")).to_have_text("600")
    expect(page.locator("[data-total=held]")).to_have_text("50")
    tenants = page.locator("#billing-overview tbody tr")
    expect(tenants).to_have_count(2)
    expect(tenants.first).to_contain_text("Globex")  # the biggest consumer first
    page.screenshot(path="/tmp/admin-billing.png", full_page=True)

    tomorrow = (utcnow().date() + timedelta(days=1)).isoformat()
    page.get_by_label("From").fill(tomorrow)
    page.get_by_label("To").fill(tomorrow)
    expect(page.locator("[data-period]")).to_have_text(f"{tomorrow} to {tomorrow} · 1 day")
    expect(page.locator("[data-total=consumed]")).to_have_text("0")
    expect(tenants).to_have_count(1)  # nothing moved, but Acme still holds credits
    expect(tenants.first.locator("[data-col=held]")).to_have_text("50")
    expect(page).to_have_url(re.compile(rf"date_to={tomorrow}"))

    page.get_by_role("link", name="Last 30 days").click()
    expect(page.locator("[data-total=consumed]")).to_have_text("600")
    tenants.first.get_by_role("link", name="Globex").click()
    expect(page.locator("#tenant-ledger tbody tr")).to_have_count(2)


def test_set_the_seat_price(page, root):
    sign_in(page)
    open_section(page, "Settings")
    page.get_by_label("Credits per seat").fill("250")
    page.get_by_role("button", name="Save seat price").click()
    expect(page.locator("[data-seat-price]")).to_have_text("250")
    page.screenshot(path="/tmp/admin-settings.png", full_page=True)
    assert billing.seat_price() == 250
