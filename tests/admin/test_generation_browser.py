"""Generation screens in real headless Chromium: adding a gateway and testing its connection, a
generation's image preview, and a tenant's usage chart."""
import re

import pytest

from app.models import utcnow
from tests.admin.test_browser import open_section, sign_in
from tests.admin.test_generations_admin import generate_chat, generate_image, shop  # noqa: F401

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402


def test_add_a_gateway_and_test_its_connection(page, root):
    sign_in(page)
    open_section(page, "Gateways")
    expect(page.get_by_role("heading", name="Gateways")).to_be_visible()
    form = page.locator("#gateway-create-form")
    form.get_by_label("Name").fill("sandbox")
    form.get_by_label("Base URL").fill("ftp://sandbox.local")
    form.get_by_label("Secret").fill("test-gateway-secret")
    form.get_by_role("button", name="Add gateway").click()
    expect(page.locator("#gateway-base_url-error")).to_contain_text("Base URL must be an http:// or https:// address")
    expect(page.locator("#gateway-create-form").get_by_label("Secret")).to_have_value("")  # never echoed

    form = page.locator("#gateway-create-form")
    form.get_by_label("Base URL").fill("http://sandbox.local")
    form.get_by_label("Secret").fill("test-gateway-secret")
    form.get_by_label("Files origin").fill("https://files.example.com/results")
    form.get_by_role("button", name="Add gateway").click()
    expect(page.locator("#gateway-files_origin-error")).to_contain_text("Files origin must be an origin only")

    form = page.locator("#gateway-create-form")
    form.get_by_label("Secret").fill("test-gateway-secret")
    form.get_by_label("Files origin").fill("https://files.example.com:8443")
    form.get_by_role("button", name="Add gateway").click()
    expect(page.locator("#gateways .form-notice")).to_contain_text("Added gateway sandbox.")
    row = page.locator("tr[data-gateway='sandbox']")
    expect(row.locator("[data-files-origin]")).to_have_text("files: https://files.example.com:8443")
    row.get_by_role("button", name="Test connection").click()
    expect(row.locator("[data-test]")).to_have_text(re.compile("Reachable: /health answered “ok”"))

    form = page.locator("#gateway-create-form")
    form.get_by_label("Name").fill("dead")
    form.get_by_label("Base URL").fill("http://127.0.0.1:1")
    form.get_by_label("Secret").fill("whatever")
    form.get_by_role("button", name="Add gateway").click()
    dead = page.locator("tr[data-gateway='dead']")
    dead.get_by_role("button", name="Test connection").click()
    expect(dead.locator("[data-test=failed]")).to_contain_text("unreachable")
    assert "test-gateway-secret" not in page.content()
    page.screenshot(path="/tmp/admin-gateways.png", full_page=True)

    dead.get_by_role("button", name="Deactivate").click()  # hx-confirm accepted by the fixture
    expect(page.locator("tr[data-gateway='dead'] .badge")).to_have_text("inactive")


def test_open_a_generation_and_see_its_image(page, root, client, shop):  # noqa: F811
    acme, globex = shop
    generate_image(client, acme, prompt="a red fox in snow")
    generate_chat(client, globex, "Tell me about owls")
    sign_in(page)
    open_section(page, "Generations")
    rows = page.locator("#generation-table tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Kind").select_option("image")  # filters on change, without a reload
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"kind=image"))
    page.screenshot(path="/tmp/admin-generations.png", full_page=True)
    rows.first.locator("a.mono").click()
    expect(page.get_by_role("heading", name=re.compile("Image generation"))).to_be_visible()
    image = page.locator("img[data-preview=image]")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('img[data-preview=image]').naturalWidth > 0")
    expect(page.locator("#generation-params")).to_contain_text("a red fox in snow")
    expect(page.locator("ol.timeline li")).to_have_count(4)
    page.screenshot(path="/tmp/admin-generation-detail.png", full_page=True)


def test_the_tenant_usage_chart(page, root, client, shop):  # noqa: F811
    acme, _globex = shop
    generate_image(client, acme, n=2)
    generate_image(client, acme, prompt="x [sandbox:fail]")
    generate_chat(client, acme)
    sign_in(page)
    page.goto(f"/admin/tenants/{acme.tenant.id}")
    usage = page.locator("#tenant-usage")
    expect(usage.locator("rect.bar")).to_have_count(30)
    today_bar = usage.locator(f"rect.bar[data-day='{utcnow().date().isoformat()}']")
    expect(today_bar).to_have_attribute("data-requests", "3")
    assert float(today_bar.get_attribute("height")) > 100  # the only day with credits fills the chart
    expect(usage.locator("[data-usage-total=failures]")).to_have_text("1")
    expect(usage.locator("tr[data-usage-model]")).to_have_count(2)
    usage.scroll_into_view_if_needed()
    page.screenshot(path="/tmp/admin-tenant-usage.png", full_page=True)

    usage.get_by_role("link", name="Last 7 days").click()
    expect(page.locator("#tenant-usage rect.bar")).to_have_count(7)
    expect(page).to_have_url(re.compile(r"/usage\?date_from="))
    expect(page.locator("#tenant-credits")).to_be_visible()  # only the section was swapped

    open_section(page, "Dashboard")
    expect(page.locator("[data-today=requests]")).to_have_text("3")
    expect(page.locator("[data-today=failures]")).to_have_text("1")
    expect(page.locator("tr[data-top-tenant]")).to_have_count(1)
    page.screenshot(path="/tmp/admin-home.png", full_page=True)
