"""The JSON admin API for usage (the seed's /admin/api/tenants/{id}/usage) and for gateways."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from app.models import utcnow
from tests.conftest import assert_error, key_headers

IMAGE = "doubao-seedream-4-0-250828"
CHAT = "gemini-2.5-pro"
SECRET = "test-gateway-secret"


@pytest.fixture
def admin_headers(make):
    return make.admin_token_headers()


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def test_usage_answers_records_and_a_summary_by_operation(client, acme, admin_headers):
    client.post("/api/v1/images/generations", headers=key_headers(acme), json={"model": IMAGE, "prompt": "fox", "n": 2})
    client.post("/api/v1/images/generations", headers=key_headers(acme), json={"model": IMAGE, "prompt": "x [sandbox:fail]"})
    client.post("/api/v1/chat/completions", headers=key_headers(acme),
                json={"model": CHAT, "messages": [{"role": "user", "content": "hi"}]})
    response = client.get(f"/admin/api/tenants/{acme.tenant.id}/usage", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"records", "summary"}
    records = body["records"]
    assert [(r["kind"], r["status"]) for r in records] == [("chat", "success"), ("image", "failure"), ("image", "success")]
    image_ok = records[-1]
    assert image_ok["model"] == IMAGE and image_ok["kind"] == "image" and image_ok["operation"] == "image.generate"
    assert image_ok["credits"] == 40 and image_ok["quantity"] == 2 and image_ok["is_test"] is False
    assert image_ok["generation_id"] and image_ok["user_id"] is None and image_ok["api_key_id"]
    assert records[0]["input_tokens"] and records[0]["output_tokens"]
    chat_credits = records[0]["credits"]
    assert body["summary"] == [{"operation": "chat.generate", "count": 1, "credits": chat_credits},
                               {"operation": "image.generate", "count": 2, "credits": 40}]


def test_usage_takes_a_date_range(client, acme, admin_headers):
    client.post("/api/v1/images/generations", headers=key_headers(acme), json={"model": IMAGE, "prompt": "fox"})
    yesterday = (utcnow().date() - timedelta(days=1)).isoformat()
    earlier = client.get(f"/admin/api/tenants/{acme.tenant.id}/usage?from=2020-01-01&to=2020-01-31",
                         headers=admin_headers).get_json()
    assert earlier == {"records": [], "summary": []}
    assert client.get(f"/admin/api/tenants/{acme.tenant.id}/usage?to={yesterday}",
                      headers=admin_headers).get_json()["records"] == []
    assert_error(client.get(f"/admin/api/tenants/{acme.tenant.id}/usage?from=2025-05-02&to=2025-05-01",
                            headers=admin_headers), 400)
    assert_error(client.get(f"/admin/api/tenants/{acme.tenant.id}/usage?from=yesterday", headers=admin_headers), 400)


def test_usage_of_an_unknown_tenant_is_404_and_needs_an_admin_token(client, acme, admin_headers):
    assert_error(client.get(f"/admin/api/tenants/{uuid.uuid4()}/usage", headers=admin_headers), 404)
    assert_error(client.get("/admin/api/tenants/not-a-uuid/usage", headers=admin_headers), 404)
    assert_error(client.get(f"/admin/api/tenants/{acme.tenant.id}/usage"), 401)
    assert_error(client.get(f"/admin/api/tenants/{acme.tenant.id}/usage", headers=key_headers(acme)), 401)


def test_gateways_are_created_listed_changed_and_tested_without_their_secret(client, admin_headers):
    created = client.post("/admin/api/gateways", headers=admin_headers,
                          json={"name": "sandbox", "base_url": "http://sandbox.local/", "secret": SECRET})
    assert created.status_code == 201
    gateway = created.get_json()
    assert gateway["base_url"] == "http://sandbox.local" and gateway["path_prefix"] == "/v1"
    assert gateway["priority"] == 100 and gateway["is_active"] is True and "secret" not in json.dumps(gateway)

    listed = client.get("/admin/api/gateways", headers=admin_headers).get_json()
    assert [g["id"] for g in listed["data"]] == [gateway["id"]] and SECRET not in json.dumps(listed)
    assert client.post(f"/admin/api/gateways/{gateway['id']}/test", headers=admin_headers).get_json() == {
        "ok": True, "detail": "ok"}

    changed = client.patch(f"/admin/api/gateways/{gateway['id']}", headers=admin_headers,
                           json={"priority": 5, "is_active": False, "secret": "another-secret"})
    assert changed.status_code == 200
    assert (changed.get_json()["priority"], changed.get_json()["is_active"]) == (5, False)
    assert "another-secret" not in changed.get_data(as_text=True)


def test_a_gateways_files_origin_is_set_changed_and_removed(client, admin_headers):
    created = client.post("/admin/api/gateways", headers=admin_headers,
                          json={"name": "cn", "base_url": "http://sandbox.local", "secret": SECRET,
                                "files_origin": "HTTP://Files.Internal:8080/"})
    assert created.status_code == 201
    gateway = created.get_json()
    assert gateway["files_origin"] == "http://files.internal:8080"
    path = f"/admin/api/gateways/{gateway['id']}"
    assert client.patch(path, headers=admin_headers, json={"weight": 2}).get_json()["files_origin"] == (
        "http://files.internal:8080")  # not sent, not changed
    changed = client.patch(path, headers=admin_headers, json={"files_origin": "https://cdn.internal"})
    assert changed.get_json()["files_origin"] == "https://cdn.internal"
    error = assert_error(client.patch(path, headers=admin_headers, json={"files_origin": "https://cdn.internal/files"}),
                         400)
    assert error["param"] == "files_origin"
    assert client.patch(path, headers=admin_headers, json={"files_origin": None}).get_json()["files_origin"] is None
    listed = client.get("/admin/api/gateways", headers=admin_headers).get_json()["data"]
    assert listed[0]["files_origin"] is None
    assert client.post("/admin/api/gateways", headers=admin_headers,
                       json={"name": "plain", "base_url": "http://x.local", "secret": SECRET}).get_json()[
        "files_origin"] is None


@pytest.mark.parametrize("files_origin", ["https://files.example.com/results", "ftp://files.example.com",
                                          "https://user:pw@files.example.com", "https://files.example.com?x=1",
                                          "files.example.com", "https://files.example.com:0", "https://",
                                          "https://files.example.com#top", "https://[::1"])
def test_a_files_origin_must_be_an_origin_only(client, admin_headers, files_origin):
    body = {"name": "x", "base_url": "http://sandbox.local", "secret": SECRET, "files_origin": files_origin}
    error = assert_error(client.post("/admin/api/gateways", headers=admin_headers, json=body), 400)
    assert error["param"] == "files_origin" and "scheme://host[:port]" in error["message"]
    assert client.get("/admin/api/gateways", headers=admin_headers).get_json()["data"] == []


@pytest.mark.parametrize("body,param", [
    ({"name": "x", "base_url": "file:///etc/passwd", "secret": SECRET}, "base_url"),
    ({"name": "x", "base_url": "http://sandbox.local"}, "secret"),
    ({"name": "x", "base_url": "http://sandbox.local", "secret": SECRET, "weight": 0}, "weight"),
])
def test_bad_gateways_are_refused(client, admin_headers, body, param):
    error = assert_error(client.post("/admin/api/gateways", headers=admin_headers, json=body), 400)
    assert error["param"] == param
    assert client.get("/admin/api/gateways", headers=admin_headers).get_json()["data"] == []


def test_gateway_name_clash_and_unknown_gateway(client, admin_headers):
    body = {"name": "sandbox", "base_url": "http://sandbox.local", "secret": SECRET}
    assert client.post("/admin/api/gateways", headers=admin_headers, json=body).status_code == 201
    assert_error(client.post("/admin/api/gateways", headers=admin_headers, json=body), 409, "gateway_name_taken")
    assert_error(client.patch(f"/admin/api/gateways/{uuid.uuid4()}", headers=admin_headers, json={"weight": 2}), 404)
    assert_error(client.get("/admin/api/gateways"), 401)
