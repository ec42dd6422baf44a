"""Member and tenant-admin sign-in over HTTP: login, devices, throttling, refresh, logout, invalidation."""
from datetime import timedelta

import jwt as pyjwt
import pytest
import sqlalchemy as sa
from flask_jwt_extended import create_access_token, decode_token

from app.extensions import db
from app.identity import tenants, users
from app.models import ApiKey, RefreshToken, utcnow
from tests.conftest import PASSWORD, TEST_ACTOR, assert_error, key_headers, make_app


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def login(client, created, username, password=PASSWORD, *, environ_base=None, **fields):
    return client.post("/api/v1/auth/login", environ_base=environ_base or {},
                       json={"api_key": created.api_key_plaintext, "username": username, "password": password,
                             **fields})


def test_member_logs_in_and_sees_who_they_are(client, make):
    acme = make.tenant("Acme")
    alice = make.user(acme, "alice", nickname="Alice")
    body = make.login(acme, alice)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["user"]["username"] == "alice" and body["tenant"]["name"] == "Acme"
    assert decode_token(body["access_token"])["role"] == "member"
    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["kind"] == "member" and me.get_json()["user"]["nickname"] == "Alice"
    assert me.get_json()["tenant"]["id"] == str(acme.tenant.id) and me.get_json()["api_key"] is None
    assert me.get_json()["mode"] == "live"


def test_tenant_admin_logs_in_with_the_admin_role(client, make):
    acme = make.tenant("Acme", admin_username="boss", admin_password=PASSWORD)
    body = make.login(acme, acme.admin)
    assert body["user"]["role"] == "admin"
    assert decode_token(body["access_token"])["role"] == "admin"
    me = client.get("/api/v1/me", headers=bearer(body["access_token"])).get_json()
    assert me["kind"] == "tenant_admin" and me["user"]["username"] == "boss" and me["tenant"]["name"] == "Acme"


def test_unknown_user_wrong_password_and_inactive_get_one_identical_401(client, make):
    acme = make.tenant()
    bob = make.user(acme, "bob")
    carol = make.user(acme, "carol")
    users.update_user(acme.tenant.id, carol.id, TEST_ACTOR, {"is_active": False})
    answers = []
    for username, password in (("nobody", PASSWORD), ("bob", "wrong-password"), ("carol", PASSWORD)):
        response = login(client, acme, username, password, device_id="d1")
        error = assert_error(response, 401, "invalid_credentials")
        answers.append((error["message"], error["type"], error["code"], error["param"]))
    assert len(set(answers)) == 1
    assert bob.is_active


def test_seed_spelling_apiKey_is_accepted(client, make):
    acme = make.tenant()
    make.user(acme, "dora")
    response = client.post("/api/v1/auth/login", json={"apiKey": acme.api_key_plaintext, "username": "dora",
                                                       "password": PASSWORD, "device_id": "d1"})
    assert response.status_code == 200


def test_api_key_authenticates_me(client, make):
    acme = make.tenant()
    me = client.get("/api/v1/me", headers=key_headers(acme))
    assert me.status_code == 200
    body = me.get_json()
    assert body["kind"] == "api_key" and body["user"] is None and body["mode"] == "live"
    assert body["api_key"]["prefix"] == acme.api_key_plaintext[:16] and body["tenant"]["name"] == acme.tenant.name
    assert acme.api_key_plaintext not in me.get_data(as_text=True)
    me = client.get("/api/v1/me", headers={"X-API-Key": acme.api_key_plaintext})
    assert me.status_code == 200


def test_me_without_credentials_is_401(client):
    assert_error(client.get("/api/v1/me"), 401, "missing_credentials")


def test_device_binding_lifecycle(client, make):
    acme = make.tenant(admin_username="boss", admin_password=PASSWORD)
    admin = make.auth(acme, acme.admin, device_id="admin-laptop")
    make.user(acme, "alice")

    assert_error(login(client, acme, "alice"), 400, "device_id_required")
    assert_error(login(client, acme, "alice", device_id="   "), 400, "device_id_required")

    first = login(client, acme, "alice", device_id="phone-1", device_info={"os": "ios"})
    assert first.status_code == 200
    bound = [d for d in client.get("/api/v1/tenant/devices", headers=admin).get_json()["data"]
             if d["user_id"] == first.get_json()["user"]["id"]]
    assert [(d["fingerprint"], d["device_info"]) for d in bound] == [("phone-1", {"os": "ios"})]

    assert login(client, acme, "alice", device_id="phone-1").status_code == 200
    assert_error(login(client, acme, "alice", device_id="phone-2"), 403, "device_not_bound")

    assert client.delete(f"/api/v1/tenant/devices/{bound[0]['id']}", headers=admin).status_code == 204
    assert login(client, acme, "alice", device_id="phone-2").status_code == 200
    assert_error(login(client, acme, "alice", device_id="phone-1"), 403, "device_not_bound")


def test_device_is_checked_only_after_the_password(client, make):
    acme = make.tenant()
    make.user(acme, "alice")
    assert login(client, acme, "alice", device_id="phone-1").status_code == 200
    assert_error(login(client, acme, "alice", "wrong-password", device_id="phone-2"), 401, "invalid_credentials")


def test_tenant_without_device_requirement_needs_no_device(client, make):
    acme = make.tenant(require_device=False)
    make.user(acme, "alice")
    assert login(client, acme, "alice").status_code == 200
    assert login(client, acme, "alice", device_id="a").status_code == 200
    assert login(client, acme, "alice", device_id="b").status_code == 200


def _expire(key_id):
    db.session.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()


@pytest.mark.parametrize("problem", ["unknown", "malformed", "revoked", "expired", "tenant_inactive"])
def test_bad_api_key_is_401_at_login_and_on_requests(client, make, problem):
    acme = make.tenant()
    make.user(acme, "alice")
    raw = acme.api_key_plaintext
    code = "invalid_api_key"
    if problem == "unknown":
        raw = "wk_live_" + "A" * 32
    elif problem == "malformed":
        raw = "wk_live_short"
    elif problem == "revoked":
        from app.identity import api_keys
        api_keys.revoke_key(acme.tenant.id, acme.api_key.id, TEST_ACTOR)
    elif problem == "expired":
        _expire(acme.api_key.id)
    else:
        tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"is_active": False})
    response = client.post("/api/v1/auth/login", json={"api_key": raw, "username": "alice", "password": PASSWORD,
                                                       "device_id": "d1"})
    assert_error(response, 401, code)
    assert_error(client.get("/api/v1/me", headers=bearer(raw)), 401, code)
    assert_error(client.get("/api/v1/me", headers={"X-API-Key": raw}), 401, code)


@pytest.fixture
def strict_app(app, test_env, tmp_path):
    """A second app on the same database with low sign-in limits (the `app` fixture still cleans up)."""
    strict = make_app(test_env, tmp_path / "strict", LOGIN_FAILURES_PER_USER=3, LOGIN_FAILURES_PER_IP=5)
    yield strict
    with strict.app_context():
        db.engine.dispose()


def _from(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def _retry_after(response) -> int:
    value = response.headers["Retry-After"]
    assert value.isdigit() and int(value) > 0, value
    return int(value)


def test_repeated_failures_for_one_account_are_throttled_with_retry_after(strict_app, make):
    acme = make.tenant()
    make.user(acme, "alice")
    make.user(acme, "bob")
    client = strict_app.test_client()
    # From different addresses, so only the per-account limit can be what stops them.
    for n in range(3):
        assert_error(login(client, acme, "alice", "wrong-password", device_id="d", **_from(f"10.0.0.{n}")), 401)
    throttled = login(client, acme, "ALICE", PASSWORD, device_id="d", **_from("10.0.0.9"))
    error = assert_error(throttled, 429)
    assert error["type"] == "rate_limit_error"
    assert _retry_after(throttled) <= 900
    # Other accounts in the tenant are not affected.
    assert login(client, acme, "bob", device_id="d", **_from("10.0.0.9")).status_code == 200


def test_account_throttle_is_per_tenant(strict_app, make):
    acme, other = make.tenant(), make.tenant()
    make.user(acme, "alice")
    make.user(other, "alice")
    client = strict_app.test_client()
    for n in range(3):
        login(client, acme, "alice", "wrong-password", device_id="d", **_from(f"10.0.1.{n}"))
    assert_error(login(client, acme, "alice", device_id="d", **_from("10.0.1.9")), 429)
    assert login(client, other, "alice", device_id="d", **_from("10.0.1.9")).status_code == 200


def test_failures_from_one_address_across_usernames_are_throttled(strict_app, make):
    acme = make.tenant()
    make.user(acme, "alice")
    client = strict_app.test_client()
    for n in range(5):
        assert_error(login(client, acme, f"guess{n}", "wrong-password", device_id="d", **_from("10.9.9.9")), 401)
    throttled = login(client, acme, "alice", device_id="d", **_from("10.9.9.9"))
    assert_error(throttled, 429)
    _retry_after(throttled)
    assert login(client, acme, "alice", device_id="d", **_from("10.9.9.10")).status_code == 200


def test_a_correct_login_below_the_limit_works_and_resets_the_account_count(strict_app, make):
    acme = make.tenant()
    make.user(acme, "alice")
    client = strict_app.test_client()
    for _ in range(2):
        for n in range(2):
            assert_error(login(client, acme, "alice", "wrong-password", device_id="d", **_from(f"10.1.{n}.1")), 401)
        assert login(client, acme, "alice", device_id="d", **_from("10.1.9.1")).status_code == 200


def _refresh(client, token):
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_and_reuse_revokes_the_whole_session(client, make):
    acme = make.tenant()
    alice = make.user(acme, "alice")
    first = make.login(acme, alice)
    second = _refresh(client, first["refresh_token"])
    assert second.status_code == 200
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert second["user"]["username"] == "alice" and second["expires_in"] == 3600
    assert client.get("/api/v1/me", headers=bearer(second["access_token"])).status_code == 200

    assert_error(_refresh(client, first["refresh_token"]), 401, "refresh_token_reused")
    assert_error(_refresh(client, second["refresh_token"]), 401)
    assert_error(client.get("/api/v1/me", headers=bearer(second["access_token"])), 401, "session_ended")
    assert_error(client.get("/api/v1/me", headers=bearer(first["access_token"])), 401, "session_ended")
    # The user can still start a new session.
    assert client.get("/api/v1/me", headers=make.auth(acme, alice)).status_code == 200


def test_expired_refresh_token_is_401(client, make):
    acme = make.tenant()
    tokens = make.login(acme, make.user(acme, "alice"))
    db.session.execute(sa.update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert_error(_refresh(client, tokens["refresh_token"]), 401, "invalid_refresh_token")


def test_refresh_with_an_unknown_token_is_401(client, make):
    assert_error(_refresh(client, "wr_nonsense"), 401, "invalid_refresh_token")
    assert_error(client.post("/api/v1/auth/refresh", json={}), 400)


def test_logout_by_refresh_token_ends_the_session(client, make):
    acme = make.tenant()
    alice = make.user(acme, "alice")
    tokens = make.login(acme, alice)
    other = make.login(acme, alice)
    response = client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200 and response.get_json() == {"ok": True}
    assert_error(_refresh(client, tokens["refresh_token"]), 401)
    assert_error(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401, "session_ended")
    # Only that session: the user's other login is untouched.
    assert client.get("/api/v1/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_by_access_token_ends_the_session(client, make):
    acme = make.tenant()
    alice = make.user(acme, "alice")
    tokens = make.login(acme, alice)
    response = client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert_error(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401, "session_ended")
    assert_error(_refresh(client, tokens["refresh_token"]), 401)
    assert_error(client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"])), 401, "session_ended")


def test_logout_without_a_session_is_401(client, make):
    acme = make.tenant()
    assert_error(client.post("/api/v1/auth/logout"), 401, "missing_credentials")
    assert_error(client.post("/api/v1/auth/logout", json={"refresh_token": "wr_unknown"}), 401)
    # An API key has no session to end.
    assert_error(client.post("/api/v1/auth/logout", headers=key_headers(acme)), 401)
    assert client.get("/api/v1/me", headers=key_headers(acme)).status_code == 200


def _logged_in_member(make):
    acme = make.tenant(admin_username="boss", admin_password=PASSWORD)
    alice = make.user(acme, "alice")
    return acme, alice, make.login(acme, alice), make.auth(acme, acme.admin, device_id="admin-pc")


@pytest.mark.parametrize("change", [{"is_active": False}, {"password": "a-brand-new-password"}])
def test_deactivation_or_new_password_ends_the_members_sessions(client, make, change):
    acme, alice, tokens, admin = _logged_in_member(make)
    assert client.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 200
    response = client.patch(f"/api/v1/tenant/members/{alice.id}", json=change, headers=admin)
    assert response.status_code == 200, response.get_json()
    assert_error(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401, "session_ended")
    assert_error(_refresh(client, tokens["refresh_token"]), 401)
    if "password" in change:
        assert_error(login(client, acme, "alice", PASSWORD, device_id="device-1"), 401, "invalid_credentials")
        assert login(client, acme, "alice", change["password"], device_id="device-1").status_code == 200
    else:
        assert_error(login(client, acme, "alice", PASSWORD, device_id="device-1"), 401, "invalid_credentials")


def test_deactivating_the_tenant_ends_every_session_and_key(client, make):
    acme, alice, tokens, admin = _logged_in_member(make)
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"is_active": False})
    assert_error(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401, "session_ended")
    assert_error(client.get("/api/v1/tenant/members", headers=admin), 401, "session_ended")
    assert_error(_refresh(client, tokens["refresh_token"]), 401)
    assert_error(client.get("/api/v1/me", headers=key_headers(acme)), 401, "invalid_api_key")
    # Reactivating the tenant does not bring the ended sessions back; new logins work.
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"is_active": True})
    assert_error(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401, "session_ended")
    assert_error(client.get("/api/v1/tenant/members", headers=admin), 401, "session_ended")
    assert_error(_refresh(client, tokens["refresh_token"]), 401)
    assert client.get("/api/v1/me", headers=key_headers(acme)).status_code == 200
    assert client.get("/api/v1/me", headers=make.auth(acme, alice)).status_code == 200


def test_expired_access_token_is_401(client, make):
    acme = make.tenant()
    alice = make.user(acme, "alice")
    claims = decode_token(make.login(acme, alice)["access_token"])
    expired = create_access_token(identity=claims["sub"], expires_delta=timedelta(seconds=-30),
                                  additional_claims={k: claims[k] for k in ("tid", "role", "sid", "mode")})
    assert_error(client.get("/api/v1/me", headers=bearer(expired)), 401, "token_expired")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_token_is_401(client, token):
    assert_error(client.get("/api/v1/me", headers=bearer(token)), 401, "invalid_token")


def test_token_signed_with_another_secret_is_401(client, make):
    acme = make.tenant()
    alice = make.user(acme, "alice")
    claims = decode_token(make.login(acme, alice)["access_token"])
    forged = pyjwt.encode(claims, "another-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    assert_error(client.get("/api/v1/me", headers=bearer(forged)), 401, "invalid_token")


def test_token_without_a_subject_is_401_not_500(app, client, make):
    acme = make.tenant()
    alice = make.user(acme, "alice")
    claims = decode_token(make.login(acme, alice)["access_token"])
    del claims["sub"]
    token = pyjwt.encode(claims, app.config["JWT_SECRET_KEY"], algorithm="HS256")
    assert_error(client.get("/api/v1/me", headers=bearer(token)), 401, "invalid_token")
