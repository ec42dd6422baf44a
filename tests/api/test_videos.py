"""Videos through the HTTP API (jobs run at once here; tests/integration/test_long_jobs.py runs them on a
real worker): the video object, its content with Range, cancel and delete, the list, isolation."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.extensions import db
from app.identity import tenants
from app.models import CreditHold, Generation, StoredFile
from tests.conftest import assert_error, key_headers

VIDU = "viduq2-turbo"  # DURATION_RESOLUTION: 12 credits a second at 720p


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme", credits=5000)


def video(client, created, prompt="a fox running", **extra):
    return client.post("/api/v1/videos/generations", headers=key_headers(created),
                       json={"model": VIDU, "prompt": prompt, "duration": 5, "resolution": "720p", **extra})


def test_a_video_is_generated_stored_with_a_thumbnail_and_charged_by_its_real_duration(client, acme):
    response = video(client, acme)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/videos/{body['id']}")
    shown = client.get(f"/api/v1/videos/{body['id']}", headers=key_headers(acme)).get_json()
    assert shown["object"] == "video" and shown["status"] == "completed" and shown["phase"] == "COMPLETED"
    assert shown["duration"] == 5.0 and shown["seconds"] == "5" and shown["size"] == "320x180"
    assert shown["credits_held"] == 60 and shown["credits_charged"] == 60 and shown["progress"] == 100
    assert shown["file_size"] > 1000 and shown["generation_seconds"] is not None
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (4940, 0)

    content = client.get(f"/api/v1/videos/{body['id']}/content", headers=key_headers(acme))
    assert content.status_code == 200 and content.mimetype == "video/mp4" and content.data[4:8] == b"ftyp"
    assert len(content.data) == shown["file_size"]
    part = client.get(f"/api/v1/videos/{body['id']}/content", headers={**key_headers(acme), "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == content.data[:100]
    thumbnail = client.get(f"/api/v1/videos/{body['id']}/content?variant=thumbnail", headers=key_headers(acme))
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg" and thumbnail.data[:3] == b"\xff\xd8\xff"
    used = tenants.find_tenant(acme.tenant.id).storage_used_bytes
    assert used == len(content.data) + len(thumbnail.data)
    assert ledger.verify() == []


def test_a_failed_video_releases_its_hold_and_charges_nothing(client, acme):
    body = video(client, acme, "a fox [sandbox:fail]").get_json()
    shown = client.get(f"/api/v1/videos/{body['id']}", headers=key_headers(acme)).get_json()
    assert shown["status"] == "failed" and shown["error"]["code"] == "upstream_error"
    assert shown["credits_charged"] == 0 and shown["video_url"] is None
    generation = db.session.get(Generation, uuid.UUID(body["id"]))
    assert db.session.get(CreditHold, generation.hold_id).status == "RELEASED"
    assert ledger.account(acme.tenant.id).balance == 5000 and ledger.verify() == []
    assert_error(client.get(f"/api/v1/videos/{body['id']}/content", headers=key_headers(acme)), 404)


def test_deleting_a_finished_video_removes_its_files_and_gives_the_bytes_back(app, client, acme):
    body = video(client, acme).get_json()
    assert tenants.find_tenant(acme.tenant.id).storage_used_bytes > 0
    deleted = client.delete(f"/api/v1/videos/{body['id']}", headers=key_headers(acme))
    assert deleted.status_code == 200 and deleted.get_json() == {"id": body["id"], "object": "video.deleted",
                                                                 "deleted": True}
    assert tenants.find_tenant(acme.tenant.id).storage_used_bytes == 0
    rows = db.session.scalars(sa.select(StoredFile).where(StoredFile.generation_id == uuid.UUID(body["id"]))).all()
    assert rows and all(row.status == "DELETED" for row in rows)
    assert_error(client.get(f"/api/v1/videos/{body['id']}", headers=key_headers(acme)), 404)
    assert ledger.account(acme.tenant.id).balance == 4940  # what it cost stays charged


def test_the_video_list_is_openais_page(client, acme):
    ids = [video(client, acme, f"fox {n}").get_json()["id"] for n in range(3)]
    first = client.get("/api/v1/videos?limit=2", headers=key_headers(acme)).get_json()
    assert [v["id"] for v in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    assert first["first_id"] == ids[2] and first["last_id"] == ids[1]
    rest = client.get(f"/api/v1/videos?limit=2&after={first['last_id']}", headers=key_headers(acme)).get_json()
    assert [v["id"] for v in rest["data"]] == [ids[0]] and rest["has_more"] is False
    ascending = client.get("/api/v1/videos?order=asc", headers=key_headers(acme)).get_json()
    assert [v["id"] for v in ascending["data"]] == ids


def test_another_tenants_video_is_404_everywhere(client, make, acme):
    body = video(client, acme).get_json()
    other = make.funded_tenant("Globex")
    for method, path in (("get", ""), ("get", "/content"), ("delete", "")):
        response = getattr(client, method)(f"/api/v1/videos/{body['id']}{path}", headers=key_headers(other))
        assert_error(response, 404)
    assert client.get("/api/v1/videos", headers=key_headers(other)).get_json()["data"] == []
    assert client.get(f"/api/v1/videos/{body['id']}", headers=key_headers(acme)).status_code == 200


def test_bad_video_requests_are_refused_and_hold_nothing(client, acme):
    assert_error(video(client, acme, duration="five"), 400)
    assert_error(client.post("/api/v1/videos/generations", headers=key_headers(acme),
                             json={"model": "doubao-seedream-4-0-250828", "prompt": "x"}), 400, "model_kind_mismatch")
    assert_error(client.post("/api/v1/videos", headers=key_headers(acme),
                             json={"prompt": "x", "size": "huge"}), 400)
    assert ledger.account(acme.tenant.id).held == 0 and db.session.scalar(
        sa.select(sa.func.count()).select_from(Generation)) == 0


@pytest.mark.parametrize("extra,param", [({"duration": 9}, "duration"), ({"resolution": "4k"}, "resolution")])
def test_a_duration_or_resolution_the_model_does_not_offer_is_refused_with_nothing_held(client, acme, extra, param):
    error = assert_error(video(client, acme, **extra), 400, f"invalid_{param}")
    assert error["param"] == param and VIDU in error["message"]
    assert ledger.account(acme.tenant.id).held == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0


def test_openai_seconds_are_checked_against_the_model_too(client, acme):
    response = client.post("/api/v1/videos", headers=key_headers(acme),
                           json={"model": "sora-2", "prompt": "a fox", "seconds": "8"})
    error = assert_error(response, 400, "invalid_duration")
    assert "10 s, 15 s" in error["message"]


@pytest.mark.parametrize("path,body,use", [
    ("/api/v1/videos/upscale", {"model": VIDU, "video_url": "https://cdn.example.com/a.mp4"},
     "/api/v1/videos/generations"),
    ("/api/v1/videos/generations", {"model": "video-upscale", "prompt": "x"}, "/api/v1/videos/upscale"),
    ("/api/v1/videos/commercial", {"model": VIDU, "prompt": "an ad"}, "/api/v1/videos/generations"),
])
def test_a_model_sent_to_another_endpoint_is_refused_naming_the_right_one(client, acme, path, body, use):
    error = assert_error(client.post(path, headers=key_headers(acme), json=body), 400, "model_endpoint_mismatch")
    assert error["param"] == "model" and use in error["message"]
    assert ledger.account(acme.tenant.id).held == 0
