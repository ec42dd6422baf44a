"""The dashboard in real headless Chromium, served by a live server over the test's database."""
import re

import pytest

from tests.conftest import PASSWORD

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

KEY = re.compile(r"^wk_live_[A-Za-z0-9]{32}$")


def sign_in(page, username: str = "root", password: str = PASSWORD):
    page.goto("/admin/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_section(page, label: str):
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=label, exact=True).click()


def test_sign_in_then_create_a_tenant_and_copy_its_key(page, root, client):
    sign_in(page, password="not-the-password")
    expect(page.locator(".form-error")).to_have_text("Invalid username or password.")
    sign_in(page)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    open_section(page, "Tenants")
    page.get_by_role("button", name="New tenant").click()
    page.get_by_label("Name", exact=True).fill("Acme Studio")
    page.get_by_label("Contact email").fill("ann@acme.test")
    page.get_by_label("Max seats").fill("100001")
    page.get_by_role("button", name="Create tenant").click()
    # The error comes back inline, beside its field, with what was typed kept.
    expect(page.locator("#new-max_seats-error")).to_have_text("max_seats must be between 0 and 100000.")
    expect(page.get_by_label("Max seats")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Acme Studio")

    page.get_by_label("Max seats").fill("3")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_text("Copy this key now — it will not be shown again.")).to_be_visible()
    key = page.locator("#new-api-key").input_value()
    assert KEY.match(key)
    copy = page.locator("button[data-copy='#new-api-key']")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key
    page.screenshot(path="/tmp/admin-tenant-created.png", full_page=True)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    page.get_by_role("button", name="I have saved it — open the tenant").click()
    expect(page.get_by_role("heading", name="Acme Studio")).to_be_visible()
    assert key not in page.content()


def test_active_search_updates_the_table_without_a_reload(page, root, make):
    for name in ("Acme", "Globex", "Initech"):
        make.tenant(name)
    sign_in(page)
    page.goto("/admin/tenants")
    rows = page.locator("#tenant-table tbody tr")
    expect(rows).to_have_count(3)
    page.evaluate("window.stillTheSamePage = true")

    page.get_by_role("searchbox", name="Search tenants").press_sequentially("glo")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Globex")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page).to_have_url(re.compile(r"/admin/tenants\?q=glo$"))
    page.screenshot(path="/tmp/admin-tenant-search.png")

    rows.first.get_by_role("link", name="Globex").click()
    expect(page.get_by_role("heading", name="Globex")).to_be_visible()


def test_tenant_detail_members_keys_and_devices(page, root, make):
    acme = make.tenant("Acme", max_seats=2)
    gus = make.user(acme, "gus")
    make.login(acme, gus, device_id="gus-phone")  # binds a device to unbind below
    sign_in(page)
    page.goto(f"/admin/tenants/{acme.tenant.id}")
    members = page.locator("#tenant-members")
    expect(members.locator("[data-seats]")).to_have_text("Seats used: 1 / 2")

    add = page.locator("#member-add-form")
    add.get_by_label("Username").fill("alice")
    add.get_by_label("Password").fill(PASSWORD)
    add.get_by_label("Nickname").fill("Alice")
    add.get_by_role("button", name="Add member").click()
    expect(members.locator(".form-notice")).to_have_text("Added alice.")
    expect(members.locator("[data-seats]")).to_have_text("Seats used: 2 / 2")

    add = page.locator("#member-add-form")  # the section was swapped
    add.get_by_label("Username").fill("bob")
    add.get_by_label("Password").fill(PASSWORD)
    add.get_by_role("button", name="Add member").click()
    expect(add.locator(".form-error")).to_contain_text("All 2 seats are in use")
    expect(add.get_by_label("Username")).to_have_value("bob")
    add.screenshot(path="/tmp/admin-member-error.png")

    alice_row = members.locator("tr[data-username=alice]")
    alice_row.get_by_role("button", name="Deactivate").click()
    expect(alice_row.locator(".badge")).to_have_text("inactive")
    expect(members.locator("[data-seats]")).to_have_text("Seats used: 1 / 2")

    # Editing the tenant tells the members section to refresh its seat count.
    page.get_by_text("Edit details").click()
    page.locator("#tenant-info").get_by_label("Max seats").fill("4")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#tenant-info .form-notice")).to_have_text("Saved.")
    expect(members.locator("[data-seats]")).to_have_text("Seats used: 1 / 4")

    keys = page.locator("#tenant-keys")
    keys.get_by_label("Name").fill("ci")
    keys.get_by_role("button", name="Create key").click()
    expect(keys.locator("#new-key")).to_contain_text("it will not be shown again")
    assert KEY.match(keys.locator("#created-key").input_value())
    ci_row = keys.locator("tbody tr", has_text="ci")
    ci_row.get_by_role("button", name="Revoke").click()
    expect(keys.locator(".form-notice")).to_contain_text("it no longer authenticates")
    expect(keys.locator("tbody tr", has_text="ci").locator(".badge")).to_have_text("revoked")

    devices = page.locator("#tenant-devices")
    expect(devices).to_contain_text("gus-phone")
    page.screenshot(path="/tmp/admin-tenant-detail.png", full_page=True)
    devices.get_by_role("button", name="Unbind").click()
    expect(devices.locator(".form-notice")).to_contain_text("Device unbound")
    expect(devices).not_to_contain_text("gus-phone")


def test_create_an_admin_and_filter_the_audit_log(page, root, make):
    make.tenant("Acme")
    sign_in(page)
    open_section(page, "Admins")
    form = page.locator("#admin-create-form")
    form.get_by_label("Username").fill("ops")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Create admin").click()
    expect(page.locator("#admin-create-form .field-error")).to_have_text("Password must be at least 8 characters.")
    form = page.locator("#admin-create-form")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Create admin").click()
    expect(page.locator("tr[data-username=ops] .badge")).to_have_text("active")

    open_section(page, "Audit log")
    table = page.locator("#audit-table")
    expect(table.locator("tbody tr")).to_have_count(4)  # root, tenant + key, ops
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label("Action").select_option("admin.create")
    expect(table.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Actor").fill("root")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr")).to_contain_text("ops")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page).to_have_url(re.compile(r"action=admin\.create"))
    page.screenshot(path="/tmp/admin-audit.png", full_page=True)


def test_an_ended_session_sends_htmx_to_the_sign_in_page(page, root, make):
    make.tenant("Acme")
    sign_in(page)
    page.goto("/admin/tenants")
    page.context.clear_cookies()
    page.get_by_role("searchbox", name="Search tenants").press_sequentially("ac")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/tenants"))
    expect(page.locator("#tenant-table")).to_have_count(0)
    page.screenshot(path="/tmp/admin-sign-in.png")
    sign_in(page)  # and back to work
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
