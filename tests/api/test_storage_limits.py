"""The storage limits checked before anything is held: a tenant's quota (413) and unpaid storage fees
(402). Either way the request changes nothing: no hold, no generation, no ledger entry."""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.core import cache
from app.extensions import db
from app.identity import api_keys, tenants
from app.models import CreditHold, Generation, LedgerEntry, Tenant
from tests.conftest import TEST_ACTOR, assert_error, key_headers

IMAGE = {"model": "doubao-seedream-4-0-250828", "prompt": "a lighthouse"}


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme", credits=1000)


def nothing_changed(created, *, balance: int = 1000) -> None:
    tenant_id = created.tenant.id
    account = ledger.account(tenant_id)
    assert (account.balance, account.held) == (balance, 0)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)
                             .where(Generation.tenant_id == tenant_id)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditHold)
                             .where(CreditHold.tenant_id == tenant_id)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)
                             .where(LedgerEntry.tenant_id == tenant_id)) == 1  # the recharge


def owe(created, credits: int) -> None:
    db.session.execute(sa.update(Tenant).where(Tenant.id == created.tenant.id).values(storage_fees_owed=credits))
    cache.changed("tenants")  # written by hand: the services that change fees owed say so themselves
    db.session.commit()


def test_a_generation_that_would_pass_the_quota_is_refused_with_nothing_held(client, acme):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"storage_quota_bytes": 1024 * 1024})
    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    error = assert_error(response, 413, "storage_quota_exceeded")
    assert "1.0 MiB storage quota" in error["message"] and "uses 0 bytes" in error["message"]
    nothing_changed(acme)


def test_chat_stores_nothing_so_a_full_quota_does_not_stop_it(client, acme):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"storage_quota_bytes": 1})
    response = client.post("/api/v1/chat/completions", headers=key_headers(acme),
                           json={"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.get_json()


def test_within_the_quota_a_generation_runs_and_is_metered(client, acme):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"storage_quota_bytes": 64 * 1024 * 1024})
    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    assert response.status_code == 200, response.get_json()
    assert db.session.get(Tenant, acme.tenant.id).storage_used_bytes > 0


def test_an_uploaded_reference_past_the_quota_is_refused_before_it_is_stored(client, acme):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"storage_quota_bytes": 100})
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 500
    response = client.post("/api/v1/videos", headers=key_headers(acme), content_type="multipart/form-data",
                           data={"prompt": "a fox", "model": "sora-2", "seconds": "4",
                                 "input_reference": (io.BytesIO(png), "ref.png", "image/png")})
    assert_error(response, 413, "storage_quota_exceeded")
    assert db.session.get(Tenant, acme.tenant.id).storage_used_bytes == 0
    nothing_changed(acme)


def test_while_storage_fees_are_owed_nothing_new_starts(client, acme):
    owe(acme, 37)
    response = client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE)
    error = assert_error(response, 402, "storage_fees_owed")
    assert "owes 37 credits of storage fees" in error["message"]
    nothing_changed(acme)
    owe(acme, 0)
    assert client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE).status_code == 200


def test_test_mode_keys_are_not_stopped_by_fees_they_never_pay(client, make):
    created = make.funded_tenant("Sandboxed")
    _key, raw = api_keys.create_key(created.tenant.id, TEST_ACTOR, name="test", mode="test")
    owe(created, 5)
    response = client.post("/api/v1/images/generations", json=IMAGE, headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200, response.get_json()
