"""The JSON admin API at /admin/api, driven the way an operator's script would drive it."""
import json
import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.identity import admins
from app.models import AuditLog
from tests.conftest import PASSWORD, TEST_ACTOR, assert_error, key_headers

SCRIPT_IP = "203.0.113.7"


@pytest.fixture
def admin(make):
    return make.platform_admin("ops")


@pytest.fixture
def headers(make, admin):
    return make.admin_token_headers(admin)


def create_tenant(client, headers, **body):
    body.setdefault("name", "Acme")
    response = client.post("/admin/api/tenants", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def login(client, api_key, username, password=PASSWORD, device_id="device-1"):
    return client.post("/api/v1/auth/login", json={"api_key": api_key, "username": username,
                                                   "password": password, "device_id": device_id})


def test_create_tenant_shows_its_key_once_and_the_key_works(client, headers):
    body = create_tenant(client, headers, name="Acme", contact_name="Ann", contact_email="ann@acme.test",
                         max_seats=3, require_device=False, admin_username="acme-admin", admin_password=PASSWORD)
    tenant, key = body["tenant"], body["api_key"]
    assert tenant["name"] == "Acme" and tenant["max_seats"] == 3 and tenant["require_device"] is False
    assert tenant["contact_email"] == "ann@acme.test" and tenant["is_active"] is True
    assert key["key"].startswith("wk_live_") and len(key["key"]) == len("wk_live_") + 32
    assert key["key"].startswith(key["prefix"]) and key["status"] == "active" and key["mode"] == "live"
    assert "api_secret" not in body  # it signed nothing; webhooks are signed per endpoint
    assert body["admin"]["username"] == "acme-admin" and body["admin"]["role"] == "admin"

    me = client.get("/api/v1/me", headers=bearer(key["key"]))
    assert me.status_code == 200 and me.get_json()["tenant"]["id"] == tenant["id"]
    assert login(client, key["key"], "acme-admin", device_id=None).status_code == 200

    for path in (f"/admin/api/tenants/{tenant['id']}", "/admin/api/tenants", f"/admin/api/tenants/{tenant['id']}/keys"):
        later = client.get(path, headers=headers)
        assert later.status_code == 200
        text = later.get_data(as_text=True)
        assert key["key"] not in text and "api_secret" not in text


def test_create_tenant_without_admin_uses_defaults(client, headers):
    body = create_tenant(client, headers, name="  Plain  ")
    assert body["admin"] is None
    assert body["tenant"]["name"] == "Plain" and body["tenant"]["max_seats"] == 5
    assert body["tenant"]["require_device"] is True and body["tenant"]["oss_mode"] == "PLATFORM"


def test_show_and_update_tenant(client, headers):
    tenant_id = create_tenant(client, headers)["tenant"]["id"]
    response = client.patch(f"/admin/api/tenants/{tenant_id}", headers=headers, json={
        "name": "Acme Ltd", "contact_phone": "+86 10 1234", "max_seats": 12, "enabled_models": ["gpt-4o", "flux"],
        "storage_quota_bytes": 10_000, "require_device": False})
    assert response.status_code == 200, response.get_json()
    shown = client.get(f"/admin/api/tenants/{tenant_id}", headers=headers).get_json()
    assert shown == response.get_json()
    assert shown["name"] == "Acme Ltd" and shown["max_seats"] == 12 and shown["oss_mode"] == "PLATFORM"
    assert shown["enabled_models"] == ["flux", "gpt-4o"] and shown["storage_quota_bytes"] == 10_000
    assert shown["contact_phone"] == "+86 10 1234" and shown["require_device"] is False

    cleared = client.patch(f"/admin/api/tenants/{tenant_id}", headers=headers,
                           json={"storage_quota_bytes": None, "contact_phone": None})
    assert cleared.get_json()["storage_quota_bytes"] is None and cleared.get_json()["contact_phone"] is None


def test_list_searches_pages_and_counts_members(client, headers):
    acme = create_tenant(client, headers, name="Acme Corp", max_seats=5)["tenant"]["id"]
    create_tenant(client, headers, name="Beta Ltd", contact_email="ops@beta.test")
    labs = create_tenant(client, headers, name="Acme Labs", contact_email="x@labs.test")["tenant"]["id"]
    for username in ("ann", "ben", "cat"):
        client.post(f"/admin/api/tenants/{acme}/members", headers=headers,
                    json={"username": username, "password": PASSWORD})
    client.post(f"/admin/api/tenants/{acme}/members", headers=headers,
                json={"username": "boss", "password": PASSWORD, "role": "admin"})
    ben = [m for m in client.get(f"/admin/api/tenants/{acme}/members", headers=headers).get_json()["data"]
           if m["username"] == "ben"][0]
    client.patch(f"/admin/api/tenants/{acme}/members/{ben['id']}", headers=headers, json={"is_active": False})

    found = client.get("/admin/api/tenants?search=ACME", headers=headers).get_json()
    assert found["total"] == 2 and found["page"] == 1 and found["per_page"] == 20
    assert [t["name"] for t in found["data"]] == ["Acme Labs", "Acme Corp"]  # newest first
    rows = {t["id"]: t for t in found["data"]}
    assert (rows[acme]["members"], rows[acme]["active_members"]) == (3, 2)  # tenant admins hold no seat
    assert (rows[labs]["members"], rows[labs]["active_members"]) == (0, 0)
    assert client.get("/admin/api/tenants?search=beta.test", headers=headers).get_json()["total"] == 1

    first = client.get("/admin/api/tenants?per_page=2", headers=headers).get_json()
    second = client.get("/admin/api/tenants?per_page=2&page=2", headers=headers).get_json()
    beyond = client.get("/admin/api/tenants?per_page=2&page=3", headers=headers).get_json()
    assert first["total"] == second["total"] == beyond["total"] == 3
    assert len(first["data"]) == 2 and len(second["data"]) == 1 and beyond["data"] == []
    assert {t["name"] for t in first["data"] + second["data"]} == {"Acme Corp", "Beta Ltd", "Acme Labs"}


@pytest.mark.parametrize("query", ["page=0", "per_page=101", "page=two", "sort=name"])
def test_list_refuses_bad_query(client, headers, query):
    assert_error(client.get(f"/admin/api/tenants?{query}", headers=headers), 400)


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Bearer not-a-token", "Basic b3BzOnBhc3N3b3Jk",
    "Bearer wa_pat_" + "A" * 40,  # well formed, never issued
])
def test_requests_without_a_valid_admin_token_get_401(client, make, authorization):
    tenant = make.tenant()
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path, body in (
        ("get", "/admin/api/tenants", None),
        ("post", "/admin/api/tenants", {"name": "Sneaky"}),
        ("post", "/admin/api/tenants", {"bogus": True}),  # auth comes before validation
        ("get", f"/admin/api/tenants/{tenant.tenant.id}", None),
        ("get", f"/admin/api/tenants/{uuid.uuid4()}", None),  # no probing for which tenants exist
        ("delete", f"/admin/api/tenants/{tenant.tenant.id}/keys/{tenant.api_key.id}", None),
    ):
        response = getattr(client, method)(path, json=body, headers=headers)
        assert_error(response, 401)
    assert me_works(client, tenant.api_key_plaintext)
    assert client.get("/admin/api/tenants", headers=make.admin_token_headers()).get_json()["total"] == 1


def test_a_tenant_api_key_is_not_an_admin_token(client, make):
    tenant = make.tenant(name="Acme")
    assert_error(client.get("/admin/api/tenants", headers=key_headers(tenant)), 401, "invalid_admin_token")


def me_works(client, api_key: str) -> bool:
    return client.get("/api/v1/me", headers=bearer(api_key)).status_code == 200


def test_revoked_token_gets_401(client, admin):
    token, raw = admins.issue_token(admin, TEST_ACTOR, name="script")
    assert client.get("/admin/api/tenants", headers=bearer(raw)).status_code == 200
    admins.revoke_token(token.id, TEST_ACTOR)
    assert_error(client.get("/admin/api/tenants", headers=bearer(raw)), 401, "invalid_admin_token")


def test_token_of_a_deactivated_admin_gets_401_even_after_reactivation(client, admin):
    _token, raw = admins.issue_token(admin, TEST_ACTOR)
    assert client.get("/admin/api/tenants", headers=bearer(raw)).status_code == 200
    admins.set_active(admin.id, TEST_ACTOR, False)
    assert_error(client.get("/admin/api/tenants", headers=bearer(raw)), 401, "invalid_admin_token")
    admins.set_active(admin.id, TEST_ACTOR, True)
    assert_error(client.get("/admin/api/tenants", headers=bearer(raw)), 401, "invalid_admin_token")


@pytest.mark.parametrize("tenant_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_unknown_or_malformed_tenant_id_is_404_on_every_route(client, headers, tenant_id):
    some_id = uuid.uuid4()
    for method, path, body in (
        ("get", "", None), ("patch", "", {"name": "X"}),
        ("get", "/keys", None), ("post", "/keys", {"name": "k"}), ("delete", f"/keys/{some_id}", None),
        ("get", "/members", None), ("post", "/members", {"username": "ann", "password": PASSWORD}),
        ("patch", f"/members/{some_id}", {"nickname": "A"}),
        ("get", "/devices", None), ("delete", f"/devices/{some_id}", None),
    ):
        response = getattr(client, method)(f"/admin/api/tenants/{tenant_id}{path}", json=body, headers=headers)
        assert_error(response, 404, "tenant_not_found")


def test_unmatched_url_and_wrong_method_answer_in_the_envelope(client, headers):
    assert_error(client.get("/admin/api/nothing-here", headers=headers), 404)
    response = client.put("/admin/api/tenants", json={}, headers=headers)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_another_tenants_member_key_and_device_are_404(client, headers, make):
    acme = make.tenant(name="Acme")
    beta = make.tenant(name="Beta")
    ann = make.user(acme, "ann")
    make.login(acme, ann)  # binds device-1
    device_id = client.get(f"/admin/api/tenants/{acme.tenant.id}/devices", headers=headers).get_json()["data"][0]["id"]
    under_beta = f"/admin/api/tenants/{beta.tenant.id}"

    assert_error(client.patch(f"{under_beta}/members/{ann.id}", json={"is_active": False}, headers=headers),
                 404, "member_not_found")
    assert_error(client.delete(f"{under_beta}/keys/{acme.api_key.id}", headers=headers), 404, "api_key_not_found")
    assert_error(client.delete(f"{under_beta}/devices/{device_id}", headers=headers), 404, "device_not_found")
    for path in ("members/not-a-uuid", "keys/not-a-uuid", "devices/not-a-uuid"):
        method = client.patch if path.startswith("members") else client.delete
        assert_error(method(f"{under_beta}/{path}", json={"nickname": "x"}, headers=headers), 404)

    assert client.get(f"{under_beta}/members", headers=headers).get_json()["data"] == []
    assert client.get(f"{under_beta}/devices", headers=headers).get_json()["data"] == []
    assert me_works(client, acme.api_key_plaintext)
    acme_members = client.get(f"/admin/api/tenants/{acme.tenant.id}/members", headers=headers).get_json()
    assert acme_members["data"][0]["is_active"] is True
    assert len(client.get(f"/admin/api/tenants/{acme.tenant.id}/devices", headers=headers).get_json()["data"]) == 1


@pytest.mark.parametrize("body, param, words", [
    ({"name": "Acme", "bogus": 1}, "bogus", "Unknown field"),
    ({"name": 5}, "name", None),
    ({"name": ""}, "name", None),
    ({}, "name", None),
    ({"name": "Acme", "max_seats": "5"}, "max_seats", None),
    ({"name": "Acme", "max_seats": -1}, "max_seats", None),
    ({"name": "Acme", "max_seats": 10**9}, "max_seats", None),
    ({"name": "Acme", "max_seats": True}, "max_seats", None),
    ({"name": "Acme", "require_device": "yes"}, "require_device", None),
    ({"name": "Acme", "admin_username": "boss", "admin_password": "short"}, "password", "8 characters"),
    ({"name": "Acme", "admin_username": "boss", "admin_password": "é" * 37}, "password", "72 bytes"),
    ({"name": "Acme", "admin_username": "boss"}, "admin_username", None),
])
def test_create_tenant_refuses_bad_bodies(client, headers, body, param, words):
    error = assert_error(client.post("/admin/api/tenants", json=body, headers=headers), 400)
    assert error["param"] == param
    if words:
        assert words in error["message"]
    assert client.get("/admin/api/tenants", headers=headers).get_json()["total"] == 0


def test_malformed_json_is_400_in_the_envelope(client, headers):
    response = client.post("/admin/api/tenants", data="{name: ", content_type="application/json", headers=headers)
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("body", [
    {"api_secret": "mine"}, {"max_seats": None}, {"is_active": None}, {"name": None}, {"oss_mode": "S3"},
    {"oss_mode": "CUSTOM"},  # only through /storage/mode, once the tenant's bucket is verified
    {"storage_quota_bytes": -1}, {"enabled_models": "flux"}, {"max_seats": 1.5},
])
def test_update_tenant_refuses_bad_bodies(client, headers, body):
    tenant = create_tenant(client, headers)["tenant"]
    assert_error(client.patch(f"/admin/api/tenants/{tenant['id']}", json=body, headers=headers), 400)
    assert client.get(f"/admin/api/tenants/{tenant['id']}", headers=headers).get_json() == tenant


@pytest.mark.parametrize("body, words", [
    ({"username": "ann", "password": "short"}, "8 characters"),
    ({"username": "ann", "password": "x" * 73}, "72 bytes"),
    ({"username": "ann", "password": PASSWORD, "role": "owner"}, None),
    ({"username": "a b", "password": PASSWORD}, "Username"),
    ({"username": "ann"}, None),
])
def test_create_member_refuses_bad_bodies(client, headers, body, words):
    tenant_id = create_tenant(client, headers)["tenant"]["id"]
    error = assert_error(client.post(f"/admin/api/tenants/{tenant_id}/members", json=body, headers=headers), 400)
    if words:
        assert words in error["message"]
    assert client.get(f"/admin/api/tenants/{tenant_id}/members", headers=headers).get_json()["data"] == []


@pytest.mark.parametrize("body", [{"is_active": None}, {"password": None}, {"password": "short"},
                                  {"role": "admin"}, {"is_active": "false"}])
def test_update_member_refuses_bad_bodies(client, headers, make, body):
    acme = make.tenant()
    ann = make.user(acme, "ann")
    token = make.auth(acme, ann)
    response = client.patch(f"/admin/api/tenants/{acme.tenant.id}/members/{ann.id}", json=body, headers=headers)
    assert_error(response, 400)
    assert client.get("/api/v1/me", headers=token).status_code == 200  # still active, same password


def test_members_are_added_listed_and_changed(client, headers, make):
    acme = make.tenant(name="Acme", max_seats=2)
    members = f"/admin/api/tenants/{acme.tenant.id}/members"
    created = client.post(members, headers=headers, json={"username": "ann", "password": PASSWORD, "nickname": "Ann"})
    assert created.status_code == 201
    ann = created.get_json()
    assert ann["username"] == "ann" and ann["nickname"] == "Ann" and ann["role"] == "member" and ann["is_active"]
    assert "password" not in created.get_data(as_text=True)

    listing = client.get(members, headers=headers).get_json()
    assert [m["id"] for m in listing["data"]] == [ann["id"]]
    assert listing["seats_used"] == 1 and listing["max_seats"] == 2

    token = bearer(login(client, acme.api_key_plaintext, "ann").get_json()["access_token"])
    renamed = client.patch(f"{members}/{ann['id']}", headers=headers, json={"nickname": "Annie"})
    assert renamed.status_code == 200 and renamed.get_json()["nickname"] == "Annie"
    assert client.get("/api/v1/me", headers=token).status_code == 200

    new_password = "a-brand-new-password"
    assert client.patch(f"{members}/{ann['id']}", headers=headers, json={"password": new_password}).status_code == 200
    assert_error(client.get("/api/v1/me", headers=token), 401)
    assert login(client, acme.api_key_plaintext, "ann", password=PASSWORD).status_code == 401
    token = bearer(login(client, acme.api_key_plaintext, "ann", password=new_password).get_json()["access_token"])

    deactivated = client.patch(f"{members}/{ann['id']}", headers=headers, json={"is_active": False})
    assert deactivated.get_json()["is_active"] is False
    assert_error(client.get("/api/v1/me", headers=token), 401)
    assert client.get(members, headers=headers).get_json()["seats_used"] == 0


def test_seat_limit_on_create_and_on_reactivation(client, headers, make):
    acme = make.tenant(max_seats=1)
    members = f"/admin/api/tenants/{acme.tenant.id}/members"
    ann = client.post(members, headers=headers, json={"username": "ann", "password": PASSWORD}).get_json()
    assert_error(client.post(members, headers=headers, json={"username": "ben", "password": PASSWORD}),
                 409, "seat_limit_reached")
    # tenant admins hold no seat
    assert client.post(members, headers=headers,
                       json={"username": "boss", "password": PASSWORD, "role": "admin"}).status_code == 201

    client.patch(f"{members}/{ann['id']}", headers=headers, json={"is_active": False})
    assert client.post(members, headers=headers, json={"username": "ben", "password": PASSWORD}).status_code == 201
    assert_error(client.patch(f"{members}/{ann['id']}", headers=headers, json={"is_active": True}),
                 409, "seat_limit_reached")
    listing = client.get(members, headers=headers).get_json()
    assert listing["seats_used"] == 1
    assert {m["username"]: m["is_active"] for m in listing["data"]} == {"ann": False, "ben": True, "boss": True}

    client.patch(f"/admin/api/tenants/{acme.tenant.id}", headers=headers, json={"max_seats": 2})
    assert client.patch(f"{members}/{ann['id']}", headers=headers, json={"is_active": True}).status_code == 200


def test_unbinding_a_device_lets_its_user_log_in_from_a_new_one(client, headers, make):
    acme = make.tenant()
    ann = make.user(acme, "ann")
    make.login(acme, ann, device_id="phone-1")
    assert_error(login(client, acme.api_key_plaintext, "ann", device_id="phone-2"), 403, "device_not_bound")

    devices = client.get(f"/admin/api/tenants/{acme.tenant.id}/devices", headers=headers).get_json()["data"]
    assert [(d["user_id"], d["fingerprint"]) for d in devices] == [(str(ann.id), "phone-1")]
    response = client.delete(f"/admin/api/tenants/{acme.tenant.id}/devices/{devices[0]['id']}", headers=headers)
    assert response.status_code == 204 and response.get_data() == b""
    assert client.get(f"/admin/api/tenants/{acme.tenant.id}/devices", headers=headers).get_json()["data"] == []
    assert login(client, acme.api_key_plaintext, "ann", device_id="phone-2").status_code == 200
    assert_error(client.delete(f"/admin/api/tenants/{acme.tenant.id}/devices/{devices[0]['id']}", headers=headers),
                 404, "device_not_found")


def test_keys_are_created_shown_once_listed_and_revoked(client, headers, make):
    acme = make.tenant()
    keys = f"/admin/api/tenants/{acme.tenant.id}/keys"
    response = client.post(keys, headers=headers, json={"name": "staging", "mode": "test", "scopes": ["admin"]})
    assert response.status_code == 201
    created = response.get_json()
    assert created["key"].startswith("wk_test_") and created["name"] == "staging" and created["scopes"] == ["admin"]
    me = client.get("/api/v1/me", headers=bearer(created["key"])).get_json()
    assert me["mode"] == "test" and me["tenant"]["id"] == str(acme.tenant.id)

    listing = client.get(keys, headers=headers)
    assert {k["id"] for k in listing.get_json()["data"]} == {created["id"], str(acme.api_key.id)}
    assert created["key"] not in listing.get_data(as_text=True) and '"key"' not in listing.get_data(as_text=True)

    revoked = client.delete(f"{keys}/{created['id']}", headers=headers)
    assert revoked.status_code == 200
    assert revoked.get_json()["status"] == "revoked" and revoked.get_json()["revoked_at"]
    assert_error(client.get("/api/v1/me", headers=bearer(created["key"])), 401, "invalid_api_key")
    assert me_works(client, acme.api_key_plaintext)  # the other key keeps working: rotation without downtime
    assert client.delete(f"{keys}/{created['id']}", headers=headers).status_code == 200  # revoking twice is harmless


@pytest.mark.parametrize("body", [{"mode": "prod"}, {"scopes": ["root"]}, {"name": ""}, {"expires_at": "2001-01-01T00:00:00Z"}])
def test_create_key_refuses_bad_bodies(client, headers, make, body):
    acme = make.tenant()
    response = client.post(f"/admin/api/tenants/{acme.tenant.id}/keys", json=body, headers=headers)
    assert_error(response, 400)
    assert len(client.get(f"/admin/api/tenants/{acme.tenant.id}/keys", headers=headers).get_json()["data"]) == 1


def test_deactivating_a_tenant_locks_out_its_keys_and_members_at_once(client, headers, make):
    acme = make.tenant()
    ann = make.user(acme, "ann")
    tokens = make.login(acme, ann)
    member = bearer(tokens["access_token"])
    assert me_works(client, acme.api_key_plaintext) and client.get("/api/v1/me", headers=member).status_code == 200

    response = client.patch(f"/admin/api/tenants/{acme.tenant.id}", headers=headers, json={"is_active": False})
    assert response.status_code == 200 and response.get_json()["is_active"] is False
    assert_error(client.get("/api/v1/me", headers=key_headers(acme)), 401)
    assert_error(client.get("/api/v1/me", headers=member), 401)
    assert_error(client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    assert_error(login(client, acme.api_key_plaintext, "ann"), 401)

    # the operator can still see and manage it
    assert client.get(f"/admin/api/tenants/{acme.tenant.id}/members", headers=headers).status_code == 200
    client.patch(f"/admin/api/tenants/{acme.tenant.id}", headers=headers, json={"is_active": True})
    assert me_works(client, acme.api_key_plaintext)


def test_changes_are_audited_with_actor_and_ip_and_no_secrets(client, admin, make):
    _token, raw_token = admins.issue_token(admin, TEST_ACTOR)
    headers = bearer(raw_token)
    call = {"headers": headers, "environ_base": {"REMOTE_ADDR": SCRIPT_IP}}

    body = client.post("/admin/api/tenants", json={"name": "Acme", "admin_username": "boss",
                                                   "admin_password": "boss-password-1"}, **call).get_json()
    tenant_id = body["tenant"]["id"]
    base = f"/admin/api/tenants/{tenant_id}"
    ann = client.post(f"{base}/members", json={"username": "ann", "password": "ann-password-1"}, **call).get_json()
    client.patch(f"{base}/members/{ann['id']}", json={"password": "ann-password-2", "nickname": "Ann"}, **call)
    key = client.post(f"{base}/keys", json={"name": "second"}, **call).get_json()
    client.delete(f"{base}/keys/{key['id']}", **call)
    client.patch(base, json={"max_seats": 9}, **call)
    assert login(client, body["api_key"]["key"], "ann", password="ann-password-2").status_code == 200
    device = client.get(f"{base}/devices", **call).get_json()["data"][0]
    client.delete(f"{base}/devices/{device['id']}", **call)
    client.patch(base, json={"is_active": False}, **call)

    query = sa.select(AuditLog).where(AuditLog.actor_type == "platform_admin").order_by(AuditLog.created_at)
    entries = list(db.session.scalars(query))
    actions = [e.action for e in entries]
    for action in ("tenant.create", "api_key.create", "user.create", "user.update", "api_key.revoke",
                   "tenant.update", "device.unbind", "tenant.deactivate"):
        assert action in actions, actions
    for entry in entries:
        assert (entry.actor_id, entry.actor_name, entry.ip) == (str(admin.id), "ops", SCRIPT_IP)
        assert str(entry.tenant_id) == tenant_id
    by_action = {e.action: e for e in entries}
    assert by_action["tenant.update"].changes == {"max_seats": [5, 9]}
    assert by_action["user.update"].changes["password"] == "changed"

    recorded = json.dumps([e.changes for e in db.session.scalars(sa.select(AuditLog))])
    for secret in (body["api_key"]["key"], key["key"], raw_token, "boss-password-1",
                   "ann-password-1", "ann-password-2"):
        assert secret not in recorded
