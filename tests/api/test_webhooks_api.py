"""Webhook endpoints and the low-credits threshold over the tenant-admin API and the JSON admin API:
the secret shown once, validation, who may use them, and tenant isolation (another tenant's endpoint or
delivery is the same 404 as a missing one, and stays unchanged)."""
from __future__ import annotations

import base64
import json
import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.identity import api_keys
from app.models import AuditLog, WebhookDelivery, WebhookEndpoint
from app.webhooks import endpoints
from tests.conftest import PASSWORD, TEST_ACTOR, assert_error, key_headers

WEBHOOKS = "/api/v1/tenant/webhooks"
URL = "http://127.0.0.1:9/hooks"  # allowlisted below; nothing is delivered in these tests


@pytest.fixture(autouse=True)
def allow_loopback(app):
    app.config["FETCH_ALLOWLIST"] = ("http://127.0.0.1:9",)


def admin_key(created) -> dict:
    _key, raw = api_keys.create_key(created.tenant.id, TEST_ACTOR, name="ops", scopes=["admin"])
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def acme(make):
    return make.tenant("Acme", admin_username="boss", admin_password=PASSWORD)


@pytest.fixture
def admin(make, acme) -> dict:
    return make.auth(acme, acme.admin, device_id="admin-laptop")


def snapshot(endpoint_id) -> dict:
    table = WebhookEndpoint.__table__
    return dict(db.session.execute(sa.select(table).where(table.c.id == uuid.UUID(str(endpoint_id)))).mappings().one())


def test_an_endpoint_is_registered_changed_and_deleted_and_its_secret_is_shown_only_once(client, admin):
    response = client.post(WEBHOOKS, json={"url": URL, "events": ["generation.failed", "generation.completed"]},
                           headers=admin)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert created["events"] == ["generation.completed", "generation.failed"] and created["enabled"] is True
    assert created["previous_secret_signs_until"] is None and created["disabled_reason"] is None
    endpoint_id = created["id"]
    assert secret.encode() not in snapshot(endpoint_id)["secret_encrypted"]  # encrypted at rest

    changed = client.patch(f"{WEBHOOKS}/{endpoint_id}", json={"events": ["credits.low"], "enabled": False,
                                                               "url": URL + "/v2"}, headers=admin)
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["events"] == ["credits.low"] and changed.get_json()["url"] == URL + "/v2"
    assert changed.get_json()["enabled"] is False and changed.get_json()["disabled_reason"].startswith("Disabled by")

    for later in (client.get(WEBHOOKS, headers=admin), client.get(f"{WEBHOOKS}/{endpoint_id}", headers=admin),
                  client.get(f"{WEBHOOKS}/{endpoint_id}/deliveries", headers=admin)):
        assert later.status_code == 200 and secret not in later.get_data(as_text=True)
        assert "secret\"" not in later.get_data(as_text=True)
    assert secret not in json.dumps([e.changes for e in db.session.scalars(sa.select(AuditLog))])

    assert client.delete(f"{WEBHOOKS}/{endpoint_id}", headers=admin).status_code == 204
    assert_error(client.get(f"{WEBHOOKS}/{endpoint_id}", headers=admin), 404, "webhook_endpoint_not_found")
    assert client.get(WEBHOOKS, headers=admin).get_json()["data"] == []


@pytest.mark.parametrize("body,param", [
    ({"url": URL, "events": []}, "events"),
    ({"url": URL, "events": ["generation.started"]}, "events.0"),
    ({"url": URL}, "events"),
    ({"url": "ftp://127.0.0.1/hooks", "events": ["credits.low"]}, "url"),
    ({"url": "http:///hooks", "events": ["credits.low"]}, "url"),
    ({"url": "http://user:pw@127.0.0.1:9/hooks", "events": ["credits.low"]}, "url"),
    ({"url": "http://127.0.0.1:99999/hooks", "events": ["credits.low"]}, "url"),
    ({"url": URL, "events": ["credits.low"], "enabled": None}, "enabled"),
    ({"url": URL, "events": ["credits.low"], "secret": "whsec_mine"}, "secret"),
])
def test_bad_endpoints_are_refused_and_nothing_is_created(client, admin, body, param):
    assert assert_error(client.post(WEBHOOKS, json=body, headers=admin), 400)["param"] == param
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


def test_a_tenant_has_at_most_twenty_endpoints(client, admin):
    for n in range(endpoints.MAX_ENDPOINTS):
        assert client.post(WEBHOOKS, json={"url": f"{URL}/{n}", "events": ["credits.low"]},
                           headers=admin).status_code == 201
    response = client.post(WEBHOOKS, json={"url": URL, "events": ["credits.low"]}, headers=admin)
    assert_error(response, 409, "webhook_endpoint_limit_reached")


def test_members_and_generate_only_keys_are_refused(client, make, acme):
    alice = make.user(acme, "alice")
    for headers in (key_headers(acme), make.auth(acme, alice)):
        assert_error(client.get(WEBHOOKS, headers=headers), 403, "tenant_admin_required")
        assert_error(client.post(WEBHOOKS, json={"url": URL, "events": ["credits.low"]}, headers=headers), 403)
        assert_error(client.patch("/api/v1/tenant/settings", json={"low_credits_threshold": 5}, headers=headers), 403)


def test_the_low_credits_threshold_is_a_tenant_setting(client, admin, acme):
    assert client.get("/api/v1/tenant/settings", headers=admin).get_json() == {"low_credits_threshold": None}
    response = client.patch("/api/v1/tenant/settings", json={"low_credits_threshold": 250}, headers=admin)
    assert response.status_code == 200 and response.get_json() == {"low_credits_threshold": 250}
    for bad in ({"low_credits_threshold": -1}, {"low_credits_threshold": "250"}, {"low_credits_threshold": 1.5}, {}):
        assert_error(client.patch("/api/v1/tenant/settings", json=bad, headers=admin), 400)
    assert client.get("/api/v1/tenant/settings", headers=admin).get_json() == {"low_credits_threshold": 250}
    response = client.patch("/api/v1/tenant/settings", json={"low_credits_threshold": None}, headers=admin)
    assert response.get_json() == {"low_credits_threshold": None}


@pytest.fixture
def acme_endpoint(acme):
    shown = endpoints.create_endpoint(acme.tenant.id, TEST_ACTOR, url=URL, events=["credits.low"])
    return shown.endpoint.id


@pytest.fixture
def acme_delivery(acme, acme_endpoint):
    from app.webhooks.deliveries import emit
    [delivery] = emit(acme.tenant.id, "credits.low", {"available": 1})  # to a closed port: it fails and waits
    return delivery.id


@pytest.fixture(params=["admin_jwt", "admin_key"])
def globex(request, make) -> tuple:
    created = make.tenant("Globex", admin_username="gus", admin_password=PASSWORD)
    headers = make.auth(created, created.admin) if request.param == "admin_jwt" else admin_key(created)
    own = endpoints.create_endpoint(created.tenant.id, TEST_ACTOR, url=URL, events=["credits.low"]).endpoint.id
    return headers, own


def test_another_tenants_endpoint_and_deliveries_are_404_and_unchanged(client, acme_endpoint, acme_delivery, globex):
    headers, own_endpoint = globex
    before = snapshot(acme_endpoint)
    theirs = f"{WEBHOOKS}/{acme_endpoint}"
    assert_error(client.get(theirs, headers=headers), 404, "webhook_endpoint_not_found")
    assert_error(client.patch(theirs, json={"enabled": False}, headers=headers), 404, "webhook_endpoint_not_found")
    assert_error(client.delete(theirs, headers=headers), 404, "webhook_endpoint_not_found")
    assert_error(client.post(f"{theirs}/rotate-secret", headers=headers), 404, "webhook_endpoint_not_found")
    assert_error(client.get(f"{theirs}/deliveries", headers=headers), 404, "webhook_endpoint_not_found")
    assert_error(client.post(f"{theirs}/deliveries/{acme_delivery}/redeliver", headers=headers), 404)
    # Through its own endpoint's URL, Acme's delivery is still not Globex's.
    assert_error(client.post(f"{WEBHOOKS}/{own_endpoint}/deliveries/{acme_delivery}/redeliver", headers=headers),
                 404, "webhook_delivery_not_found")
    assert snapshot(acme_endpoint) == before
    assert str(acme_endpoint) not in client.get(WEBHOOKS, headers=headers).get_data(as_text=True)
    assert client.get(f"{WEBHOOKS}/{own_endpoint}/deliveries", headers=headers).get_json()["data"] == []
    assert db.session.get(WebhookDelivery, acme_delivery).attempts == 1


@pytest.mark.parametrize("object_id", ["not-a-uuid", "1", str(uuid.uuid4()), "%27%20OR%201=1"])
def test_malformed_or_unknown_ids_are_404_not_500(client, admin, acme_endpoint, object_id):
    assert_error(client.get(f"{WEBHOOKS}/{object_id}", headers=admin), 404)
    assert_error(client.patch(f"{WEBHOOKS}/{object_id}", json={"enabled": False}, headers=admin), 404)
    assert_error(client.post(f"{WEBHOOKS}/{acme_endpoint}/deliveries/{object_id}/redeliver", headers=admin), 404)


def test_a_delivery_still_waiting_is_not_redelivered(client, admin, acme_endpoint, acme_delivery):
    response = client.post(f"{WEBHOOKS}/{acme_endpoint}/deliveries/{acme_delivery}/redeliver", headers=admin)
    assert_error(response, 409, "webhook_delivery_pending")


def test_the_admin_api_manages_a_tenants_webhooks_and_threshold(client, make, acme, acme_endpoint, acme_delivery):
    headers = make.admin_token_headers()
    base = f"/admin/api/tenants/{acme.tenant.id}"
    listed = client.get(f"{base}/webhooks", headers=headers)
    assert listed.status_code == 200 and [e["id"] for e in listed.get_json()["data"]] == [str(acme_endpoint)]
    created = client.post(f"{base}/webhooks", json={"url": URL + "/2", "events": ["credits.low"]}, headers=headers)
    assert created.status_code == 201 and created.get_json()["secret"].startswith("whsec_")
    rotated = client.post(f"{base}/webhooks/{acme_endpoint}/rotate-secret", headers=headers)
    assert rotated.status_code == 200 and rotated.get_json()["previous_secret_signs_until"]
    deliveries = client.get(f"{base}/webhooks/{acme_endpoint}/deliveries", headers=headers).get_json()["data"]
    assert [d["id"] for d in deliveries] == [str(acme_delivery)]
    assert deliveries[0]["payload"]["data"] == {"available": 1} and deliveries[0]["attempts"][0]["error"]
    assert client.patch(f"{base}/settings", json={"low_credits_threshold": 10},
                        headers=headers).get_json() == {"low_credits_threshold": 10}
    assert client.get(base, headers=headers).get_json()["low_credits_threshold"] == 10

    other = make.tenant("Globex")
    elsewhere = f"/admin/api/tenants/{other.tenant.id}/webhooks/{acme_endpoint}"
    assert_error(client.get(elsewhere, headers=headers), 404, "webhook_endpoint_not_found")
    assert_error(client.delete(elsewhere, headers=headers), 404, "webhook_endpoint_not_found")
    assert_error(client.get(f"/admin/api/tenants/{uuid.uuid4()}/webhooks", headers=headers), 404, "tenant_not_found")
    assert_error(client.get(f"{base}/webhooks"), 401)
    assert snapshot(acme_endpoint)["enabled"] is True
