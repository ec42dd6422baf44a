"""Tenants' own buckets, end to end over HTTP (a live server, the sandbox gateway, moto's S3 on 127.0.0.1
as the tenant's bucket): set, verify, switch; new results land in the tenant's bucket, old ones keep
downloading from where they were written; keys are never shown; an unverified bucket is never used."""
from __future__ import annotations

import uuid

import pytest
import requests
import sqlalchemy as sa

from app.billing import ledger
from app.extensions import db
from app.models import AuditLog, StoredFile, TenantStorageConfig
from tests.conftest import key_headers
from tests.fakes.s3_server import REGION, S3Server

IMAGE_MODEL = "doubao-seedream-4-0-250828"


@pytest.fixture(scope="module")
def s3_server():
    with S3Server() as server:
        yield server


@pytest.fixture
def tenant_bucket(s3_server) -> str:
    return s3_server.create_bucket(f"tenant-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def acme(make):
    created = make.funded_tenant("Acme")
    created.admin_headers = make.auth(created, make.user(created, "boss", role="admin"))
    return created


def bucket_body(s3_server, bucket: str, **changes) -> dict:
    return {"provider": "s3", "endpoint": s3_server.endpoint, "region": REGION, "bucket": bucket,
            "access_key_id": s3_server.access_key_id, "secret": s3_server.secret, "path_prefix": "waule/", **changes}


def generate(live_server, created) -> requests.Response:
    return requests.post(f"{live_server}/api/v1/images/generations", headers=key_headers(created), timeout=30,
                         json={"model": IMAGE_MODEL, "prompt": "a lighthouse"})


def download(url: str) -> requests.Response:
    return requests.get(url, timeout=10)  # follows our 302 to the bucket's presigned URL


def test_a_tenant_switched_to_its_own_bucket_stores_new_results_there_and_old_ones_still_download(
        app, live_server, acme, s3_server, tenant_bucket):
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    api = f"{live_server}/api/v1/tenant/storage"
    before = generate(live_server, acme)
    assert before.status_code == 200, before.text
    old_url = before.json()["data"][0]["url"]

    saved = requests.put(f"{api}/bucket", headers=acme.admin_headers, json=bucket_body(s3_server, tenant_bucket),
                         timeout=10)
    assert saved.status_code == 200, saved.text
    shown = saved.json()
    assert shown["is_verified"] is False and shown["access_key_id_last4"] == s3_server.access_key_id[-4:]
    assert s3_server.secret not in saved.text and s3_server.access_key_id not in saved.text
    refused = requests.put(f"{api}/mode", headers=acme.admin_headers, json={"mode": "CUSTOM"}, timeout=10)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "bucket_not_verified"

    verified = requests.post(f"{api}/bucket/verify", headers=acme.admin_headers, json={}, timeout=10)
    assert verified.status_code == 200 and verified.json()["is_verified"] is True
    assert verified.json()["last_verified_at"] and verified.json()["last_error"] is None
    switched = requests.put(f"{api}/mode", headers=acme.admin_headers, json={"mode": "CUSTOM"}, timeout=10)
    assert switched.status_code == 200 and switched.json()["mode"] == "CUSTOM"

    after = generate(live_server, acme)
    assert after.status_code == 200, after.text
    new_row = db.session.scalar(sa.select(StoredFile).where(
        StoredFile.generation_id == uuid.UUID(after.json()["generation_id"])))
    assert (new_row.backend, new_row.bucket) == ("s3", tenant_bucket) and new_row.storage_key.startswith("waule/")
    s3_server.client().head_object(Bucket=tenant_bucket, Key=new_row.storage_key)
    new = download(after.json()["data"][0]["url"])
    assert new.status_code == 200 and new.url.startswith(f"{s3_server.endpoint}/{tenant_bucket}/waule/")
    assert new.content[:8] == b"\x89PNG\r\n\x1a\n"
    old = download(old_url)
    assert old.status_code == 200 and old.url.startswith(live_server) and old.content[:8] == b"\x89PNG\r\n\x1a\n"

    back = requests.put(f"{api}/mode", headers=acme.admin_headers, json={"mode": "PLATFORM"}, timeout=10)
    assert back.status_code == 200 and back.json()["mode"] == "PLATFORM"
    assert download(after.json()["data"][0]["url"]).status_code == 200  # still read where it was written
    moved = requests.put(f"{api}/bucket", headers=acme.admin_headers, timeout=10,
                         json=bucket_body(s3_server, "another-bucket"))
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "bucket_in_use"
    assert requests.delete(f"{api}/bucket", headers=acme.admin_headers, timeout=10).status_code == 409
    actions = set(db.session.scalars(sa.select(AuditLog.action).where(AuditLog.tenant_id == acme.tenant.id)))
    assert {"tenant.storage_bucket_saved", "tenant.storage_bucket_verified", "tenant.storage_mode_changed"} <= actions


def test_changing_the_keys_unverifies_and_the_tenant_is_never_silently_moved_to_the_platform(
        app, live_server, acme, s3_server, tenant_bucket):
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    api = f"{live_server}/api/v1/tenant/storage"
    requests.put(f"{api}/bucket", headers=acme.admin_headers, json=bucket_body(s3_server, tenant_bucket), timeout=10)
    requests.post(f"{api}/bucket/verify", headers=acme.admin_headers, json={}, timeout=10)
    assert requests.put(f"{api}/mode", headers=acme.admin_headers, json={"mode": "CUSTOM"}, timeout=10).ok

    rekeyed = requests.put(f"{api}/bucket", headers=acme.admin_headers, timeout=10,
                           json=bucket_body(s3_server, tenant_bucket, secret="a-wrong-secret"))
    assert rekeyed.status_code == 200 and rekeyed.json()["is_verified"] is False
    failed = generate(live_server, acme)
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "bucket_not_verified"
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (1000, 0)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0  # nowhere else either

    wrong = requests.post(f"{api}/bucket/verify", headers=acme.admin_headers, json={}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "bucket_verification_failed"
    assert "wrong secret" in wrong.json()["error"]["message"]
    shown = requests.get(f"{api}/bucket", headers=acme.admin_headers, timeout=10).json()
    assert shown["is_verified"] is False and "wrong secret" in shown["last_error"]
    row = db.session.scalar(sa.select(TenantStorageConfig))
    assert b"a-wrong-secret" not in row.secret_encrypted  # AES-GCM at rest


def test_a_bucket_endpoint_on_a_private_address_is_refused_when_saved_unless_allowlisted(
        app, client, acme, s3_server, tenant_bucket):
    app.config["FETCH_ALLOWLIST"] = ()
    refused = client.put("/api/v1/tenant/storage/bucket", headers=acme.admin_headers,
                         json=bucket_body(s3_server, tenant_bucket))
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "storage_endpoint_refused"
    assert refused.get_json()["error"]["param"] == "endpoint"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TenantStorageConfig)) == 0
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    assert client.put("/api/v1/tenant/storage/bucket", headers=acme.admin_headers,
                      json=bucket_body(s3_server, tenant_bucket)).status_code == 200


def test_only_tenant_admins_manage_the_bucket_and_each_tenant_sees_its_own(client, make, acme, app, s3_server,
                                                                          tenant_bucket):
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    client.put("/api/v1/tenant/storage/bucket", headers=acme.admin_headers, json=bucket_body(s3_server, tenant_bucket))
    member = make.auth(acme, make.user(acme, "worker"), device_id="device-2")
    assert client.get("/api/v1/tenant/storage/bucket", headers=member).status_code == 403
    other = make.funded_tenant("Other")
    other_admin = make.auth(other, make.user(other, "other-boss", role="admin"), device_id="device-3")
    missing = client.get("/api/v1/tenant/storage/bucket", headers=other_admin)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "bucket_not_configured"


def test_platform_admins_set_verify_and_switch_a_tenants_bucket(client, make, acme, app, s3_server, tenant_bucket):
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    admin = make.admin_token_headers()
    base = f"/admin/api/tenants/{acme.tenant.id}/storage"
    saved = client.put(f"{base}/bucket", headers=admin, json=bucket_body(s3_server, tenant_bucket))
    assert saved.status_code == 200 and s3_server.secret not in saved.get_data(as_text=True)
    assert client.post(f"{base}/bucket/verify", headers=admin, json={}).get_json()["is_verified"] is True
    switched = client.put(f"{base}/mode", headers=admin, json={"mode": "CUSTOM"})
    assert switched.status_code == 200 and switched.get_json()["bucket"]["bucket"] == tenant_bucket
    assert client.get(f"{base}/bucket", headers={}).status_code == 401
    assert client.get(f"/admin/api/tenants/{uuid.uuid4()}/storage/bucket", headers=admin).status_code == 404
