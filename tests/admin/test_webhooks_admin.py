"""The Webhooks section of a tenant's page: endpoints (secret shown once), enable/disable, rotation,
recent deliveries with redelivery, the low-credits threshold; and in Chromium at desktop and phone widths."""
from __future__ import annotations

import re

import pytest
from standardwebhooks import Webhook

from app.webhooks import endpoints
from tests.admin.conftest import audit_entries, text_of
from tests.conftest import PASSWORD, TEST_ACTOR

SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


def test_an_endpoint_is_added_with_its_secret_shown_once_and_deliveries_can_be_redelivered(dashboard, make,
                                                                                           receiver):
    acme = make.funded_tenant("Acme")
    base = f"/admin/tenants/{acme.tenant.id}"
    response = dashboard.post(f"{base}/webhooks", {"url": "http://localhost:1/hooks", "events": ["credits.low"]})
    assert response.status_code == 400 and "does not resolve to a public address" in text_of(response)
    assert 'value="http://localhost:1/hooks"' in text_of(response)  # what was typed stays

    response = dashboard.post(f"{base}/webhooks", {"url": receiver.url, "events": ["credits.low"]})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = SECRET.search(text_of(response)).group(0)
    assert "it will not be shown again" in text_of(response)
    assert secret not in text_of(dashboard.get(base))
    [endpoint] = endpoints.list_endpoints(acme.tenant.id)

    receiver.answer((500, {}, b"down for a moment"))
    response = dashboard.post(f"{base}/low-credits", {"low_credits_threshold": "5000"})
    assert response.status_code == 200 and "fall below 5,000" in text_of(response)
    first = receiver.wait_for(1)[0]
    assert Webhook(secret).verify(first.body, first.headers)["type"] == "credits.low"
    page = text_of(dashboard.get(base))
    assert 'data-status="PENDING"' in page and "down for a moment" in page and ">Redeliver<" not in page

    response = dashboard.post(f"{base}/webhooks/{endpoint.id}/enabled", {"active": "0"})
    assert "Disabled" in text_of(response) and 'data-status="DISABLED"' in text_of(response)
    response = dashboard.post(f"{base}/webhooks/{endpoint.id}/enabled", {"active": "1"})
    delivery_id = re.search(r'id="delivery-([0-9a-f-]+)"', text_of(response)).group(1)
    response = dashboard.post(f"{base}/webhooks/{endpoint.id}/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 200 and "Redelivering msg_" in text_of(response)
    assert 'data-status="SUCCEEDED"' in text_of(response)
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]

    response = dashboard.post(f"{base}/webhooks/{endpoint.id}/rotate")
    rotated = SECRET.search(text_of(response)).group(0)
    assert rotated != secret and "old secret signs too until" in text_of(response)

    response = dashboard.post(f"{base}/low-credits", {"low_credits_threshold": "-1"})
    assert response.status_code == 400 and "from 0 to" in text_of(response)
    response = dashboard.post(f"{base}/low-credits", {"low_credits_threshold": ""})
    assert "No low-credits alert." in text_of(response)

    response = dashboard.post(f"{base}/webhooks/{endpoint.id}/delete")
    assert "Deleted" in text_of(response) and "No webhook endpoints." in text_of(response)
    actions = [e.action for e in audit_entries(tenant_id=acme.tenant.id) if e.action.startswith("webhook.")]
    assert actions == ["webhook.create", "webhook.update", "webhook.update", "webhook.redeliver",
                       "webhook.rotate_secret", "webhook.delete"]
    assert all(secret not in str(e.changes) and rotated not in str(e.changes) for e in audit_entries())


def test_another_tenants_endpoint_is_404_under_this_tenants_page(dashboard, make, receiver):
    acme, globex = make.tenant("Acme"), make.tenant("Globex")
    theirs = endpoints.create_endpoint(globex.tenant.id, TEST_ACTOR, url=receiver.url, events=["credits.low"])
    base = f"/admin/tenants/{acme.tenant.id}/webhooks/{theirs.endpoint.id}"
    for action, data in (("enabled", {"active": "0"}), ("rotate", {}), ("delete", {})):
        response = dashboard.post(f"{base}/{action}", data)
        assert response.status_code == 404, action
    assert endpoints.get_endpoint(globex.tenant.id, theirs.endpoint.id).enabled


pytest.importorskip("playwright")


@pytest.mark.parametrize("width", [1400, 390])
def test_the_webhooks_section_in_chromium(chromium, live_server, root, make, receiver, width):
    from playwright.sync_api import expect

    from tests.admin.test_browser import sign_in
    from tests.conftest import require
    require(chromium is not None, "Chromium not installed (apt-get install chromium)")
    acme = make.funded_tenant("Acme")
    context = chromium.new_context(base_url=live_server, viewport={"width": width, "height": 900})
    context.set_default_timeout(5000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        sign_in(page, password=PASSWORD)
        page.goto(f"/admin/tenants/{acme.tenant.id}/webhooks")
        section = page.locator("#tenant-webhooks")
        section.get_by_label("URL").fill(receiver.url)
        section.get_by_role("button", name="Add endpoint").click()
        expect(section.locator("#new-webhook-secret")).to_contain_text("it will not be shown again")
        assert SECRET.fullmatch(section.locator("#webhook-secret").input_value())

        receiver.answer((503, {"Retry-After": "30"}, b"maintenance until noon"))
        section = page.locator("#tenant-webhooks")
        section.get_by_label("Low-credits alert").fill("2000")
        section.get_by_role("button", name="Save").click()
        expect(section.locator(".form-notice")).to_contain_text("fall below 2,000")
        expect(section.locator("tr[data-status=PENDING]")).to_have_count(1)
        section.locator("details.attempts summary").first.click()
        expect(section.locator("details.attempts")).to_contain_text("maintenance until noon")
        section.scroll_into_view_if_needed()
        section.screenshot(path=f"/tmp/admin-webhooks-{width}.png")
        page.screenshot(path=f"/tmp/admin-webhooks-{width}-page.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"

        section.get_by_role("button", name="Disable").click()
        expect(section.locator("tbody tr .badge").first).to_have_text("disabled")
        expect(section.locator("tr[data-status=DISABLED]")).to_have_count(1)
        section.get_by_role("button", name="Enable").click()
        section.get_by_role("button", name="Redeliver").click()
        expect(section.locator(".form-notice")).to_contain_text("Redelivering msg_")
        expect(section.locator("tr[data-status=SUCCEEDED]")).to_have_count(1)
        section.get_by_role("button", name="Rotate secret").click()
        expect(section.locator("#new-webhook-secret")).to_contain_text("Secret rotated")
        section.screenshot(path=f"/tmp/admin-webhooks-{width}-rotated.png")
    finally:
        context.close()
