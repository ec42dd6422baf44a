from tests.conftest import PASSWORD, assert_error, key_headers


def test_member_logs_in_and_sees_who_they_are(client, make):
    acme = make.tenant("Acme")
    alice = make.user(acme, "alice", nickname="Alice")
    body = make.login(acme, alice)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["user"]["username"] == "alice" and body["tenant"]["name"] == "Acme"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["kind"] == "member" and me.get_json()["user"]["nickname"] == "Alice"


def test_unknown_user_wrong_password_and_inactive_get_one_identical_401(client, make):
    acme = make.tenant()
    bob = make.user(acme, "bob")
    make.user(acme, "carol")
    from app.services import users
    from tests.conftest import TEST_ACTOR
    carol = [u for u in users.list_users(acme.tenant.id) if u.username == "carol"][0]
    users.update_user(acme.tenant.id, carol.id, TEST_ACTOR, {"is_active": False})
    answers = []
    for username, password in (("nobody", PASSWORD), ("bob", "wrong-password"), ("carol", PASSWORD)):
        response = client.post("/api/v1/auth/login", json={"api_key": acme.api_key_plaintext, "username": username,
                                                           "password": password, "device_id": "d1"})
        answers.append(assert_error(response, 401, "invalid_credentials"))
    assert len({(a["message"], a["code"]) for a in answers}) == 1
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
    assert me.status_code == 200 and me.get_json()["kind"] == "api_key"
    me = client.get("/api/v1/me", headers={"X-API-Key": acme.api_key_plaintext})
    assert me.status_code == 200
