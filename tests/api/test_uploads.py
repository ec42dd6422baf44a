"""Uploads on the local disk: declare, PUT to our own signed route (past the 10 MiB body cap, up to the
declared size), complete (size, type and first bytes checked, then metered), use the URL as a reference
image (resolved by tenant, never fetched over HTTP); refusals, quota, isolation and the expiry job."""
from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app.core.db import utcnow
from app.extensions import db
from app.identity import tenants
from app.models import Generation, StoredFile
from app.storage import service as storage
from app.storage import uploads
from tests.conftest import assert_error, key_headers

MiB = 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
BIG_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * (11 * MiB)  # past MAX_BODY_BYTES (10 MiB)
IMAGE_MODEL = "doubao-seedream-4-0-250828"


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def declare(client, created, data: bytes = PNG, content_type: str = "image/png", **changes):
    return client.post("/api/v1/uploads", headers=key_headers(created),
                       json={"filename": "fox.png", "content_type": content_type, "size": len(data), **changes})


def send(client, target: dict, data: bytes):
    split = urlsplit(target["url"])
    return client.put(f"{split.path}?{split.query}", data=data, headers=target["headers"])


def uploaded(client, created, data: bytes = PNG) -> dict:
    body = declare(client, created, data).get_json()
    assert send(client, body["upload"], data).status_code == 204
    done = client.post(f"/api/v1/uploads/{body['id']}/complete", headers=key_headers(created), json={})
    assert done.status_code == 200, done.get_json()
    return done.get_json()


def test_an_upload_past_the_body_cap_is_streamed_completed_metered_and_served(app, client, acme):
    declared = declare(client, acme, BIG_PNG)
    assert declared.status_code == 201, declared.get_json()
    body = declared.get_json()
    assert body["status"] == "pending" and body["url"] is None and body["size"] == len(BIG_PNG)
    target = body["upload"]
    assert target["method"] == "PUT" and target["url"].startswith("http://localhost/files/uploads/")
    assert target["headers"] == {"Content-Type": "image/png"} and target["expires_at"].endswith("Z")
    assert tenants.find_tenant(acme.tenant.id).storage_used_bytes == 0  # nothing is metered before it completes

    assert send(client, target, BIG_PNG).status_code == 204
    done = client.post(f"/api/v1/uploads/{body['id']}/complete", headers=key_headers(acme), json={}).get_json()
    assert done["status"] == "completed" and done["url"] == f"http://localhost/api/v1/uploads/{body['id']}/content"
    assert tenants.find_tenant(acme.tenant.id).storage_used_bytes == len(BIG_PNG)
    again = client.post(f"/api/v1/uploads/{body['id']}/complete", headers=key_headers(acme), json={})
    assert again.status_code == 200 and tenants.find_tenant(acme.tenant.id).storage_used_bytes == len(BIG_PNG)
    content = client.get(urlsplit(done["url"]).path, headers=key_headers(acme))
    assert content.status_code == 200 and content.mimetype == "image/png" and content.data == BIG_PNG
    assert content.headers["Content-Disposition"].startswith("inline; filename=")


def test_a_completed_upload_is_a_reference_image_resolved_without_fetching_it(app, client, acme):
    done = uploaded(client, acme)
    response = client.post("/api/v1/images/generations", headers=key_headers(acme),
                           json={"model": IMAGE_MODEL, "prompt": "a fox like this", "reference_images": [done["url"]]})
    assert response.status_code == 200, response.get_json()
    generation = db.session.get(Generation, uuid.UUID(response.get_json()["generation_id"]))
    [reference] = generation.params["reference_images"]
    assert reference.startswith(f"{app.config['PUBLIC_BASE_URL']}/files/tenants/{acme.tenant.id}/api/")
    assert "sig=" in reference and "/api/v1/uploads/" not in reference


def test_what_the_bucket_or_our_route_receives_must_match_what_was_declared(client, acme):
    body = declare(client, acme).get_json()
    assert send(client, body["upload"], PNG + b"more").status_code == 400  # not the declared size
    tampered = {**body["upload"], "url": body["upload"]["url"].replace("sig=", "sig=0")}
    assert send(client, tampered, PNG).status_code == 403
    missing = client.post(f"/api/v1/uploads/{body['id']}/complete", headers=key_headers(acme), json={})
    assert_error(missing, 400, "upload_missing")

    fake = b"<html>not a png</html>" + b"\x00" * (len(PNG) - 22)
    assert send(client, body["upload"], fake).status_code == 204
    refused = client.post(f"/api/v1/uploads/{body['id']}/complete", headers=key_headers(acme), json={})
    assert "not a image/png" in assert_error(refused, 400, "upload_mismatch")["message"]
    assert db.session.get(StoredFile, uuid.UUID(body["id"])) is None  # object and row gone
    assert tenants.find_tenant(acme.tenant.id).storage_used_bytes == 0


@pytest.mark.parametrize("changes, param", [({"content_type": "text/html"}, "content_type"),
                                            ({"size": 0}, "size"), ({"size": 10 ** 12}, "size"),
                                            ({"filename": "../../etc/passwd"}, "filename")])
def test_bad_declarations_are_refused(client, acme, changes, param):
    assert assert_error(declare(client, acme, **changes), 400)["param"] == param
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0


def test_uploads_count_against_the_storage_quota(client, acme):
    tenant = tenants.find_tenant(acme.tenant.id)
    tenant.storage_quota_bytes = 100
    db.session.commit()
    assert_error(declare(client, acme), 413, "storage_quota_exceeded")


def test_another_tenants_upload_is_404_everywhere(client, make, acme):
    done = uploaded(client, acme)
    other = make.funded_tenant("Other")
    for response in (client.post(f"/api/v1/uploads/{done['id']}/complete", headers=key_headers(other), json={}),
                     client.get(f"/api/v1/uploads/{done['id']}/content", headers=key_headers(other)),
                     client.post("/api/v1/images/generations", headers=key_headers(other),
                                 json={"model": IMAGE_MODEL, "prompt": "a fox", "reference_images": [done["url"]]})):
        assert_error(response, 404, "upload_not_found")
    assert tenants.find_tenant(other.tenant.id).storage_used_bytes == 0


def test_uploads_never_completed_are_deleted_after_a_day(app, client, acme):
    stale, fresh = declare(client, acme).get_json(), declare(client, acme).get_json()
    for body in (stale, fresh):
        send(client, body["upload"], PNG)
    row = db.session.get(StoredFile, uuid.UUID(stale["id"]))
    path = Path(app.config["STORAGE_DIR"]) / row.storage_key
    row.created_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    assert storage.sweep() == 0  # the generations' sweep leaves a waiting upload alone
    assert uploads.expire_uploads() == 1
    assert not path.exists() and db.session.get(StoredFile, uuid.UUID(stale["id"])) is None
    assert db.session.get(StoredFile, uuid.UUID(fresh["id"])).status == "PENDING"
    from app.jobs.registry import JOBS, SCHEDULE, resolve
    assert resolve("uploads.expire") is uploads.expire_uploads and "uploads.expire" in SCHEDULE
    assert JOBS["uploads.expire"].queue == "short"
