"""The error envelope {"error": {"message", "type", "code", "param"}} on every /api/v1 and /admin/api
path, with the status a client branches on, swept over the real URL map so new routes are covered too."""
from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from datetime import timedelta

import jwt
import pytest
from flask_jwt_extended import create_access_token

from app.identity import api_keys
from tests.conftest import PASSWORD, TEST_ACTOR, assert_error, key_headers, make_app

JSON_PREFIXES = ("/api/v1", "/admin/api")
BODY_METHODS = ("POST", "PATCH", "PUT")


def _json_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(JSON_PREFIXES)]


def _url(rule, **known) -> str:
    def fill(match):
        return str(known.get(match.group(1), uuid.uuid4()))
    return re.sub(r"<(?:\w+:)?(\w+)>", fill, rule.rule)


def _is_public(app, rule) -> bool:
    return bool(getattr(app.view_functions[rule.endpoint], "public", False))


def _credentials_for(rule, created, admin_headers) -> dict:
    if rule.rule.startswith("/admin/api"):
        return admin_headers
    _key, raw = api_keys.create_key(created.tenant.id, TEST_ACTOR, name="errors", scopes=["generate", "admin"])
    return {"Authorization": f"Bearer {raw}"}


def _assert_envelope(response, status: int, code: str | None = None) -> dict:
    error = assert_error(response, status, code)
    assert set(error) >= {"message", "type", "code", "param"}, error
    assert error["request_id"] == response.headers["X-Request-Id"], "every answer carries its request id"
    return error


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/tenant/nope/deeper", "/admin/api/nope",
                                  "/admin/api/tenants/x/nope", "/api/v2/anything", "/api/v1", "/api/v1/",
                                  "/admin/api", "/api", "/api/v1/me/"])
def test_unmatched_api_urls_answer_json_404(client, path):
    for method in ("GET", "POST", "DELETE"):
        error = _assert_envelope(client.open(path, method=method), 404, "not_found")
        assert error["type"] == "not_found_error"


@pytest.mark.parametrize("path", ["/admin/nope", "/admin/apiary", "/admin/tenants/x/nope/deeper"])
def test_the_dashboards_missing_pages_stay_html(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert not response.is_json
    assert "text/html" in response.content_type


@pytest.mark.parametrize("path", ["/nope", "/apis", "/v1/models", "/v1/chat/completions", "/files"])
def test_unmatched_urls_outside_the_dashboard_answer_json_404_pointing_at_the_api(client, path):
    for method in ("GET", "POST"):
        error = _assert_envelope(client.open(path, method=method), 404, "not_found")
        assert "/api/v1" in error["message"]
    if path.startswith("/v1/"):
        assert f"/api{path}" in error["message"]  # a base URL without /api: say where the API is


def test_openai_sdk_pointed_at_the_bare_host_hears_json_not_html(live_server, make):
    import openai
    created = make.funded_tenant()
    wrong = openai.OpenAI(base_url=f"{live_server}/v1", api_key=created.api_key_plaintext, max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        wrong.models.list()
    assert raised.value.code == "not_found" and "/api/v1/models" in raised.value.message


def test_a_bad_file_signature_stays_a_plain_answer(client):
    response = client.get("/files/tenants/x/api/2025/01/g-0.png?expires=1&sig=nope")
    assert response.status_code == 403
    assert not response.is_json and response.mimetype == "text/plain"


@pytest.mark.parametrize("path,what", [
    ("/api/v1/embeddings", "embeddings"), ("/api/v1/audio/transcriptions", "transcriptions"),
    ("/api/v1/audio/translations", "translations"), ("/api/v1/moderations", "moderations"),
    ("/api/v1/responses", "Responses API"), ("/api/v1/responses/resp_1/input_items", "Responses API"),
    ("/api/v1/completions", "completions"), ("/api/v1/images/edits", "image edits"),
    ("/api/v1/fine_tuning/jobs", "fine-tuning"), ("/v1/embeddings", "embeddings"),
])
def test_openai_endpoints_we_do_not_offer_say_so(client, make, path, what):
    created = make.tenant()
    for headers in ({}, key_headers(created)):
        error = _assert_envelope(client.post(path, json={"model": "x", "input": "hi"}, headers=headers), 404,
                                 "endpoint_not_offered")
        assert error["type"] == "not_found_error"
        assert what in error["message"] and "No such endpoint" not in error["message"]
        assert "chat/completions" in error["message"]  # and what it does offer


def test_the_sdk_hears_that_embeddings_are_not_offered(live_server, make):
    import openai
    created = make.funded_tenant()
    sdk = openai.OpenAI(base_url=f"{live_server}/api/v1", api_key=created.api_key_plaintext, max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.embeddings.create(model="text-embedding-3-small", input="a fox")
    assert raised.value.code == "endpoint_not_offered" and "embeddings" in raised.value.message


def test_wrong_method_on_every_api_route_is_405_with_allow_header(app, client):
    allowed_by_path: dict[str, set[str]] = {}
    for rule in _json_rules(app):
        allowed_by_path.setdefault(rule.rule, set()).update(rule.methods)
    checked = 0
    for path, allowed in allowed_by_path.items():
        method = next(m for m in ("PUT", "DELETE", "PATCH", "POST", "GET") if m not in allowed)
        url = _url(next(r for r in _json_rules(app) if r.rule == path))
        response = client.open(url, method=method, json={})
        error = _assert_envelope(response, 405, "method_not_allowed")
        assert method in error["message"]
        # A literal route can also match a parameterised one (/videos/generations and /videos/<id>),
        # so the answer lists what the URL as a whole allows.
        allowed_for_url = set(app.url_map.bind("localhost").allowed_methods(url))
        assert allowed <= allowed_for_url
        assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed_for_url, path
        checked += 1
    assert checked >= 10  # the sweep really saw the routes


def test_every_authenticated_route_without_credentials_is_401(app, client):
    checked = 0
    for rule in _json_rules(app):
        if _is_public(app, rule):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = _url(rule)
            _assert_envelope(client.open(url, method=method), 401, "missing_credentials")
            error = _assert_envelope(client.open(url, method=method, headers={"Authorization": "Bearer garbage"}),
                                     401)
            assert error["type"] == "authentication_error"
            checked += 1
    assert checked >= 10


def test_malformed_json_on_every_body_route_is_400_invalid_json(app, client, make):
    created = make.tenant()
    admin_headers = make.admin_token_headers()
    checked = 0
    for rule in _json_rules(app):
        for method in sorted(rule.methods & set(BODY_METHODS)):
            headers = _credentials_for(rule, created, admin_headers)
            url = _url(rule, tenant_id=created.tenant.id)
            for raw in ('{"name": ', "{'single': 'quotes'}", b"\xff\xfe not utf-8"):
                response = client.open(url, method=method, data=raw, headers=headers,
                                       content_type="application/json")
                error = _assert_envelope(response, 400, "invalid_json")
                assert error["type"] == "invalid_request_error", (method, url)
            checked += 1
    assert checked >= 5


def test_a_json_body_that_is_not_an_object_is_400(client):
    for raw in ("[1, 2]", "null", '"text"', "42"):
        _assert_envelope(client.post("/api/v1/auth/login", data=raw, content_type="application/json"), 400)


def test_wrong_field_types_name_the_field_in_param(client, make):
    created = make.tenant()
    admin = make.user(created, "boss", role="admin")
    member = make.user(created, "worker")
    headers = make.auth(created, admin)
    cases = [
        ("POST", "/api/v1/auth/login", {"api_key": created.api_key_plaintext, "username": 42, "password": PASSWORD,
                                        "device_id": "d1"}, "username"),
        ("POST", "/api/v1/auth/login", {"api_key": created.api_key_plaintext, "username": "worker",
                                        "password": PASSWORD, "device_id": "d1", "device_info": "a phone"},
         "device_info"),
        ("POST", "/api/v1/tenant/members", {"username": "new", "password": PASSWORD, "role": "boss"}, "role"),
        ("POST", "/api/v1/tenant/members", {"username": ["new"], "password": PASSWORD}, "username"),
        # strict: a string is not silently turned into a boolean
        ("PATCH", f"/api/v1/tenant/members/{member.id}", {"is_active": "false"}, "is_active"),
        ("POST", "/api/v1/tenant/keys", {"name": "ci", "scopes": "admin"}, "scopes"),
    ]
    for method, url, body, param in cases:
        response = client.open(url, method=method, json=body, headers=headers)
        error = _assert_envelope(response, 400, "invalid_request")
        assert error["param"] == param, (url, body, error)
        assert param in error["message"]
    assert member.is_active


def test_unknown_field_is_400_naming_it(client, make):
    created = make.tenant()
    make.user(created, "dora")
    response = client.post("/api/v1/auth/login", json={
        "api_key": created.api_key_plaintext, "username": "dora", "password": PASSWORD, "device_id": "d1",
        "remember_me": True})
    error = _assert_envelope(response, 400)
    assert error["param"] == "remember_me"
    assert "Unknown field" in error["message"]


def test_admin_api_wrong_types_and_query_values_name_the_field(client, make):
    headers = make.admin_token_headers()
    error = _assert_envelope(client.post("/admin/api/tenants", json={"name": "Acme", "max_seats": "5"},
                                         headers=headers), 400)
    assert error["param"] == "max_seats"
    error = _assert_envelope(client.get("/admin/api/tenants?page=first", headers=headers), 400)
    assert error["param"] == "page"


def test_json_body_without_json_content_type_is_still_parsed(client, make):
    """Documented leniency of parse_body: the API reads the body as JSON whatever Content-Type says
    (curl -d sends form encoding), then validates it just as strictly. No cookies authenticate the API,
    so this opens no cross-site request path."""
    created = make.tenant()
    make.user(created, "erin")
    body = json.dumps({"api_key": created.api_key_plaintext, "username": "erin", "password": PASSWORD,
                       "device_id": "d1"})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        kwargs = {"content_type": content_type} if content_type else {}
        response = client.post("/api/v1/auth/login", data=body, **kwargs)
        assert response.status_code == 200, (content_type, response.get_data(as_text=True))
        assert response.get_json()["user"]["username"] == "erin"
    bad = client.post("/api/v1/auth/login", data=json.dumps({"api_key": 7}), content_type="text/plain")
    assert _assert_envelope(bad, 400)["param"] == "api_key"


def test_body_over_max_content_length_is_413(app, test_env, tmp_path, make):
    admin_headers = make.admin_token_headers()
    small = make_app(test_env, tmp_path / "small", MAX_CONTENT_LENGTH=2048)
    client = small.test_client()
    big = json.dumps({"api_key": "wk_live_x", "username": "u", "password": "p" * 5000})
    error = _assert_envelope(client.post("/api/v1/auth/login", data=big, content_type="application/json"),
                             413, "request_too_large")
    assert error["type"] == "invalid_request_error"
    _assert_envelope(client.post("/admin/api/tenants", data=json.dumps({"name": "x" * 4000}),
                                 content_type="application/json", headers=admin_headers), 413, "request_too_large")

    # exactly at the limit is still read and validated
    at_limit = {"api_key": "wk_live_unknown", "username": "u", "password": "p", "device_info": {"pad": ""}}
    at_limit["device_info"]["pad"] = "p" * (2048 - len(json.dumps(at_limit)))
    raw = json.dumps(at_limit)
    assert len(raw) == 2048
    _assert_envelope(client.post("/api/v1/auth/login", data=raw, content_type="application/json"), 401)


def _login(client, created, user) -> dict:
    response = client.post("/api/v1/auth/login", json={"api_key": created.api_key_plaintext,
                                                       "username": user.username, "password": PASSWORD,
                                                       "device_id": "d1"})
    assert response.status_code == 200
    return response.get_json()


def test_jwt_problems_are_401_in_the_envelope(app, client, make):
    created = make.tenant()
    user = make.user(created, "frank")
    token = _login(client, created, user)["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    secret = app.config["JWT_SECRET_KEY"]

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    head, payload, signature = token.split(".")
    expired = create_access_token(identity=claims["sub"], expires_delta=timedelta(seconds=-60),
                                  additional_claims={k: claims[k] for k in ("tid", "role", "sid", "mode")})
    cases = {
        "token_expired": [expired],
        "invalid_token": [
            "not-a-jwt",
            "abc.def.ghi",
            jwt.encode({**claims, "exp": claims["exp"] + 3600}, "another-secret-" + "x" * 40, algorithm="HS256"),
            f"{head}.{b64({**claims, 'role': 'admin'})}.{signature}",  # tampered payload
            f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
            # right signature, but not one of our access tokens
            jwt.encode({k: v for k, v in claims.items() if k != "sub"}, secret, algorithm="HS256"),
            jwt.encode({**claims, "type": "refresh"}, secret, algorithm="HS256"),
        ],
    }
    for code, tokens in cases.items():
        for bad in tokens:
            response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {bad}"})
            error = _assert_envelope(response, 401, code)
            assert error["type"] == "authentication_error"
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_an_ended_session_token_is_401(client, make):
    created = make.tenant()
    user = make.user(created, "gail")
    tokens = _login(client, created, user)
    assert client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    _assert_envelope(response, 401, "session_ended")


def test_unknown_api_key_is_401_on_both_header_spellings(client, make):
    make.tenant()
    for headers in ({"Authorization": "Bearer wk_live_" + "a" * 32}, {"X-API-Key": "wk_test_" + "b" * 32}):
        _assert_envelope(client.get("/api/v1/me", headers=headers), 401)


@pytest.fixture
def boom_app(migrated, test_env, tmp_path):
    """A fresh app with routes that fail unexpectedly, added before its first request."""
    app = make_app(test_env, tmp_path / "boom")

    def boom():
        raise RuntimeError("kaboom: db password is hunter2")

    for path in ("/api/v1/__boom", "/admin/api/__boom", "/__boom", "/admin/__boom"):
        app.add_url_rule(path, f"boom{path.replace('/', '_')}", boom)
    return app


@pytest.mark.parametrize("path", ["/api/v1/__boom", "/admin/api/__boom", "/__boom"])
def test_unexpected_exception_is_500_with_request_id_and_details_only_in_the_log(boom_app, caplog, path):
    caplog.set_level(logging.ERROR)
    response = boom_app.test_client().get(path)
    error = _assert_envelope(response, 500, "internal_error")
    assert error["type"] == "api_error"
    request_id = error["request_id"]
    assert request_id and response.headers["X-Request-Id"] == request_id
    text = response.get_data(as_text=True)
    for leak in ("kaboom", "hunter2", "RuntimeError", "Traceback", "boom.py", "line "):
        assert leak not in text
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert failures, "the traceback must reach the log"
    assert request_id in failures[0].getMessage()
    assert "kaboom" in caplog.text and "Traceback" in caplog.text


def test_500_keeps_a_well_formed_incoming_request_id(boom_app):
    response = boom_app.test_client().get("/api/v1/__boom", headers={"X-Request-Id": "lb0123456789abcd"})
    assert _assert_envelope(response, 500)["request_id"] == "lb0123456789abcd"
    assert response.headers["X-Request-Id"] == "lb0123456789abcd"
    # anything else is replaced, never echoed back
    for odd in ("<script>alert(1)</script>", "short", "a" * 65):
        response = boom_app.test_client().get("/api/v1/__boom", headers={"X-Request-Id": odd})
        request_id = _assert_envelope(response, 500)["request_id"]
        assert request_id != odd and re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert response.headers["X-Request-Id"] == request_id


def test_unexpected_exception_on_a_dashboard_page_is_a_plain_500(boom_app, caplog):
    caplog.set_level(logging.ERROR)
    response = boom_app.test_client().get("/admin/__boom")
    assert response.status_code == 500
    assert not response.is_json
    assert "kaboom" not in response.get_data(as_text=True)
    assert "kaboom" in caplog.text
