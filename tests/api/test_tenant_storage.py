"""A tenant's storage over HTTP: GET /api/v1/tenant/storage for its admins (never another tenant's),
the JSON admin API's equivalents (the tenant's storage and quota, the billing rules), and the quota
enforced against what the tenant really stores."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.core import cache
from app.core.db import utcnow
from app.extensions import db
from app.identity import api_keys
from app.models import AuditLog, CreditHold, LedgerEntry, StorageBillingRule, StoredFile, Tenant
from app.storage import billing
from tests.conftest import TEST_ACTOR, assert_error, key_headers

STORAGE = "/api/v1/tenant/storage"
IMAGE = {"model": "doubao-seedream-4-0-250828", "prompt": "a lighthouse"}


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme", credits=1000)


@pytest.fixture
def boss(make, acme) -> dict:
    """Acme's tenant admin, signed in."""
    return make.auth(acme, make.user(acme, "boss", role="admin"), device_id="boss-laptop")


def stored_bytes(created) -> int:
    return db.session.scalar(sa.select(sa.func.sum(StoredFile.size_bytes))
                             .where(StoredFile.tenant_id == created.tenant.id, StoredFile.status == "STORED"))


def test_a_tenant_admin_sees_its_storage_by_day_member_and_kind(client, make, acme, boss):
    billing.create_rule(TEST_ACTOR, name="Standard", active=True)
    alice = make.user(acme, "alice")
    as_alice = make.auth(acme, alice, device_id="alice-phone")
    for headers in (as_alice, key_headers(acme)):
        response = client.post("/api/v1/images/generations", headers=headers, json=IMAGE)
        assert response.status_code == 200, response.get_json()
    billing.bill(now=utcnow())  # yesterday, with what is stored now

    response = client.get(STORAGE, headers=boss)
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    total = stored_bytes(acme)
    assert (report["oss_mode"], report["used_bytes"], report["quota_bytes"], report["fees_owed"], report["files"]) \
        == ("PLATFORM", total, None, 0, 2)
    assert report["pricing"] == {"tier1_price": 10, "tier1_limit_gib": 100, "tier2_price": 8, "tier2_limit_gib": 500,
                                 "tier3_price": 5, "traffic_price": 5, "days_per_month": 30}
    today = utcnow().date()
    assert (report["from"], report["to"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert len(report["days"]) == 30
    yesterday, last = report["days"][-2], report["days"][-1]
    assert (yesterday["date"], yesterday["billed"], yesterday["storage_bytes"], yesterday["file_count"]) == \
        ((today - timedelta(days=1)).isoformat(), True, total, 2)
    assert (last["billed"], last["storage_bytes"]) == (False, 0)
    members = {item["username"]: item for item in report["by_member"]}
    assert set(members) == {"alice", None}
    assert members["alice"]["member_id"] == str(alice.id) and members["alice"]["files"] == 1
    assert members[None]["member_id"] is None and members[None]["files"] == 1
    assert sum(item["bytes"] for item in report["by_member"]) == total
    assert report["by_kind"] == [{"kind": "image", "bytes": total, "files": 2}]

    narrowed = client.get(f"{STORAGE}?from={today - timedelta(days=1)}&to={today}", headers=boss).get_json()
    assert [day["date"] for day in narrowed["days"]] == [(today - timedelta(days=1)).isoformat(), today.isoformat()]
    assert_error(client.get(f"{STORAGE}?from={today}&to={today - timedelta(days=3)}", headers=boss), 400)
    assert_error(client.get(f"{STORAGE}?from=yesterday", headers=boss), 400)
    assert client.get(f"{STORAGE}?to=0001-01-02", headers=boss).status_code == 200  # no day before the first


def test_members_may_not_read_it_and_each_tenant_sees_only_its_own(client, make, acme, boss):
    alice = make.user(acme, "alice")
    assert client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE).status_code == 200
    assert_error(client.get(STORAGE, headers=make.auth(acme, alice)), 403, "tenant_admin_required")
    assert_error(client.get(STORAGE, headers=key_headers(acme)), 403, "tenant_admin_required")  # a generate key
    assert_error(client.get(STORAGE), 401)

    beta = make.funded_tenant("Beta")
    _key, raw = api_keys.create_key(beta.tenant.id, TEST_ACTOR, name="ops", scopes=["admin"])
    theirs = client.get(STORAGE, headers={"Authorization": f"Bearer {raw}"})
    assert theirs.status_code == 200
    assert (theirs.get_json()["used_bytes"], theirs.get_json()["files"], theirs.get_json()["by_member"]) == (0, 0, [])
    assert client.get(STORAGE, headers=boss).get_json()["used_bytes"] == stored_bytes(acme) > 0

    # A tenant admin's credentials open nothing of the platform admin's API.
    for url in (f"/admin/api/tenants/{acme.tenant.id}/storage", f"/admin/api/tenants/{beta.tenant.id}/storage",
                "/admin/api/storage/rules"):
        assert_error(client.get(url, headers=boss), 401)
        assert_error(client.get(url, headers={"Authorization": f"Bearer {raw}"}), 401)


def test_the_admin_api_shows_a_tenants_storage_and_sets_its_quota(client, make, acme):
    admin = make.admin_token_headers()
    assert client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE).status_code == 200
    url = f"/admin/api/tenants/{acme.tenant.id}/storage"
    report = client.get(url, headers=admin).get_json()
    assert report["used_bytes"] == stored_bytes(acme) and report["pricing"] is None  # no rule yet

    response = client.put(f"{url}/quota", headers=admin, json={"storage_quota_bytes": 5 * 1024 ** 3})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["quota_bytes"] == 5 * 1024 ** 3
    change = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "tenant.update"))
    assert change.changes == {"storage_quota_bytes": [None, 5 * 1024 ** 3]} and change.actor_type == "platform_admin"
    for bad in ({"storage_quota_bytes": -1}, {"storage_quota_bytes": "5GB"}, {"storage_quota_bytes": 2 ** 63}, {}):
        assert_error(client.put(f"{url}/quota", headers=admin, json=bad), 400)
    assert db.session.get(Tenant, acme.tenant.id).storage_quota_bytes == 5 * 1024 ** 3
    assert client.put(f"{url}/quota", headers=admin, json={"storage_quota_bytes": None}).get_json()["quota_bytes"] \
        is None
    assert_error(client.get(f"/admin/api/tenants/{uuid.uuid4()}/storage", headers=admin), 404, "tenant_not_found")
    assert_error(client.put(f"/admin/api/tenants/{uuid.uuid4()}/storage/quota", headers=admin,
                            json={"storage_quota_bytes": 1}), 404, "tenant_not_found")


def test_the_admin_api_edits_the_billing_rules_with_one_active_at_a_time(client, make):
    admin = make.admin_token_headers()
    response = client.post("/admin/api/storage/rules", headers=admin, json={"name": "Standard", "is_active": True})
    assert response.status_code == 201, response.get_json()
    standard = response.get_json()
    assert {k: standard[k] for k in ("tier1_price", "tier1_limit_gib", "tier2_price", "tier2_limit_gib",
                                     "tier3_price", "traffic_price", "is_active")} == \
        {"tier1_price": 10, "tier1_limit_gib": 100, "tier2_price": 8, "tier2_limit_gib": 500, "tier3_price": 5,
         "traffic_price": 5, "is_active": True}

    response = client.post("/admin/api/storage/rules", headers=admin,
                           json={"name": "Cheaper", "tier1_price": 6, "traffic_price": 2, "is_active": True})
    assert response.status_code == 201, response.get_json()
    cheaper = response.get_json()
    rules = client.get("/admin/api/storage/rules", headers=admin).get_json()["data"]
    assert [(r["name"], r["is_active"]) for r in rules] == [("Cheaper", True), ("Standard", False)]
    assert billing.active_rule().id == uuid.UUID(cheaper["id"])

    changed = client.patch(f"/admin/api/storage/rules/{standard['id']}", headers=admin,
                           json={"tier3_price": 4, "is_active": True})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["tier3_price"] == 4 and changed.get_json()["is_active"] is True
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StorageBillingRule)
                             .where(StorageBillingRule.is_active.is_(True))) == 1

    for body, param in (({"tier2_limit_gib": 50}, "tier2_limit_gib"), ({"tier1_price": -1}, "tier1_price"),
                        ({"name": ""}, "name"), ({"traffic_price": None}, "traffic_price"),
                        ({"tier1_limit_gib": 0}, "tier1_limit_gib"), ({"colour": "red"}, "colour")):
        error = assert_error(client.patch(f"/admin/api/storage/rules/{standard['id']}", headers=admin, json=body), 400)
        assert error["param"] == param, (body, error)
    assert_error(client.post("/admin/api/storage/rules", headers=admin, json={"tier1_price": 1}), 400)
    assert_error(client.get(f"/admin/api/storage/rules/{uuid.uuid4()}", headers=admin), 404, "storage_rule_not_found")
    assert_error(client.get("/admin/api/storage/rules/not-an-id", headers=admin), 404, "storage_rule_not_found")
    assert client.patch(f"/admin/api/storage/rules/{standard['id']}", headers=admin,
                        json={"is_active": False}).get_json()["is_active"] is False
    assert billing.active_rule() is None
    actions = db.session.scalars(sa.select(AuditLog.action).where(AuditLog.target_type == "storage_rule")
                                 .order_by(AuditLog.created_at)).all()
    assert actions == ["storage_rule.create", "storage_rule.activate", "storage_rule.create", "storage_rule.activate",
                       "storage_rule.update", "storage_rule.activate", "storage_rule.deactivate"]


def test_a_generation_that_would_pass_the_quota_of_what_is_stored_is_refused_with_nothing_held(client, acme):
    assert client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE).status_code == 200
    used = db.session.get(Tenant, acme.tenant.id).storage_used_bytes
    assert used > 0
    db.session.execute(sa.update(Tenant).where(Tenant.id == acme.tenant.id)
                       .values(storage_quota_bytes=used + 1024 * 1024))  # room for 1 MiB; an image needs ~4 MiB
    cache.changed("tenants")  # written by hand: update_tenant says so itself
    db.session.commit()
    before = ledger.account(acme.tenant.id)
    entries = db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)
                                .where(LedgerEntry.tenant_id == acme.tenant.id))
    holds = db.session.scalar(sa.select(sa.func.count()).select_from(CreditHold)
                              .where(CreditHold.tenant_id == acme.tenant.id))

    error = assert_error(client.post("/api/v1/images/generations", headers=key_headers(acme), json=IMAGE), 413,
                         "storage_quota_exceeded")
    assert "storage quota" in error["message"]
    assert ledger.account(acme.tenant.id) == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)
                             .where(LedgerEntry.tenant_id == acme.tenant.id)) == entries
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditHold)
                             .where(CreditHold.tenant_id == acme.tenant.id)) == holds
    assert db.session.get(Tenant, acme.tenant.id).storage_used_bytes == used
