"""The OSS backend through oss2, at the protocol level: a local OSS (tests/fakes/oss_server.py) that
checks every request's V1 signature. The same cases as S3's: whole and multipart writes, signed URLs
fetched over HTTP, PostObject refusing an oversize body, deletes, clear refusals, the SSRF guard, and
a generation stored there end to end."""
from __future__ import annotations

import uuid
from email.utils import formatdate
from pathlib import Path
from unittest import mock

import pytest
import requests
import sqlalchemy as sa

from app.billing import ledger
from app.extensions import db
from app.models import StoredFile
from app.storage import backends
from app.storage.backends import BucketConfig, StorageFailed
from tests.conftest import assert_error, key_headers
from tests.fakes.oss_server import FakeOss

MiB = 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 120
KEY_ID, SECRET = "LTAI5tWauleTest", "oss-secret-for-tests"
IMAGE_MODEL = "doubao-seedream-4-0-250828"


@pytest.fixture(scope="module")
def oss_server():
    with FakeOss({KEY_ID: SECRET}) as server:
        yield server


@pytest.fixture
def bucket(oss_server) -> str:
    return oss_server.create_bucket(f"waule-{uuid.uuid4().hex[:12]}")


def bucket_settings(oss_server, bucket: str, **overrides) -> dict:
    return {"OSS_ENDPOINT": oss_server.endpoint, "OSS_BUCKET": bucket, "OSS_ACCESS_KEY_ID": KEY_ID,
            "OSS_ACCESS_KEY_SECRET": SECRET, **overrides}


@pytest.fixture
def on_oss(app, oss_server, bucket, tmp_path):
    """The platform's storage is the OSS bucket; the test allowlists the local server's origin explicitly."""
    app.config.update(STORAGE_BACKEND="oss", STORAGE_BUCKET=bucket_settings(oss_server, bucket),
                      STORAGE_PART_BYTES=5 * MiB, STORAGE_TEMP_DIR=str(tmp_path / "tmp"),
                      FETCH_ALLOWLIST=(oss_server.endpoint,))
    return backends.platform()


def test_an_object_is_written_with_its_type_and_disposition_and_read_back(on_oss, oss_server, bucket):
    assert on_oss.name == "oss" and on_oss.bucket == bucket
    assert on_oss.put("tenants/t/api/2026/01/g-0.png", PNG, "image/png") == len(PNG)
    data, headers = oss_server.buckets[bucket]["tenants/t/api/2026/01/g-0.png"]
    assert data == PNG and headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == 'inline; filename="g-0.png"'
    with on_oss.open("tenants/t/api/2026/01/g-0.png") as body:
        assert body.read() == PNG
    assert on_oss.size("tenants/t/api/2026/01/g-0.png") == len(PNG)
    with pytest.raises(FileNotFoundError):
        on_oss.open("tenants/t/api/2026/01/missing.png")


def test_a_file_larger_than_the_part_size_goes_up_in_parts_with_checkpoints_in_the_temp_folder(
        on_oss, oss_server, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # anything written there would show
    spooled = tmp_path / "video.part"
    with open(spooled, "wb") as file:
        for n in range(12):
            file.write(bytes([n]) * MiB)
    assert on_oss.put("tenants/t/api/2026/01/v-0.mp4", Path(spooled), "video/mp4") == 12 * MiB
    data, headers = oss_server.buckets[bucket]["tenants/t/api/2026/01/v-0.mp4"]
    assert len(data) == 12 * MiB and headers["ETag"].endswith('-3"') and headers["Content-Type"] == "video/mp4"
    parts = [target for verb, target in oss_server.requests if verb == "PUT" and "v-0.mp4?" in target]
    assert len(parts) == 3 and all("partNumber=" in target for target in parts)
    assert (tmp_path / "tmp" / "oss-checkpoints").is_dir()  # oss2's resumable store: ours, not $HOME
    assert not (tmp_path / "home").exists()


def test_a_signed_url_serves_the_object_over_http(on_oss):
    on_oss.put("tenants/t/api/2026/01/g-1.png", PNG, "image/png")
    url = on_oss.url("tenants/t/api/2026/01/g-1.png", content_type="image/png", expires_in=60)
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200 and answer.content == PNG
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers["Content-Disposition"] == 'inline; filename="g-1.png"'
    assert requests.get(url.replace("g-1.png", "g-2.png"), timeout=10).status_code == 403


def test_a_postobject_policy_lets_the_bucket_refuse_an_oversize_body(on_oss, oss_server, bucket):
    form = on_oss.upload_form("uploads/u-0.png", content_type="image/png", max_bytes=1024, expires_in=60)
    too_big = requests.post(form.url, data=form.fields, files={"file": ("u.png", PNG + b"\0" * 1024, "image/png")},
                            timeout=10)
    assert too_big.status_code == 400 and b"<Code>EntityTooLarge</Code>" in too_big.content
    assert "uploads/u-0.png" not in oss_server.buckets[bucket]
    forged = requests.post(form.url, data={**form.fields, "key": "uploads/elsewhere.png"},
                           files={"file": ("u.png", PNG, "image/png")}, timeout=10)
    assert forged.status_code == 403
    fits = requests.post(form.url, data=form.fields, files={"file": ("u.png", PNG, "image/png")}, timeout=10)
    assert fits.status_code == 204, fits.content
    assert oss_server.buckets[bucket]["uploads/u-0.png"][0] == PNG


def test_deleting_removes_the_object(on_oss, oss_server, bucket):
    on_oss.put("tenants/t/api/2026/01/g-3.png", PNG, "image/png")
    on_oss.delete("tenants/t/api/2026/01/g-3.png")
    assert "tenants/t/api/2026/01/g-3.png" not in oss_server.buckets[bucket]
    on_oss.delete("tenants/t/api/2026/01/g-3.png")  # twice is harmless


@pytest.mark.parametrize("wrong, reason", [
    ({"secret": "not-the-secret"}, "the secret does not belong to the access key id (wrong secret)"),
    ({"access_key_id": "LTAInotakey"}, "the access key id is not known to the storage service (wrong key)"),
    ({"bucket": "no-such-bucket-here"}, "the bucket does not exist"),
])
def test_verify_with_wrong_credentials_fails_clearly(app, oss_server, bucket, wrong, reason):
    app.config["FETCH_ALLOWLIST"] = (oss_server.endpoint,)
    config = BucketConfig("oss", oss_server.endpoint, "", wrong.get("bucket", bucket),
                          wrong.get("access_key_id", KEY_ID), wrong.get("secret", SECRET))
    with pytest.raises(StorageFailed) as failed:
        backends.cloud(config).verify()
    assert reason in failed.value.message and failed.value.status == 502
    assert "not-the-secret" not in failed.value.message and "<Error>" not in failed.value.message


def test_verify_refuses_a_clock_that_is_off_by_an_hour(app, oss_server, bucket):
    import time
    app.config["FETCH_ALLOWLIST"] = (oss_server.endpoint,)
    config = BucketConfig("oss", oss_server.endpoint, "", bucket, KEY_ID, SECRET)
    with mock.patch("oss2.utils.http_date", return_value=formatdate(time.time() - 3600, usegmt=True)):
        with pytest.raises(StorageFailed) as failed:
            backends.cloud(config).verify()
    assert "clock skew" in failed.value.message


def test_verify_with_the_right_keys_leaves_nothing_behind(app, oss_server, bucket):
    app.config["FETCH_ALLOWLIST"] = (oss_server.endpoint,)
    backends.cloud(BucketConfig("oss", oss_server.endpoint, "", bucket, KEY_ID, SECRET)).verify("waule/")
    assert oss_server.buckets[bucket] == {}
    done = [(verb, target.split("?")[0]) for verb, target in oss_server.requests[-4:]]
    assert [verb for verb, _ in done] == ["PUT", "GET", "GET", "DELETE"]  # write, read, list, delete


def test_a_bucket_endpoint_on_a_private_address_is_refused_unless_allowlisted(app, oss_server, bucket):
    app.config.update(STORAGE_BACKEND="oss", STORAGE_BUCKET=bucket_settings(oss_server, bucket), FETCH_ALLOWLIST=())
    seen = len(oss_server.requests)
    with pytest.raises(StorageFailed) as refused:
        backends.platform().put("tenants/t/api/2026/01/g-4.png", PNG, "image/png")
    assert refused.value.code == "storage_endpoint_refused" and len(oss_server.requests) == seen  # never contacted
    app.config["FETCH_ALLOWLIST"] = (oss_server.endpoint,)
    backends.platform().put("tenants/t/api/2026/01/g-4.png", PNG, "image/png")
    assert "tenants/t/api/2026/01/g-4.png" in oss_server.buckets[bucket]


def test_a_generation_is_stored_in_the_bucket_and_its_url_redirects_to_a_signed_one(client, make, on_oss,
                                                                                   oss_server, bucket):
    created = make.funded_tenant()
    response = client.post("/api/v1/images/generations", headers=key_headers(created),
                           json={"model": IMAGE_MODEL, "prompt": "a lighthouse"})
    assert response.status_code == 200, response.get_json()
    row = db.session.scalars(sa.select(StoredFile)).one()
    assert (row.backend, row.bucket) == ("oss", bucket) and row.storage_key in oss_server.buckets[bucket]
    answer = client.get(response.get_json()["data"][0]["url"])
    assert answer.status_code == 302 and "Signature=" in answer.headers["Location"]
    downloaded = requests.get(answer.headers["Location"], timeout=10)
    assert downloaded.status_code == 200 and downloaded.content[:8] == b"\x89PNG\r\n\x1a\n"

    deleted = client.delete(f"/api/v1/generations/{response.get_json()['generation_id']}",
                            headers=key_headers(created))
    assert deleted.status_code == 200 and row.storage_key not in oss_server.buckets[bucket]
    assert ledger.verify() == []


def test_a_wrong_secret_at_upload_fails_the_generation_with_502_and_releases_the_hold(client, make, on_oss, app):
    app.config["STORAGE_BUCKET"] = {**app.config["STORAGE_BUCKET"], "OSS_ACCESS_KEY_SECRET": "rotated-away"}
    created = make.funded_tenant()
    response = client.post("/api/v1/images/generations", headers=key_headers(created),
                           json={"model": IMAGE_MODEL, "prompt": "a lighthouse"})
    error = assert_error(response, 502, "storage_failed")
    assert "wrong secret" in error["message"] and "rotated-away" not in error["message"]
    account = ledger.account(created.tenant.id)
    assert (account.balance, account.held) == (1000, 0)


def test_the_host_oss2_really_connects_to_is_the_one_checked(app, monkeypatch):
    """A bucket on a named endpoint is reached at bucket.<endpoint host>: that name must resolve to public
    addresses too, whatever the endpoint's own name does."""
    import socket
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "files.tenant.example":
            return real("93.184.215.14", *args, **kwargs)
        if host == "inside.files.tenant.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    app.config["FETCH_ALLOWLIST"] = ()
    backend = backends.cloud(BucketConfig("oss", "https://files.tenant.example", "", "inside", KEY_ID, SECRET))
    with pytest.raises(StorageFailed) as refused:
        backend.put("tenants/t/api/2026/01/g-5.png", PNG, "image/png")
    assert refused.value.code == "storage_endpoint_refused" and "inside.files.tenant.example" in refused.value.message
