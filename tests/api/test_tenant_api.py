"""The tenant-admin API over HTTP: members, seats, devices, keys, and who may use it."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiKey, AuditLog, TenantUser
from tests.conftest import PASSWORD, assert_error, key_headers

MEMBERS = "/api/v1/tenant/members"
DEVICES = "/api/v1/tenant/devices"
KEYS = "/api/v1/tenant/keys"


@pytest.fixture
def acme(make):
    return make.tenant("Acme", max_seats=3, admin_username="boss", admin_password=PASSWORD)


@pytest.fixture
def admin(make, acme) -> dict:
    return make.auth(acme, acme.admin, device_id="admin-laptop")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _usernames(client, headers) -> set[str]:
    return {u["username"] for u in client.get(MEMBERS, headers=headers).get_json()["data"]}


def _admin_key(client, admin, scopes=("admin",)) -> str:
    response = client.post(KEYS, json={"name": "ops", "scopes": list(scopes)}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


@pytest.mark.parametrize("path", [MEMBERS, DEVICES, KEYS])
def test_tenant_admin_jwt_and_admin_key_may_list(client, admin, path):
    key = _admin_key(client, admin)
    for headers in (admin, bearer(key), {"X-API-Key": key}):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["object"] == "list"


@pytest.mark.parametrize("method,path,body", [
    ("get", MEMBERS, None), ("post", MEMBERS, {"username": "eve", "password": PASSWORD}),
    ("get", DEVICES, None), ("get", KEYS, None), ("post", KEYS, {"name": "mine", "scopes": ["admin"]}),
])
def test_members_and_generate_only_keys_are_refused(client, make, acme, method, path, body):
    alice = make.user(acme, "alice")
    for headers in (key_headers(acme), make.auth(acme, alice)):
        response = getattr(client, method)(path, json=body, headers=headers)
        assert_error(response, 403, "tenant_admin_required")
    assert_error(getattr(client, method)(path, json=body), 401, "missing_credentials")
    assert "eve" not in {u.username for u in db.session.scalars(sa.select(TenantUser))}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey)) == 1


def test_member_cannot_patch_or_unbind(client, make, acme):
    alice = make.user(acme, "alice")
    bob = make.user(acme, "bob")
    headers = make.auth(acme, alice)
    assert_error(client.patch(f"{MEMBERS}/{bob.id}", json={"is_active": False}, headers=headers), 403,
                 "tenant_admin_required")
    assert_error(client.delete(f"{KEYS}/{acme.api_key.id}", headers=headers), 403, "tenant_admin_required")
    assert client.get("/api/v1/me", headers=key_headers(acme)).status_code == 200


def test_list_members_shows_seats(client, make, acme, admin):
    make.user(acme, "alice", nickname="Alice")
    body = client.get(MEMBERS, headers=admin).get_json()
    assert body["max_seats"] == 3 and body["seats_used"] == 1
    rows = {u["username"]: u for u in body["data"]}
    assert rows["alice"]["nickname"] == "Alice" and rows["alice"]["role"] == "member"
    assert rows["boss"]["role"] == "admin"
    assert "password" not in str(body) and "hash" not in str(body)


def test_create_member_then_they_log_in(client, make, acme, admin):
    response = client.post(MEMBERS, json={"username": "alice", "password": PASSWORD, "nickname": "Al"},
                           headers=admin)
    assert response.status_code == 201
    created = response.get_json()
    assert created["username"] == "alice" and created["nickname"] == "Al" and created["role"] == "member"
    assert created["is_active"] is True and "password" not in created
    user = db.session.get(TenantUser, uuid.UUID(created["id"]))
    assert make.login(acme, user)["user"]["id"] == created["id"]
    # The change is in the audit log, attributed to the tenant admin, with no secret in it.
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "user.create",
                                                        AuditLog.target_id == created["id"]))
    assert entry.actor_type == "tenant_admin" and entry.actor_name == "boss" and entry.tenant_id == acme.tenant.id
    assert PASSWORD not in str(entry.changes)


@pytest.mark.parametrize("password,words", [
    ("short", "at least 8"),
    ("x" * 73, "at most 72 bytes"),
    ("é" * 37, "at most 72 bytes"),  # 37 characters, 74 bytes
])
def test_create_member_refuses_a_bad_password_and_creates_nothing(client, acme, admin, password, words):
    response = client.post(MEMBERS, json={"username": "alice", "password": password}, headers=admin)
    error = assert_error(response, 400)
    assert words in error["message"] and error["param"] == "password"
    assert "alice" not in _usernames(client, admin)


def test_create_member_accepts_exactly_72_bytes(client, acme, admin):
    response = client.post(MEMBERS, json={"username": "alice", "password": "é" * 36}, headers=admin)
    assert response.status_code == 201


def test_duplicate_username_is_409_case_insensitively(client, make, acme, admin):
    make.user(acme, "alice")
    for username in ("alice", "ALICE", "boss"):
        response = client.post(MEMBERS, json={"username": username, "password": PASSWORD}, headers=admin)
        assert_error(response, 409, "username_taken")
    assert client.get(MEMBERS, headers=admin).get_json()["seats_used"] == 1


@pytest.mark.parametrize("body", [
    {"username": "alice", "password": PASSWORD, "is_admin": True},
    {"username": "alice", "password": PASSWORD, "tenant_id": "00000000-0000-0000-0000-000000000000"},
    {"username": "alice"},
    {"username": "alice", "password": 12345678},
    {"username": "a b", "password": PASSWORD},
    {"username": "alice", "password": PASSWORD, "role": "owner"},
    {"username": "alice", "password": PASSWORD, "nickname": "n" * 81},
])
def test_create_member_rejects_malformed_bodies(client, acme, admin, body):
    assert_error(client.post(MEMBERS, json=body, headers=admin), 400)
    assert "alice" not in _usernames(client, admin)


def test_patch_member_nickname_active_and_password(client, make, acme, admin):
    alice = make.user(acme, "alice")
    url = f"{MEMBERS}/{alice.id}"
    response = client.patch(url, json={"nickname": "Alice A."}, headers=admin)
    assert response.status_code == 200 and response.get_json()["nickname"] == "Alice A."

    response = client.patch(url, json={"is_active": False}, headers=admin)
    assert response.status_code == 200 and response.get_json()["is_active"] is False
    assert client.get(MEMBERS, headers=admin).get_json()["seats_used"] == 0
    response = client.patch(url, json={"is_active": True}, headers=admin)
    assert response.status_code == 200 and response.get_json()["is_active"] is True

    assert client.patch(url, json={"password": "new-password-1"}, headers=admin).status_code == 200
    assert make.login(acme, alice, password="new-password-1")["user"]["username"] == "alice"
    assert PASSWORD not in str([e.changes for e in db.session.scalars(sa.select(AuditLog))])
    assert "new-password-1" not in str([e.changes for e in db.session.scalars(sa.select(AuditLog))])


@pytest.mark.parametrize("body,status", [
    ({"password": "short"}, 400),
    ({"password": "y" * 73}, 400),
    ({"username": "renamed"}, 400),
    ({"role": "admin"}, 400),
    ({"is_active": None}, 400),
    ({"password": None}, 400),
    ({"is_active": "no"}, 400),
])
def test_patch_member_refuses_bad_changes_and_changes_nothing(client, make, acme, admin, body, status):
    alice = make.user(acme, "alice", nickname="Alice")
    tokens = make.login(acme, alice)
    assert_error(client.patch(f"{MEMBERS}/{alice.id}", json=body, headers=admin), status)
    row = {u["username"]: u for u in client.get(MEMBERS, headers=admin).get_json()["data"]}["alice"]
    assert row["is_active"] is True and row["role"] == "member" and row["nickname"] == "Alice"
    assert client.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 200
    assert make.login(acme, alice)["user"]["username"] == "alice"


def test_patch_unknown_or_malformed_member_id_is_404(client, acme, admin):
    for member_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", "123"):
        assert_error(client.patch(f"{MEMBERS}/{member_id}", json={"nickname": "x"}, headers=admin), 404)


def test_seat_limit_on_create_and_on_reactivation(client, make, acme, admin):
    first = client.post(MEMBERS, json={"username": "mem1", "password": PASSWORD}, headers=admin).get_json()
    for name in ("mem2", "mem3"):
        assert client.post(MEMBERS, json={"username": name, "password": PASSWORD}, headers=admin).status_code == 201
    error = assert_error(client.post(MEMBERS, json={"username": "mem4", "password": PASSWORD}, headers=admin), 409,
                         "seat_limit_reached")
    assert "3" in error["message"]
    assert "mem4" not in _usernames(client, admin)

    # Tenant admins do not take seats.
    response = client.post(MEMBERS, json={"username": "boss2", "password": PASSWORD, "role": "admin"}, headers=admin)
    assert response.status_code == 201 and response.get_json()["role"] == "admin"

    # Freeing a seat lets a new member in; the old one then cannot come back.
    assert client.patch(f"{MEMBERS}/{first['id']}", json={"is_active": False}, headers=admin).status_code == 200
    assert client.post(MEMBERS, json={"username": "mem4", "password": PASSWORD}, headers=admin).status_code == 201
    assert_error(client.patch(f"{MEMBERS}/{first['id']}", json={"is_active": True}, headers=admin), 409,
                 "seat_limit_reached")
    body = client.get(MEMBERS, headers=admin).get_json()
    assert body["seats_used"] == 3
    assert {u["username"]: u["is_active"] for u in body["data"]}["mem1"] is False
    # Changing a nickname of an inactive member is not a reactivation.
    assert client.patch(f"{MEMBERS}/{first['id']}", json={"nickname": "gone"}, headers=admin).status_code == 200


def test_deactivating_an_admin_frees_no_seat_and_reactivating_takes_none(client, make, acme, admin):
    boss2 = client.post(MEMBERS, json={"username": "boss2", "password": PASSWORD, "role": "admin"},
                        headers=admin).get_json()
    for name in ("mem1", "mem2", "mem3"):
        client.post(MEMBERS, json={"username": name, "password": PASSWORD}, headers=admin)
    assert client.patch(f"{MEMBERS}/{boss2['id']}", json={"is_active": False}, headers=admin).status_code == 200
    assert client.patch(f"{MEMBERS}/{boss2['id']}", json={"is_active": True}, headers=admin).status_code == 200
    assert client.get(MEMBERS, headers=admin).get_json()["seats_used"] == 3


def test_devices_list_and_unbind(client, make, acme, admin):
    alice = make.user(acme, "alice")
    make.login(acme, alice, device_id="alice-phone")
    devices = client.get(DEVICES, headers=admin).get_json()["data"]
    by_user = {d["user_id"]: d for d in devices}
    assert by_user[str(alice.id)]["fingerprint"] == "alice-phone"
    assert by_user[str(acme.admin.id)]["fingerprint"] == "admin-laptop"

    device_id = by_user[str(alice.id)]["id"]
    assert client.delete(f"{DEVICES}/{device_id}", headers=admin).status_code == 204
    assert_error(client.delete(f"{DEVICES}/{device_id}", headers=admin), 404)
    assert {d["user_id"] for d in client.get(DEVICES, headers=admin).get_json()["data"]} == {str(acme.admin.id)}
    assert make.login(acme, alice, device_id="alice-new-phone")["user"]["username"] == "alice"


def test_unbinding_ends_the_sessions_on_that_device(client, make, acme, admin):
    alice = make.user(acme, "alice")
    tokens = make.login(acme, alice, device_id="lost-phone")
    device = [d for d in client.get(DEVICES, headers=admin).get_json()["data"] if d["user_id"] == str(alice.id)][0]
    assert client.delete(f"{DEVICES}/{device['id']}", headers=admin).status_code == 204
    assert_error(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401, "session_ended")
    assert_error(client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    # The admin's own session, on another device, is untouched.
    assert client.get(MEMBERS, headers=admin).status_code == 200


def test_admin_key_can_unbind(client, make, acme, admin):
    alice = make.user(acme, "alice")
    make.login(acme, alice, device_id="alice-phone")
    key = _admin_key(client, admin)
    device = [d for d in client.get(DEVICES, headers=bearer(key)).get_json()["data"] if d["user_id"] == str(alice.id)]
    assert client.delete(f"{DEVICES}/{device[0]['id']}", headers=bearer(key)).status_code == 204


def test_create_key_shows_it_once_and_never_in_the_list(client, acme, admin):
    response = client.post(KEYS, json={"name": "ci", "mode": "test", "scopes": ["generate", "admin"]}, headers=admin)
    assert response.status_code == 201
    created = response.get_json()
    raw = created["key"]
    assert raw.startswith("wk_test_") and len(raw) == len("wk_test_") + 32 and raw[8:].isalnum()
    assert created["prefix"] == raw[:16] and created["mode"] == "test" and created["status"] == "active"
    assert created["scopes"] == ["admin", "generate"] and created["request_count"] == 0

    listing = client.get(KEYS, headers=admin)
    assert raw not in listing.get_data(as_text=True) and raw[16:] not in listing.get_data(as_text=True)
    assert all("key" not in k and "digest" not in k for k in listing.get_json()["data"])
    assert {k["name"] for k in listing.get_json()["data"]} == {"default", "ci"}

    me = client.get("/api/v1/me", headers=bearer(raw)).get_json()
    assert me["kind"] == "api_key" and me["mode"] == "test" and me["api_key"]["id"] == created["id"]


def test_create_key_defaults_and_validation(client, acme, admin):
    created = client.post(KEYS, json={}, headers=admin).get_json()
    assert created["key"].startswith("wk_live_") and created["scopes"] == ["generate"]
    assert_error(client.post(KEYS, json={"scopes": ["root"]}, headers=admin), 400)
    assert_error(client.post(KEYS, json={"mode": "prod"}, headers=admin), 400)
    assert_error(client.post(KEYS, json={"name": ""}, headers=admin), 400)
    assert_error(client.post(KEYS, json={"expires_at": "2001-01-01T00:00:00Z"}, headers=admin), 400)
    assert_error(client.post(KEYS, json={"expires_at": "tomorrow"}, headers=admin), 400)
    assert len(client.get(KEYS, headers=admin).get_json()["data"]) == 2


@pytest.mark.parametrize("expires_at", ["2100-01-01T00:00:00Z", "2100-01-01T08:00:00+08:00", "2100-01-01T00:00:00"])
def test_create_key_with_an_expiry(client, acme, admin, expires_at):
    response = client.post(KEYS, json={"name": "temp", "expires_at": expires_at}, headers=admin)
    assert response.status_code == 201, response.get_json()
    stored = datetime.fromisoformat(response.get_json()["expires_at"].replace("Z", "+00:00"))
    assert stored == datetime(2100, 1, 1, tzinfo=timezone.utc)


def test_revoked_key_is_refused_afterwards(client, acme, admin):
    raw = _admin_key(client, admin, scopes=("generate",))
    key_id = client.get("/api/v1/me", headers=bearer(raw)).get_json()["api_key"]["id"]
    response = client.delete(f"{KEYS}/{key_id}", headers=admin)
    assert response.status_code == 200
    assert response.get_json()["status"] == "revoked" and response.get_json()["revoked_at"]
    assert_error(client.get("/api/v1/me", headers=bearer(raw)), 401, "invalid_api_key")
    # Revoking again is harmless; the other key still works.
    assert client.delete(f"{KEYS}/{key_id}", headers=admin).status_code == 200
    assert client.get("/api/v1/me", headers=key_headers(acme)).status_code == 200
    statuses = {k["id"]: k["status"] for k in client.get(KEYS, headers=admin).get_json()["data"]}
    assert statuses[key_id] == "revoked" and statuses[str(acme.api_key.id)] == "active"


def test_admin_key_manages_keys(client, acme, admin):
    raw = _admin_key(client, admin)
    created = client.post(KEYS, json={"name": "made-by-key"}, headers=bearer(raw))
    assert created.status_code == 201
    assert client.delete(f"{KEYS}/{created.get_json()['id']}", headers=bearer(raw)).status_code == 200


def test_key_usage_is_counted(client, make, acme):
    before = datetime.now(timezone.utc)
    alice = make.user(acme, "alice")
    make.login(acme, alice)  # a login presents the key too
    for _ in range(3):
        assert client.get("/api/v1/me", headers=key_headers(acme)).status_code == 200
    assert client.get("/api/v1/me", headers={"X-API-Key": acme.api_key_plaintext}).status_code == 200
    count, last_used = db.session.execute(
        sa.select(ApiKey.request_count, ApiKey.last_used_at).where(ApiKey.id == acme.api_key.id)).one()
    assert count == 5
    assert before - timedelta(seconds=1) <= last_used <= datetime.now(timezone.utc) + timedelta(seconds=1)
    # What the tenant admin sees agrees; JWT requests do not count against the key.
    admin = make.auth(acme, acme.admin, device_id="admin-laptop")  # the 6th use of the key
    for _ in range(2):
        client.get("/api/v1/me", headers=admin)
    row = {k["id"]: k for k in client.get(KEYS, headers=admin).get_json()["data"]}[str(acme.api_key.id)]
    assert row["request_count"] == 6 and row["last_used_at"] is not None


def test_a_refused_key_is_not_counted(client, acme, admin):
    raw = _admin_key(client, admin, scopes=("generate",))
    key_id = client.get("/api/v1/me", headers=bearer(raw)).get_json()["api_key"]["id"]
    client.delete(f"{KEYS}/{key_id}", headers=admin)
    for _ in range(2):
        assert_error(client.get("/api/v1/me", headers=bearer(raw)), 401)
    count = db.session.execute(sa.select(ApiKey.request_count).where(ApiKey.id == uuid.UUID(key_id))).scalar_one()
    assert count == 1
