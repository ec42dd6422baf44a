"""The S3 backend against a real S3-protocol server on 127.0.0.1 (moto's, signatures checked; see
tests/fakes/s3_server.py): objects written whole and in parts, presigned URLs fetched over HTTP, deletes,
clear refusals, the SSRF guard on the endpoint, and generations stored there end to end."""
from __future__ import annotations

import uuid
from pathlib import Path

import botocore
import pytest
import requests
import sqlalchemy as sa

from app.billing import ledger
from app.extensions import db
from app.identity import tenants
from app.models import StoredFile
from app.storage import backends, metering
from app.storage import service as storage
from app.storage.backends import BucketConfig, StorageFailed
from tests.conftest import assert_error, key_headers
from tests.fakes.s3_server import REGION, S3Server

MiB = 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 120
IMAGE_MODEL = "doubao-seedream-4-0-250828"


@pytest.fixture(scope="module")
def s3_server():
    with S3Server() as server:
        yield server


@pytest.fixture
def bucket(s3_server) -> str:
    return s3_server.create_bucket(f"waule-{uuid.uuid4().hex[:12]}")


def bucket_settings(s3_server, bucket: str, **overrides) -> dict:
    return {"S3_ENDPOINT": s3_server.endpoint, "S3_REGION": REGION, "S3_BUCKET": bucket,
            "S3_ACCESS_KEY_ID": s3_server.access_key_id, "S3_SECRET_ACCESS_KEY": s3_server.secret, **overrides}


@pytest.fixture
def on_s3(app, s3_server, bucket, tmp_path):
    """The platform's storage is the S3 bucket; the test allowlists the local server's origin explicitly."""
    app.config.update(STORAGE_BACKEND="s3", STORAGE_BUCKET=bucket_settings(s3_server, bucket),
                      STORAGE_PART_BYTES=5 * MiB, STORAGE_TEMP_DIR=str(tmp_path / "tmp"),
                      FETCH_ALLOWLIST=(s3_server.endpoint,))
    return backends.platform()


def head(s3_server, bucket: str, key: str) -> dict:
    return s3_server.client().head_object(Bucket=bucket, Key=key)


def exists(s3_server, bucket: str, key: str) -> bool:
    try:
        head(s3_server, bucket, key)
    except botocore.exceptions.ClientError:
        return False
    return True


def test_an_object_is_written_with_its_type_and_disposition_and_read_back(on_s3, s3_server, bucket):
    assert on_s3.name == "s3" and on_s3.bucket == bucket
    assert on_s3.put("tenants/t/api/2026/01/g-0.png", PNG, "image/png") == len(PNG)
    stored = head(s3_server, bucket, "tenants/t/api/2026/01/g-0.png")
    assert stored["ContentType"] == "image/png" and stored["ContentLength"] == len(PNG)
    assert stored["ContentDisposition"] == 'inline; filename="g-0.png"'
    with on_s3.open("tenants/t/api/2026/01/g-0.png") as body:
        assert body.read() == PNG
    with pytest.raises(FileNotFoundError):
        on_s3.open("tenants/t/api/2026/01/missing.png")


def test_a_file_larger_than_the_part_size_goes_up_in_parts(on_s3, s3_server, bucket, tmp_path):
    spooled = tmp_path / "video.part"
    with open(spooled, "wb") as file:
        for n in range(12):  # 12 MiB: three parts of 5 MiB at most
            file.write(bytes([n]) * MiB)
    assert on_s3.put("tenants/t/api/2026/01/v-0.mp4", Path(spooled), "video/mp4") == 12 * MiB
    stored = head(s3_server, bucket, "tenants/t/api/2026/01/v-0.mp4")
    assert stored["ContentLength"] == 12 * MiB and stored["ETag"].strip('"').endswith("-3")  # a multipart upload
    assert stored["ContentType"] == "video/mp4"
    with on_s3.open("tenants/t/api/2026/01/v-0.mp4") as body:
        assert body.read(MiB) == b"\x00" * MiB


def test_a_presigned_url_serves_the_object_over_http(on_s3):
    on_s3.put("tenants/t/api/2026/01/g-1.png", PNG, "image/png")
    url = on_s3.url("tenants/t/api/2026/01/g-1.png", content_type="image/png", expires_in=60)
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200 and answer.content == PNG
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers["Content-Disposition"] == 'inline; filename="g-1.png"'
    assert "X-Amz-Expires=60" in url
    tampered = url.replace("g-1.png", "g-2.png")
    assert requests.get(tampered, timeout=10).status_code == 403


def test_a_presigned_post_lets_the_bucket_refuse_an_oversize_body(on_s3, s3_server, bucket):
    form = on_s3.upload_form("uploads/u-0.png", content_type="image/png", max_bytes=1024, expires_in=60)
    too_big = requests.post(form.url, data=form.fields, files={"file": ("u.png", PNG + b"\0" * 1024, "image/png")},
                            timeout=10)
    assert too_big.status_code == 400 and b"<Code>EntityTooLarge</Code>" in too_big.content
    assert not exists(s3_server, bucket, "uploads/u-0.png")
    other_type = requests.post(form.url, data={**form.fields, "Content-Type": "text/html"},
                               files={"file": ("u.png", PNG, "image/png")}, timeout=10)
    assert other_type.status_code == 403
    fits = requests.post(form.url, data=form.fields, files={"file": ("u.png", PNG, "image/png")}, timeout=10)
    assert fits.status_code == 204, fits.content
    assert head(s3_server, bucket, "uploads/u-0.png")["ContentLength"] == len(PNG)


def test_deleting_removes_the_object(on_s3, s3_server, bucket):
    on_s3.put("tenants/t/api/2026/01/g-3.png", PNG, "image/png")
    on_s3.delete("tenants/t/api/2026/01/g-3.png")
    assert not exists(s3_server, bucket, "tenants/t/api/2026/01/g-3.png")
    on_s3.delete("tenants/t/api/2026/01/g-3.png")  # twice is harmless


@pytest.mark.parametrize("wrong, reason", [
    ({"secret": "not-the-secret"}, "the secret does not belong to the access key id (wrong secret)"),
    ({"access_key_id": "AKIANOTAKEY000000000"}, "the access key id is not known to the storage service (wrong key)"),
    ({"bucket": "no-such-bucket-here"}, "the bucket does not exist"),
])
def test_verify_with_wrong_credentials_fails_clearly(app, s3_server, bucket, wrong, reason):
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    config = BucketConfig("s3", s3_server.endpoint, REGION, wrong.get("bucket", bucket),
                          wrong.get("access_key_id", s3_server.access_key_id), wrong.get("secret", s3_server.secret))
    with pytest.raises(StorageFailed) as failed:
        backends.cloud(config).verify()
    assert reason in failed.value.message and failed.value.status == 502
    assert "not-the-secret" not in failed.value.message and "<Error>" not in failed.value.message


def test_verify_with_the_right_keys_leaves_nothing_behind(app, s3_server, bucket):
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    config = BucketConfig("s3", s3_server.endpoint, REGION, bucket, s3_server.access_key_id, s3_server.secret)
    backends.cloud(config).verify("waule/")
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_bucket_endpoint_on_a_private_address_is_refused_unless_allowlisted(app, s3_server, bucket):
    app.config.update(STORAGE_BACKEND="s3", STORAGE_BUCKET=bucket_settings(s3_server, bucket), FETCH_ALLOWLIST=())
    with pytest.raises(StorageFailed) as refused:
        backends.platform().put("tenants/t/api/2026/01/g-4.png", PNG, "image/png")
    assert refused.value.code == "storage_endpoint_refused" and "FETCH_ALLOWLIST" in refused.value.message
    assert not exists(s3_server, bucket, "tenants/t/api/2026/01/g-4.png")
    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)  # the origin exactly: scheme, host and port
    backends.platform().put("tenants/t/api/2026/01/g-4.png", PNG, "image/png")
    assert exists(s3_server, bucket, "tenants/t/api/2026/01/g-4.png")


def test_a_generation_is_stored_in_the_bucket_and_its_url_redirects_to_a_presigned_one(client, make, on_s3,
                                                                                      s3_server, bucket):
    created = make.funded_tenant()
    response = client.post("/api/v1/images/generations", headers=key_headers(created),
                           json={"model": IMAGE_MODEL, "prompt": "a lighthouse"})
    assert response.status_code == 200, response.get_json()
    row = db.session.scalars(sa.select(StoredFile)).one()
    assert (row.backend, row.bucket, row.status) == ("s3", bucket, "STORED")
    assert exists(s3_server, bucket, row.storage_key)

    listed = client.get("/api/v1/generations", headers=key_headers(created)).get_json()
    url = listed["data"][0]["results"][0]["url"]
    assert "X-Amz-" not in url  # listing presigns nothing: the link is ours
    answer = client.get(url)
    assert answer.status_code == 302 and answer.headers["Cache-Control"] == "no-store"
    presigned = answer.headers["Location"]
    assert presigned.startswith(f"{s3_server.endpoint}/{bucket}/") and "X-Amz-Signature=" in presigned
    downloaded = requests.get(presigned, timeout=10)
    assert downloaded.status_code == 200 and downloaded.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(downloaded.content) == row.size_bytes


def test_a_video_streams_into_the_bucket_and_its_content_url_redirects(client, make, on_s3, s3_server, bucket,
                                                                       tmp_path):
    created = make.funded_tenant(credits=5000)
    response = client.post("/api/v1/videos/generations", headers=key_headers(created),
                           json={"model": "viduq2-turbo", "prompt": "a fox", "duration": 5, "resolution": "720p"})
    video = client.get(f"/api/v1/videos/{response.get_json()['id']}", headers=key_headers(created)).get_json()
    assert video["status"] == "completed" and video["duration"] == 5.0, video
    content = client.get(f"/api/v1/videos/{video['id']}/content", headers=key_headers(created))
    assert content.status_code == 302
    downloaded = requests.get(content.headers["Location"], timeout=10)
    assert downloaded.headers["Content-Type"] == "video/mp4" and downloaded.content[4:8] == b"ftyp"
    assert len(downloaded.content) == video["file_size"]
    assert list((tmp_path / "tmp").rglob("*.part")) == []  # the spooled download is gone


def test_deleting_a_generation_removes_its_objects_and_a_failed_removal_is_retried(client, make, on_s3, app,
                                                                                   s3_server, bucket):
    created = make.funded_tenant()
    body = client.post("/api/v1/images/generations?", headers=key_headers(created),
                       json={"model": IMAGE_MODEL, "prompt": "a fox", "n": 2, "async": True}).get_json()
    keys = [row.storage_key for row in db.session.scalars(sa.select(StoredFile))]
    assert len(keys) == 2 and tenants.find_tenant(created.tenant.id).storage_used_bytes > 0

    app.config["FETCH_ALLOWLIST"] = ()  # the bucket cannot be reached while the client deletes
    deleted = client.delete(f"/api/v1/generations/{body['id']}", headers=key_headers(created))
    assert deleted.status_code == 200
    assert deleted.get_json() == {"id": body["id"], "object": "generation.deleted", "deleted": True}
    assert tenants.find_tenant(created.tenant.id).storage_used_bytes == 0  # given back at once
    rows = db.session.scalars(sa.select(StoredFile)).all()
    assert {row.status for row in rows} == {"DELETING"} and all(exists(s3_server, bucket, key) for key in keys)
    assert_error(client.get(f"/api/v1/generations/{body['id']}", headers=key_headers(created)), 404)

    app.config["FETCH_ALLOWLIST"] = (s3_server.endpoint,)
    assert storage.sweep() == 2  # the periodic storage sweep
    assert not any(exists(s3_server, bucket, key) for key in keys)
    db.session.expire_all()
    assert {row.status for row in db.session.scalars(sa.select(StoredFile))} == {"DELETED"}
    assert ledger.verify() == []


def test_a_bucket_that_fails_at_upload_fails_the_generation_with_502_and_releases_the_hold(client, make, on_s3, app,
                                                                                        s3_server):
    app.config["STORAGE_BUCKET"] = {**app.config["STORAGE_BUCKET"], "S3_SECRET_ACCESS_KEY": "rotated-away"}
    created = make.funded_tenant()
    response = client.post("/api/v1/images/generations", headers=key_headers(created),
                           json={"model": IMAGE_MODEL, "prompt": "a lighthouse"})
    error = assert_error(response, 502, "storage_failed")
    assert "wrong secret" in error["message"] and "rotated-away" not in error["message"]
    account = ledger.account(created.tenant.id)
    assert (account.balance, account.held) == (1000, 0)
    # Nothing was written; the row recorded before the write stays for the sweep (the bucket refuses it too).
    row = db.session.scalars(sa.select(StoredFile)).one()
    assert row.status == "PENDING" and not exists(s3_server, row.bucket, row.storage_key)


def test_a_client_uploads_straight_to_the_bucket_and_the_bucket_enforces_the_declared_size(client, make, on_s3,
                                                                                          s3_server, bucket):
    created = make.funded_tenant()
    declared = client.post("/api/v1/uploads", headers=key_headers(created),
                           json={"filename": "fox.png", "content_type": "image/png", "size": len(PNG)})
    assert declared.status_code == 201, declared.get_json()
    body = declared.get_json()
    target = body["upload"]
    assert target["method"] == "POST" and target["url"].startswith(s3_server.endpoint)
    too_big = requests.post(target["url"], data=target["fields"], timeout=10,
                            files={"file": ("fox.png", PNG + b"\0" * 10, "image/png")})
    assert too_big.status_code == 400 and b"EntityTooLarge" in too_big.content
    sent = requests.post(target["url"], data=target["fields"], files={"file": ("fox.png", PNG, "image/png")},
                         timeout=10)
    assert sent.status_code == 204
    done = client.post(f"/api/v1/uploads/{body['id']}/complete", headers=key_headers(created), json={})
    assert done.status_code == 200 and done.get_json()["status"] == "completed"
    assert tenants.find_tenant(created.tenant.id).storage_used_bytes == len(PNG)
    content = client.get(f"/api/v1/uploads/{body['id']}/content", headers=key_headers(created))
    assert content.status_code == 302 and requests.get(content.headers["Location"], timeout=10).content == PNG


def test_deep_verify_compares_the_platform_bucket_with_the_records(client, make, on_s3, s3_server, bucket):
    created = make.funded_tenant()
    assert client.post("/api/v1/images/generations", headers=key_headers(created),
                       json={"model": IMAGE_MODEL, "prompt": "a lighthouse"}).status_code == 200
    assert metering.verify(deep=True) == []
    row = db.session.scalars(sa.select(StoredFile)).one()
    s3_server.client().delete_object(Bucket=bucket, Key=row.storage_key)
    s3_server.client().put_object(Bucket=bucket, Key=f"tenants/{created.tenant.id}/stray.png", Body=b"x")
    problems = metering.verify(deep=True)
    assert any("missing from their backend" in problem and row.storage_key in problem for problem in problems)
    assert any("no live record accounts for" in problem and "stray.png" in problem for problem in problems)
