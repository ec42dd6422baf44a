"""Result storage: the local backend, metering against the tenant, and signed file URLs served over
HTTP by /files/<key>."""
from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Generation, StoredFile, Tenant
from app.storage import backends, signing
from app.storage import service as storage
from app.storage.backends import LocalStorage, UnsafeKey

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 120
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x01" * 200


def generation_for(created, kind: str = "image") -> Generation:
    """A bare generation row for results to belong to (the generation service is tested elsewhere)."""
    generation = Generation(tenant_id=created.tenant.id, model="sandbox-image", kind=kind, params={})
    db.session.add(generation)
    db.session.commit()
    return generation


def used_bytes(tenant_id) -> int:
    return db.session.scalar(sa.select(Tenant.storage_used_bytes).where(Tenant.id == tenant_id))


def store(created, generation, index: int = 0, data: bytes = PNG, content_type: str = "image/png",
          caller: str = "api") -> StoredFile:
    stored = storage.record_pending(tenant_id=created.tenant.id, generation_id=generation.id, caller=caller,
                                    index=index, content_type=content_type,
                                    original_url="https://cdn.vendor.example/result.png?sig=abc")
    storage.write(stored, data)
    storage.confirm(created.tenant.id, generation.id)
    db.session.commit()
    return stored


def test_local_storage_round_trip(tmp_path):
    backend = LocalStorage(tmp_path / "storage")
    backend.put("tenants/t1/api/2025/01/g-0.png", PNG, "image/png")
    with backend.open("tenants/t1/api/2025/01/g-0.png") as file:
        assert file.read() == PNG
    backend.put("tenants/t1/api/2025/01/g-0.png", b"replaced", "image/png")
    with backend.open("tenants/t1/api/2025/01/g-0.png") as file:
        assert file.read() == b"replaced"
    assert [p.name for p in (tmp_path / "storage/tenants/t1/api/2025/01").iterdir()] == ["g-0.png"]  # no temp files

    backend.delete("tenants/t1/api/2025/01/g-0.png")
    with pytest.raises(FileNotFoundError):
        backend.open("tenants/t1/api/2025/01/g-0.png")
    backend.delete("tenants/t1/api/2025/01/g-0.png")  # deleting twice is harmless


@pytest.mark.parametrize("key", ["../outside.png", "tenants/../../outside.png", "/etc/passwd", "tenants//x.png",
                                 "tenants\\..\\x.png", "tenants/./x.png", "tenants/.hidden", "", "a/\x00.png",
                                 "tenants/x/.."])
def test_keys_that_could_leave_the_storage_directory_are_refused(tmp_path, key):
    backend = LocalStorage(tmp_path / "storage")
    for operation in (lambda: backend.put(key, b"x", "image/png"), lambda: backend.open(key),
                      lambda: backend.delete(key)):
        with pytest.raises(UnsafeKey):
            operation()
    assert not (tmp_path / "outside.png").exists()


def test_a_symlink_out_of_the_storage_directory_is_not_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    root = tmp_path / "storage"
    (root / "tenants").mkdir(parents=True)
    os.symlink(tmp_path, root / "tenants" / "escape")
    backend = LocalStorage(root)
    with pytest.raises(UnsafeKey):
        backend.open("tenants/escape/secret.txt")


def test_object_keys_follow_the_tenant_caller_month_layout():
    tenant_id, generation_id, member_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    when = datetime(2025, 3, 7, tzinfo=timezone.utc)
    assert storage.object_key(tenant_id, "api", generation_id, 0, "image/png", when) == \
        f"tenants/{tenant_id}/api/2025/03/{generation_id}-0.png"
    assert storage.object_key(tenant_id, str(member_id), generation_id, 2, "audio/mpeg", when) == \
        f"tenants/{tenant_id}/{member_id}/2025/03/{generation_id}-2.mp3"
    assert storage.object_key(tenant_id, "api", generation_id, 1, "video/mp4", when).endswith("-1.mp4")
    assert storage.object_key(tenant_id, "api", generation_id, 1, "application/x-made-up", when).endswith("-1.bin")
    with pytest.raises(UnsafeKey):
        storage.object_key(tenant_id, "../other", generation_id, 0, "image/png", when)
    with pytest.raises(ValueError):
        storage.object_key("../../etc", "api", generation_id, 0, "image/png", when)


def test_store_result_writes_the_object_records_it_and_meters_it_exactly(app, make):
    created = make.tenant()
    generation = generation_for(created)
    member = make.user(created)
    first = store(created, generation, 0, PNG)
    second = store(created, generation, 1, WAV, "audio/wav", caller=str(member.id))

    assert used_bytes(created.tenant.id) == len(PNG) + len(WAV)
    rows = db.session.scalars(sa.select(StoredFile).where(StoredFile.generation_id == generation.id)
                              .order_by(StoredFile.storage_key)).all()
    assert {(row.size_bytes, row.content_type, row.backend) for row in rows} == \
        {(len(PNG), "image/png", "local"), (len(WAV), "audio/wav", "local")}
    assert first.original_url == "https://cdn.vendor.example/result.png?sig=abc"
    now = datetime.now(timezone.utc)
    assert first.storage_key == f"tenants/{created.tenant.id}/api/{now:%Y/%m}/{generation.id}-0.png"
    assert second.storage_key.startswith(f"tenants/{created.tenant.id}/{member.id}/")
    stored_file = Path(app.config["STORAGE_DIR"]) / second.storage_key
    assert stored_file.read_bytes() == WAV


def test_the_meter_adds_in_sql_without_overwriting_concurrent_changes(app, make):
    """Another transaction raises the meter after we loaded the tenant; store_result must add to the
    row's current value, not write back the stale one it could have read."""
    created = make.tenant()
    generation = generation_for(created)
    stale = db.session.get(Tenant, created.tenant.id)
    assert stale.storage_used_bytes == 0
    with db.engine.begin() as other:
        other.execute(sa.update(Tenant).where(Tenant.id == created.tenant.id).values(storage_used_bytes=1000))
    store(created, generation, 0, PNG)
    assert used_bytes(created.tenant.id) == 1000 + len(PNG)


def test_confirming_leaves_the_commit_to_the_caller(app, make):
    created = make.tenant()
    generation = generation_for(created)
    stored = storage.record_pending(tenant_id=created.tenant.id, generation_id=generation.id, caller="api",
                                    index=0, content_type="image/png", original_url=None)
    storage.write(stored, PNG)
    key = stored.storage_key
    storage.confirm(created.tenant.id, generation.id)
    db.session.rollback()  # the caller's (settling) transaction failed: nothing was metered
    storage.discard_pending(generation.id)  # what a failed generation does with its objects
    db.session.commit()
    assert used_bytes(created.tenant.id) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0
    assert not (Path(app.config["STORAGE_DIR"]) / key).exists()


def test_a_very_long_vendor_url_is_kept_truncated(app, make):
    created = make.tenant()
    stored = storage.record_pending(tenant_id=created.tenant.id, generation_id=generation_for(created).id,
                                    caller="api", index=0, content_type="image/png",
                                    original_url="https://cdn.example/" + "x" * 5000)
    assert len(stored.original_url) == 2000


def test_a_signed_url_serves_the_bytes_with_their_type(app, client, make):
    created = make.tenant()
    stored = store(created, generation_for(created), 0, PNG)
    url = signing.signed_url(stored, expires_in=600)
    assert url.startswith(f"/files/{stored.storage_key}?expires=")

    response = client.get(url)
    assert response.status_code == 200
    assert response.data == PNG
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == f"inline; filename={stored.storage_key.rsplit('/', 1)[1]}"
    cache = response.headers["Cache-Control"]
    assert cache.startswith("private, max-age=")
    assert 590 <= int(cache.rsplit("=", 1)[1]) <= 600
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_signed_urls_support_ranges_and_revalidation(client, make):
    created = make.tenant()
    stored = store(created, generation_for(created), 0, WAV, "audio/wav")
    url = signing.signed_url(stored)
    partial = client.get(url, headers={"Range": "bytes=0-3"})
    assert partial.status_code == 206
    assert partial.data == b"RIFF"
    assert partial.headers["Content-Range"] == f"bytes 0-3/{len(WAV)}"
    etag = client.get(url).headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_an_external_base_makes_the_url_absolute(client, make):
    created = make.tenant()
    stored = store(created, generation_for(created))
    url = signing.signed_url(stored, external_base="https://files.waule.example/")
    assert url.startswith(f"https://files.waule.example/files/{stored.storage_key}?")
    split = urlsplit(url)
    assert client.get(f"{split.path}?{split.query}").data == PNG


def _with_query(url: str, **changes) -> str:
    split = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(split.query).items()}
    query.update(changes)
    return split.path + "?" + "&".join(f"{name}={value}" for name, value in query.items())


def test_tampered_expired_or_missing_signatures_are_forbidden(client, make):
    created = make.tenant()
    stored = store(created, generation_for(created))
    url = signing.signed_url(stored)
    signature = parse_qs(urlsplit(url).query)["sig"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    later = int(parse_qs(urlsplit(url).query)["expires"][0]) + 86400

    for bad in (_with_query(url, sig=flipped), _with_query(url, expires=later), _with_query(url, sig=""),
                _with_query(url, expires="soon"), urlsplit(url).path,
                signing.signed_url(stored, expires_in=-5)):
        response = client.get(bad)
        assert response.status_code == 403, bad
        assert not response.is_json
        assert response.data != PNG


def test_an_expired_url_is_forbidden_even_with_a_valid_signature(client, make):
    created = make.tenant()
    stored = store(created, generation_for(created))
    url = signing.signed_url(stored, expires_in=1)
    assert client.get(url).status_code == 200
    time.sleep(1.1)
    response = client.get(url)
    assert response.status_code == 403
    assert b"expired" in response.data


def test_a_url_signed_for_one_key_does_not_open_another(client, make):
    created = make.tenant()
    generation = generation_for(created)
    mine = store(created, generation, 0, PNG)
    other = store(make.tenant(), generation_for(make.tenant()), 0, WAV, "audio/wav")
    query = urlsplit(signing.signed_url(mine)).query
    response = client.get(f"/files/{other.storage_key}?{query}")
    assert response.status_code == 403
    assert response.data != WAV


def test_a_signed_url_for_a_missing_object_is_not_found(app, client, make):
    created = make.tenant()
    stored = store(created, generation_for(created))
    url = signing.signed_url(stored)
    backends.platform().delete(stored.storage_key)
    assert client.get(url).status_code == 404

    unrecorded = StoredFile(storage_key=f"tenants/{created.tenant.id}/api/2025/01/nothing-0.png")
    assert client.get(signing.signed_url(unrecorded)).status_code == 404


def test_a_signed_url_with_a_traversal_key_is_never_served(app, client, make):
    root = Path(app.config["STORAGE_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    (root.parent / "outside.png").write_bytes(PNG)
    crafted = StoredFile(storage_key="../outside.png")
    response = client.get(signing.signed_url(crafted))
    assert response.status_code in (403, 404)
    assert response.data != PNG


def test_a_generation_whose_settle_fails_leaves_neither_object_nor_row(app, client, make, monkeypatch):
    from app.billing import ledger
    from app.generation import phases
    from tests.conftest import key_headers
    created = make.funded_tenant()

    def broken_settle(*args, **kwargs):
        raise RuntimeError("the database went away mid-settle")

    monkeypatch.setattr(ledger, "settle", broken_settle)
    monkeypatch.setattr(phases, "settle", broken_settle)  # PostgreSQL's settle is one statement of its own
    response = client.post("/api/v1/images/generations", headers=key_headers(created),
                           json={"model": "doubao-seedream-4-0-250828", "prompt": "a fox", "n": 2})
    assert response.status_code == 500
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0
    root = Path(app.config["STORAGE_DIR"])
    assert [path for path in root.rglob("*") if path.is_file()] == []
    assert used_bytes(created.tenant.id) == 0
    assert ledger.account(created.tenant.id).held == 0


def test_the_sweep_deletes_objects_a_killed_process_never_confirmed(app, make):
    created = make.tenant()
    dead, running = generation_for(created), generation_for(created)
    orphan = storage.record_pending(tenant_id=created.tenant.id, generation_id=dead.id, caller="api", index=0,
                                    content_type="image/png", original_url=None)
    storage.write(orphan, PNG)  # ... and the process died before its settle
    in_flight = storage.record_pending(tenant_id=created.tenant.id, generation_id=running.id, caller="api",
                                       index=0, content_type="image/png", original_url=None)
    storage.write(in_flight, PNG)
    db.session.rollback()
    dead.status = "FAILED"  # what the stuck-generation sweep makes of it
    db.session.commit()

    assert storage.sweep_unconfirmed() == 1
    root = Path(app.config["STORAGE_DIR"])
    assert not (root / orphan.storage_key).exists()
    assert (root / in_flight.storage_key).exists()  # its generation may still confirm it
    assert db.session.scalars(sa.select(StoredFile.id)).all() == [in_flight.id]
    assert used_bytes(created.tenant.id) == 0


def test_the_sweep_removes_what_a_killed_copy_left_in_the_temp_folder(app, tmp_path):
    import os
    temp = tmp_path / "spool"
    app.config["STORAGE_TEMP_DIR"] = str(temp)
    stale, running = temp / "results-dead" / "0.part", temp / "results-alive" / "0.part"
    checkpoint = temp / "oss-checkpoints" / "upload-record"
    for path in (stale, running, checkpoint):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 1024)
    day_old = time.time() - 25 * 3600
    for path in (stale, stale.parent, checkpoint):
        os.utime(path, (day_old, day_old))
    storage.sweep()
    assert not stale.parent.exists() and not checkpoint.exists()
    assert running.exists()  # a copy still in progress keeps its file
