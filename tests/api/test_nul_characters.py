"""U+0000 anywhere in a request (JSON body, query string, URL) is refused with 400 `invalid_request` naming
the field, before any view or service runs: PostgreSQL cannot store it, and prompt and message text is
refused too rather than silently changed. These run on both databases: the 400 is ours, not the database's."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.extensions import db
from app.identity import api_keys
from app.models import ApiKey, Generation, TenantDevice
from tests.conftest import PASSWORD, TEST_ACTOR, assert_error, key_headers

IMAGE = "doubao-seedream-4-0-250828"
SPEECH = "speech-2.6-hd"
CHAT = "gemini-2.5-pro"
NUL = "nul\u0000byte"


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


@pytest.fixture
def admin_key(acme) -> dict:
    _key, raw = api_keys.create_key(acme.tenant.id, TEST_ACTOR, name="admin", scopes=["generate", "admin"])
    return {"Authorization": f"Bearer {raw}"}


def refused(response, param: str | None) -> dict:
    error = assert_error(response, 400, "invalid_request")
    assert error["param"] == param, error
    assert "NUL" in error["message"]
    return error


def nothing_was_generated(acme):
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (1000, 0)


def test_estimate_with_a_nul_in_the_model_is_400(client, acme):
    refused(client.post("/api/v1/billing/estimate", headers=key_headers(acme), json={"model": NUL}), "model")


@pytest.mark.parametrize("path, body, param", [
    ("/api/v1/images/generations", {"model": NUL, "prompt": "a lighthouse"}, "model"),
    ("/api/v1/images/generations", {"model": IMAGE, "prompt": f"a {NUL} lighthouse"}, "prompt"),
    ("/api/v1/audio/speech", {"model": NUL, "input": "hello"}, "model"),
    ("/api/v1/audio/speech", {"model": SPEECH, "input": f"hello {NUL}"}, "input"),
])
def test_generating_with_a_nul_in_the_model_or_the_prompt_is_400_and_charges_nothing(client, acme, path, body,
                                                                                      param):
    refused(client.post(path, headers=key_headers(acme), json=body), param)
    nothing_was_generated(acme)


@pytest.mark.parametrize("message, param", [
    ({"role": "user", "content": f"hi {NUL}"}, "messages.1.content"),
    ({"role": "user", "content": [{"type": "text", "text": NUL}]}, "messages.1.content.0.text"),
    ({"role": "user", "content": "hi", "name": NUL}, "messages.1.name"),
])
def test_a_chat_message_with_a_nul_is_400_not_stripped(client, acme, message, param):
    response = client.post("/api/v1/chat/completions", headers=key_headers(acme), json={
        "model": CHAT, "messages": [{"role": "system", "content": "be brief"}, message]})
    refused(response, param)
    nothing_was_generated(acme)


def test_a_key_named_with_a_nul_is_400_and_not_created(client, acme, admin_key):
    refused(client.post("/api/v1/tenant/keys", headers=admin_key, json={"name": NUL}), "name")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey)) == 2  # the first key, the admin key


@pytest.mark.parametrize("field", ["username", "device_id", "password"])
def test_login_with_a_nul_is_400_before_anything_is_looked_up(client, make, field):
    acme = make.tenant("Acme")
    make.user(acme, "alice")
    body = {"api_key": acme.api_key_plaintext, "username": "alice", "password": PASSWORD, "device_id": "laptop"}
    body[field] = f"{body[field]}\u0000"
    refused(client.post("/api/v1/auth/login", json=body), field)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TenantDevice)) == 0


def test_a_nul_in_a_query_string_is_400(client, acme):
    refused(client.get("/api/v1/generations?model=nul%00byte", headers=key_headers(acme)), "model")
    refused(client.get("/api/v1/transactions?cursor=%00", headers=key_headers(acme)), "cursor")


def test_a_nul_in_a_path_id_is_400(client, acme, admin_key):
    refused(client.get("/api/v1/generations/abc%00def", headers=key_headers(acme)), "generation_id")
    refused(client.delete("/api/v1/tenant/keys/%00", headers=admin_key), "key_id")


def test_a_nul_in_a_key_of_the_body_is_400(client, acme):
    refused(client.post("/api/v1/billing/estimate", headers=key_headers(acme), json={"model": IMAGE, NUL: 1}), NUL)


def test_an_idempotency_key_with_a_nul_is_400(client, acme):
    response = client.post("/api/v1/images/generations", json={"model": IMAGE, "prompt": "a lighthouse"},
                           headers={**key_headers(acme), "Idempotency-Key": "retry\u00001"})
    assert_error(response, 400, "invalid_idempotency_key")
    nothing_was_generated(acme)


def test_the_admin_api_refuses_a_nul_too(client, make):
    headers = make.admin_token_headers()
    refused(client.post("/admin/api/tenants", headers=headers, json={"name": NUL}), "name")
    refused(client.get("/admin/api/tenants?search=%00", headers=headers), "search")
    refused(client.get("/admin/api/tenants/%00/keys", headers=headers), None)


def test_an_escaped_backslash_u0000_is_ordinary_text(client, acme):
    """Six characters `\\u0000` spelled out are not a NUL: they are estimated like any other unknown model."""
    response = client.post("/api/v1/billing/estimate", headers=key_headers(acme), data='{"model": "a\\\\u0000b"}')
    assert_error(response, 404)
