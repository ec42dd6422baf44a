"""The Bucket section of a tenant's page: set a bucket (keys never shown back), verify it against a real
S3-protocol server (moto's, on 127.0.0.1), switch where new results go, and the refusals in words."""
from __future__ import annotations

import uuid

import pytest

from tests.admin.conftest import audit_entries, text_of
from tests.fakes.s3_server import REGION, S3Server


@pytest.fixture(scope="module")
def s3_server():
    with S3Server() as server:
        yield server


def test_a_tenants_bucket_is_set_verified_and_switched_from_its_page(app, dashboard, make, s3_server):
    acme = make.funded_tenant("Acme")
    base = f"/admin/tenants/{acme.tenant.id}"
    bucket = s3_server.create_bucket(f"acme-{uuid.uuid4().hex[:10]}")
    form = {"provider": "s3", "endpoint": s3_server.endpoint, "region": REGION, "bucket": bucket,
            "access_key_id": s3_server.access_key_id, "secret": s3_server.secret, "path_prefix": "waule/"}
    page = text_of(dashboard.get(base))
    assert "<h2>Bucket</h2>" in page and "No bucket of its own." in page

    app.config["FETCH_ALLOWLIST"] = ()
    refused = dashboard.post(f"{base}/bucket", form)
    assert refused.status_code == 400 and "FETCH_ALLOWLIST" in text_of(refused)
    assert s3_server.secret not in text_of(refused)  # what was typed comes back, never the keys

    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    saved = dashboard.post(f"{base}/bucket", form)
    assert saved.status_code == 200 and "Bucket saved" in text_of(saved) and "not verified" in text_of(saved)
    assert s3_server.secret not in text_of(saved) and s3_server.access_key_id not in text_of(saved)
    assert f"…{s3_server.access_key_id[-4:]}" in text_of(saved)
    early = dashboard.post(f"{base}/bucket/mode", {"mode": "CUSTOM"})
    assert early.status_code == 409 and "Verify the tenant&#39;s bucket" in text_of(early)

    verified = dashboard.post(f"{base}/bucket/verify")
    assert verified.status_code == 200 and f"Verified {bucket}" in text_of(verified)
    switched = dashboard.post(f"{base}/bucket/mode", {"mode": "CUSTOM"})
    assert "New results go to the tenant&#39;s own bucket" in text_of(switched)

    rekeyed = dashboard.post(f"{base}/bucket", {**form, "access_key_id": "", "secret": "wrong"})
    assert "not verified" in text_of(rekeyed)
    failed = dashboard.post(f"{base}/bucket/verify")
    assert failed.status_code == 400 and "wrong secret" in text_of(failed)
    assert [entry.action for entry in audit_entries(tenant_id=acme.tenant.id)
            if entry.action.startswith("tenant.storage")][:2] == ["tenant.storage_bucket_saved",
                                                                  "tenant.storage_bucket_verified"]
