"""One tenant asking for another tenant's member, device or key gets 404, and nothing changes."""
import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiKey, TenantDevice, TenantUser
from tests.conftest import PASSWORD, assert_error


@pytest.fixture
def tenant_a(make):
    created = make.tenant("Tenant A", admin_username="admin-a", admin_password=PASSWORD)
    alice = make.user(created, "alice", nickname="Alice")
    make.login(created, alice, device_id="alice-phone")
    return created, alice


@pytest.fixture(params=["admin_jwt", "admin_key"])
def tenant_b_headers(request, client, make) -> dict:
    """Tenant B acting as its own tenant admin: by JWT, or by an `admin`-scoped key."""
    created = make.tenant("Tenant B", admin_username="admin-b", admin_password=PASSWORD)
    headers = make.auth(created, created.admin)
    if request.param == "admin_key":
        response = client.post("/api/v1/tenant/keys", json={"name": "b-admin", "scopes": ["admin"]}, headers=headers)
        headers = {"Authorization": f"Bearer {response.get_json()['key']}"}
    return headers


def _snapshot(model, object_id) -> dict:
    # Column values straight from the database, not from the session's cache.
    row = db.session.execute(sa.select(model.__table__).where(model.__table__.c.id == object_id)).mappings().one()
    return dict(row)


def test_member_of_another_tenant_is_404_and_unchanged(client, tenant_a, tenant_b_headers):
    created, alice = tenant_a
    before = _snapshot(TenantUser, alice.id)
    for change in ({"nickname": "pwned"}, {"is_active": False}, {"password": "taken-over-1"}):
        response = client.patch(f"/api/v1/tenant/members/{alice.id}", json=change, headers=tenant_b_headers)
        assert_error(response, 404, "member_not_found")
    assert _snapshot(TenantUser, alice.id) == before
    listed = client.get("/api/v1/tenant/members", headers=tenant_b_headers).get_json()["data"]
    assert "alice" not in {u["username"] for u in listed}


def test_device_of_another_tenant_is_404_and_still_bound(client, make, tenant_a, tenant_b_headers):
    created, alice = tenant_a
    device_id = db.session.scalar(sa.select(TenantDevice.id).where(TenantDevice.user_id == alice.id))
    assert_error(client.delete(f"/api/v1/tenant/devices/{device_id}", headers=tenant_b_headers), 404, "device_not_found")
    assert db.session.scalar(sa.select(TenantDevice.fingerprint).where(TenantDevice.id == device_id)) == "alice-phone"
    listed = client.get("/api/v1/tenant/devices", headers=tenant_b_headers).get_json()["data"]
    assert str(device_id) not in {d["id"] for d in listed}
    # Still bound: another device is still refused for alice.
    response = client.post("/api/v1/auth/login", json={"api_key": created.api_key_plaintext, "username": "alice",
                                                       "password": PASSWORD, "device_id": "attacker-phone"})
    assert_error(response, 403, "device_not_bound")


def test_key_of_another_tenant_is_404_and_still_works(client, tenant_a, tenant_b_headers):
    created, _alice = tenant_a
    key_id = created.api_key.id
    assert_error(client.delete(f"/api/v1/tenant/keys/{key_id}", headers=tenant_b_headers), 404, "api_key_not_found")
    assert db.session.scalar(sa.select(ApiKey.revoked_at).where(ApiKey.id == key_id)) is None
    listed = client.get("/api/v1/tenant/keys", headers=tenant_b_headers).get_json()["data"]
    assert str(key_id) not in {k["id"] for k in listed}
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {created.api_key_plaintext}"})
    assert me.status_code == 200 and me.get_json()["tenant"]["name"] == "Tenant A"


@pytest.mark.parametrize("object_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g",
                                       str(uuid.uuid4()), "%27%20OR%201=1"])
def test_malformed_or_unknown_ids_are_404_not_500(client, tenant_b_headers, object_id):
    assert_error(client.patch(f"/api/v1/tenant/members/{object_id}", json={"nickname": "x"},
                              headers=tenant_b_headers), 404)
    assert_error(client.delete(f"/api/v1/tenant/devices/{object_id}", headers=tenant_b_headers), 404)
    assert_error(client.delete(f"/api/v1/tenant/keys/{object_id}", headers=tenant_b_headers), 404)


def test_foreign_and_missing_ids_get_the_same_answer(client, tenant_a, tenant_b_headers):
    """No way to tell "exists elsewhere" from "does not exist"."""
    _created, alice = tenant_a
    foreign = client.patch(f"/api/v1/tenant/members/{alice.id}", json={"nickname": "x"}, headers=tenant_b_headers)
    missing = client.patch(f"/api/v1/tenant/members/{uuid.uuid4()}", json={"nickname": "x"}, headers=tenant_b_headers)
    strip = lambda r: {k: v for k, v in r.get_json()["error"].items() if k != "request_id"}  # noqa: E731
    assert foreign.status_code == missing.status_code == 404 and strip(foreign) == strip(missing)
