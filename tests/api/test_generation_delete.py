"""DELETE /api/v1/generations/{id}: a finished generation's files are removed and their bytes leave the
meter; it is gone from the list and from GET; another tenant's (or member's) generation is 404."""
from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa

from app.billing import ledger
from app.extensions import db
from app.identity import tenants
from app.models import StoredFile
from tests.conftest import assert_error, key_headers

IMAGE_MODEL = "doubao-seedream-4-0-250828"


def image(client, headers, n: int = 1) -> dict:
    response = client.post("/api/v1/images/generations", headers=headers,
                           json={"model": IMAGE_MODEL, "prompt": "a fox", "n": n})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_deleting_a_generation_removes_its_files_and_gives_the_bytes_back(app, client, make):
    created = make.funded_tenant()
    kept, gone = image(client, key_headers(created)), image(client, key_headers(created), n=2)
    paths = [Path(app.config["STORAGE_DIR"]) / key for key in db.session.scalars(
        sa.select(StoredFile.storage_key).where(StoredFile.generation_id == uuid.UUID(gone["generation_id"])))]
    assert len(paths) == 2 and all(path.exists() for path in paths)
    before = tenants.find_tenant(created.tenant.id).storage_used_bytes
    balance = ledger.account(created.tenant.id).balance

    deleted = client.delete(f"/api/v1/generations/{gone['generation_id']}", headers=key_headers(created))
    assert deleted.status_code == 200
    assert deleted.get_json() == {"id": gone["generation_id"], "object": "generation.deleted", "deleted": True}
    assert not any(path.exists() for path in paths)
    kept_bytes = db.session.scalar(sa.select(sa.func.sum(StoredFile.size_bytes)).where(
        StoredFile.generation_id == uuid.UUID(kept["generation_id"])))
    assert tenants.find_tenant(created.tenant.id).storage_used_bytes == kept_bytes < before
    assert ledger.account(created.tenant.id).balance == balance  # what it cost stays charged
    assert_error(client.get(f"/api/v1/generations/{gone['generation_id']}", headers=key_headers(created)), 404)
    listed = client.get("/api/v1/generations", headers=key_headers(created)).get_json()["data"]
    assert [g["id"] for g in listed] == [kept["generation_id"]]
    assert_error(client.delete(f"/api/v1/generations/{gone['generation_id']}", headers=key_headers(created)), 404)


def test_another_tenants_or_members_generation_is_404_and_stays(app, client, make):
    owner, other = make.funded_tenant(), make.funded_tenant()
    alice, bob = make.user(owner, "alice"), make.user(owner, "bob")
    made = image(client, make.auth(owner, alice))
    for headers in (key_headers(other), make.auth(owner, bob, device_id="device-2")):
        assert_error(client.delete(f"/api/v1/generations/{made['generation_id']}", headers=headers), 404,
                     "generation_not_found")
    assert_error(client.delete("/api/v1/generations/not-an-id", headers=key_headers(owner)), 404)
    assert client.get(f"/api/v1/generations/{made['generation_id']}", headers=key_headers(owner)).status_code == 200
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile)
                             .where(StoredFile.status == "STORED")) == 1
