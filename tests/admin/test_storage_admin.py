"""The dashboard's Storage page (the platform bucket without its secrets, the billing rule editor, the
tenants storing the most) and the Storage section of a tenant's page (usage chart, owed fees, the
editable quota)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, StorageBillingRule, Tenant
from app.storage import billing
from tests.admin.conftest import audit_entries, text_of
from tests.conftest import PASSWORD, TEST_ACTOR
from tests.integration.test_storage_billing import GiB, MiB, occupy

RULE = {"name": "Cheaper", "tier1_price": "6", "tier1_limit_gib": "50", "tier2_price": "4", "tier2_limit_gib": "400",
        "tier3_price": "2", "traffic_price": "3"}


def test_the_storage_page_shows_the_bucket_without_its_secrets_and_the_top_tenants(app, dashboard, make):
    # What config.py makes of STORAGE_BACKEND=s3 and its S3_… settings.
    app.config["STORAGE_BACKEND"] = "s3"
    app.config["STORAGE_BUCKET"] = {"S3_ENDPOINT": "https://r2.example.com", "S3_REGION": "auto",
                                    "S3_BUCKET": "waule-results", "S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
                                    "S3_SECRET_ACCESS_KEY": "s3-secret-never-shown", "S3_PUBLIC_ENDPOINT": ""}
    small, big = make.tenant("Small"), make.tenant("Big")
    occupy(small, 3 * MiB)
    occupy(big, 5 * GiB)
    db.session.execute(sa.update(Tenant).where(Tenant.id == small.tenant.id).values(storage_fees_owed=12))
    db.session.commit()

    response = dashboard.get("/admin/storage")
    assert response.status_code == 200
    page = text_of(response)
    assert "s3-secret-never-shown" not in page
    assert 'data-setting="S3_SECRET_ACCESS_KEY"><dt class="mono">S3_SECRET_ACCESS_KEY</dt>' \
           '<dd class="break">set (hidden)</dd>' in page
    assert "waule-results" in page and "AKIDEXAMPLE" in page and app.config["STORAGE_DIR"] in page
    assert '<strong data-backend>s3</strong>' in page
    assert page.index('data-tenant="Big"') < page.index('data-tenant="Small"')
    assert '<span class="stat-value" data-total="owed">12</span>' in page
    assert "No rule is active: storage is metered but not charged." in page
    assert '<a href="/admin/storage" aria-current="page">Storage</a>' in page


def test_rules_are_added_edited_and_switched_with_csrf_and_an_audit_trail(dashboard, root):
    refused = dashboard.post("/admin/storage/rules", {**RULE, "is_active": "on"}, csrf=False)
    assert refused.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StorageBillingRule)) == 0

    response = dashboard.post("/admin/storage/rules", {**RULE, "is_active": "on"})
    assert response.status_code == 200
    assert "Added Cheaper; it bills from the next day on." in text_of(response)
    cheaper = billing.active_rule()
    assert (cheaper.name, cheaper.tier1_price, cheaper.tier1_limit_gib, cheaper.traffic_price) == ("Cheaper", 6, 50, 3)

    bad = dashboard.post("/admin/storage/rules", {**RULE, "name": "Broken", "tier2_limit_gib": "20"})
    assert bad.status_code == 400
    assert 'id="rule-tier2_limit_gib-error">Tier 2 must end above where tier 1 ends.' in text_of(bad)
    assert 'value="Broken"' in text_of(bad)  # what was typed comes back
    bad = dashboard.post("/admin/storage/rules", {**RULE, "tier1_price": "ten"})
    assert bad.status_code == 400 and "Tier1 price must be a whole number." in text_of(bad)

    standard = billing.create_rule(TEST_ACTOR, name="Standard")
    switched = dashboard.post(f"/admin/storage/rules/{standard.id}/active", {"active": "1"})
    assert switched.status_code == 200 and "Standard is the active rule now." in text_of(switched)
    db.session.expire_all()
    assert billing.active_rule().id == standard.id
    assert db.session.get(StorageBillingRule, cheaper.id).is_active is False

    page = dashboard.get(f"/admin/storage/rules/{cheaper.id}")
    assert page.status_code == 200 and 'value="Cheaper"' in text_of(page)
    saved = dashboard.post(f"/admin/storage/rules/{cheaper.id}", {**RULE, "tier3_price": "1"})
    assert saved.status_code == 200 and "Saved: days billed from now on use these prices." in text_of(saved)
    db.session.expire_all()
    assert db.session.get(StorageBillingRule, cheaper.id).tier3_price == 1
    assert dashboard.get("/admin/storage/rules/not-a-rule").status_code == 404

    off = dashboard.post(f"/admin/storage/rules/{standard.id}/active", {"active": "0"})
    assert "no rule is active, so storage is metered but not charged" in text_of(off)
    assert billing.active_rule() is None
    actions = [entry.action for entry in audit_entries(target_type="storage_rule")]
    assert actions == ["storage_rule.create", "storage_rule.activate", "storage_rule.create", "storage_rule.activate",
                       "storage_rule.update", "storage_rule.deactivate"]
    assert {entry.actor_name for entry in audit_entries(target_type="storage_rule") if entry.actor_type != "system"} \
        == {root.username}


def test_the_tenant_storage_section_shows_usage_and_owed_fees_and_edits_the_quota(dashboard, make):
    billing.create_rule(TEST_ACTOR, name="Standard", active=True)
    acme = make.funded_tenant("Acme", credits=10)
    occupy(acme, 90 * GiB)  # 30 credits a day: 10 paid, 20 owed
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    billing.bill(yesterday, now=datetime.now(timezone.utc))

    response = dashboard.get(f"/admin/tenants/{acme.tenant.id}/storage", htmx=True)
    assert response.status_code == 200
    section = text_of(response)
    assert '<section id="tenant-storage"' in section and "<html" not in section  # the fragment alone
    assert '<dd data-storage="used">90.0 GiB' in section
    assert '<dd data-storage="owed" class="owed">20 credits</dd>' in section
    assert "its new generations are refused (402) until a recharge pays them" in section
    assert f'data-day="{yesterday.isoformat()}" data-bytes="{90 * GiB}"' in section
    assert "10 / 8 / 5 per GiB-month, 5 per GiB downloaded" in section
    whole = dashboard.get(f"/admin/tenants/{acme.tenant.id}")
    assert '<section id="tenant-storage"' in text_of(whole)

    saved = dashboard.post(f"/admin/tenants/{acme.tenant.id}/storage/quota", {"quota": "200", "unit": "GiB"})
    assert saved.status_code == 200 and "Storage quota set to 200 GiB." in text_of(saved)
    assert '<dd data-storage="quota">200.0 GiB</dd>' in text_of(saved)
    assert db.session.get(Tenant, acme.tenant.id).storage_quota_bytes == 200 * GiB
    change = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "tenant.update"))
    assert change.changes == {"storage_quota_bytes": [None, 200 * GiB]}

    for quota, unit, message in (("-5", "GiB", "Quota must be from 0 to"), ("lots", "GiB", "Quota must be a whole"),
                                 ("5", "PiB", "Choose MiB, GiB or TiB."), ("99999999999", "TiB", "Quota must be from")):
        bad = dashboard.post(f"/admin/tenants/{acme.tenant.id}/storage/quota", {"quota": quota, "unit": unit})
        assert bad.status_code == 400, quota
        assert 'id="storage-quota-error">' + message in text_of(bad)
    db.session.expire_all()
    assert db.session.get(Tenant, acme.tenant.id).storage_quota_bytes == 200 * GiB

    cleared = dashboard.post(f"/admin/tenants/{acme.tenant.id}/storage/quota", {"quota": "", "unit": "GiB"})
    assert "No storage quota." in text_of(cleared)
    db.session.expire_all()
    assert db.session.get(Tenant, acme.tenant.id).storage_quota_bytes is None
    assert dashboard.get("/admin/tenants/not-a-tenant/storage").status_code == 404


def test_the_storage_screens_need_a_signed_in_platform_admin(client, make):
    acme = make.tenant("Acme", admin_username="boss", admin_password=PASSWORD)
    for url in ("/admin/storage", f"/admin/tenants/{acme.tenant.id}/storage"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    tenant_admin = make.auth(acme, acme.admin, device_id="boss-laptop")
    response = client.get("/admin/storage", headers=tenant_admin)
    assert response.status_code == 302  # a tenant admin's token is no dashboard session
    response = client.post(f"/admin/tenants/{acme.tenant.id}/storage/quota", data={"quota": "1", "unit": "GiB"},
                           headers=tenant_admin)
    assert response.status_code == 302
    assert db.session.get(Tenant, acme.tenant.id).storage_quota_bytes is None

