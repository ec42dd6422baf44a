"""Videos and Midjourney on a real worker process (`flask worker`): answered 202, polled to the end,
settled by what was really made; a worker killed mid-video, and a video cancelled while it runs, each
end in exactly one state with nothing charged twice."""
from __future__ import annotations

import signal
import time
import uuid
import warnings

import pytest
import sqlalchemy as sa
from openai import OpenAI

from app.billing import ledger
from app.extensions import db
from app.generation import sweep
from app.models import CreditHold, Generation, LedgerEntry
from tests.conftest import key_headers
from tests.integration.conftest import wait_for

VIDU = "viduq2-turbo"  # 12 credits a second at 720p


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme", credits=5000)


def poll(client, created, path: str, seconds: float = 90) -> dict:
    def finished():
        body = client.get(path, headers=key_headers(created)).get_json()
        return body if body.get("status") in ("completed", "failed", "COMPLETED", "FAILED") else None
    return wait_for(finished, seconds=seconds, every=0.5)


def balance(created):
    db.session.rollback()
    return ledger.account(created.tenant.id)


def test_a_video_on_the_worker_polls_to_completed_and_downloads_whole_and_in_part(queued_app, worker, acme):
    client = queued_app.test_client()
    response = client.post("/api/v1/videos/generations", headers=key_headers(acme),
                           json={"model": VIDU, "prompt": "a fox", "duration": 4, "resolution": "720p"})
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    assert response.headers["openai-poll-after-ms"]
    worker.start()
    video = poll(client, acme, f"/api/v1/videos/{response.get_json()['id']}")
    assert video is not None and video["status"] == "completed", worker.output()[-3000:]
    assert video["duration"] == 4.0 and video["credits_charged"] == 48 and video["credits_held"] == 48
    whole = client.get(f"/api/v1/videos/{video['id']}/content", headers=key_headers(acme))
    part = client.get(f"/api/v1/videos/{video['id']}/content", headers={**key_headers(acme), "Range": "bytes=10-19"})
    assert whole.status_code == 200 and whole.data[4:8] == b"ftyp" and len(whole.data) == video["file_size"]
    assert part.status_code == 206 and part.data == whole.data[10:20]
    assert (balance(acme).balance, balance(acme).held) == (4952, 0) and ledger.verify() == []


def test_a_failing_video_on_the_worker_ends_failed_with_its_hold_released(queued_app, worker, acme):
    client = queued_app.test_client()
    body = client.post("/api/v1/videos/generations", headers=key_headers(acme),
                       json={"model": VIDU, "prompt": "a fox [sandbox:fail]", "duration": 4}).get_json()
    worker.start()
    video = poll(client, acme, f"/api/v1/videos/{body['id']}")
    assert video["status"] == "failed" and video["error"]["code"] == "upstream_error", worker.output()[-2000:]
    generation = db.session.get(Generation, uuid.UUID(body["id"]))
    assert db.session.get(CreditHold, generation.hold_id).status == "RELEASED"
    assert balance(acme).balance == 5000 and ledger.verify() == []


def test_the_openai_sdk_creates_polls_and_downloads_a_video(queued_live_server, worker, acme):
    worker.start()
    client = OpenAI(base_url=f"{queued_live_server}/api/v1", api_key=acme.api_key_plaintext, max_retries=0,
                    timeout=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # OpenAI marks its Sora API deprecated
        made = client.videos.create_and_poll(model="sora-2", prompt="a lighthouse at dusk", seconds="10",
                                             size="1280x720", poll_interval_ms=300)
        assert made.status == "completed" and made.object == "video", worker.output()[-2000:]
        assert made.seconds == "5" and made.size  # the clip the sandbox made is 5 s: within the 10 s tier
        content = client.videos.download_content(made.id)
        assert content.read()[4:8] == b"ftyp"
        listed = client.videos.list(limit=5)
        assert [video.id for video in listed.data] == [made.id]
        assert client.videos.delete(made.id).deleted is True
    assert balance(acme).balance == 5000 - 300 and ledger.verify() == []


def test_midjourney_on_the_worker_imagines_then_upscales_charged_by_each_rule(queued_app, worker, acme):
    client = queued_app.test_client()
    worker.start()
    task = client.post("/api/v1/midjourney/imagine", headers=key_headers(acme),
                       json={"prompt": "a lighthouse", "mode": "fast"}).get_json()
    task = poll(client, acme, f"/api/v1/midjourney/tasks/{task['id']}")
    assert task["status"] == "COMPLETED" and len(task["buttons"]) == 9, worker.output()[-2000:]
    button = next(b["custom_id"] for b in task["buttons"] if b["label"] == "U1")
    acted = client.post("/api/v1/midjourney/action", headers=key_headers(acme),
                        json={"generation_id": task["id"], "custom_id": button}).get_json()
    upscaled = poll(client, acme, f"/api/v1/midjourney/tasks/{acted['id']}")
    assert upscaled["status"] == "COMPLETED" and upscaled["credits_charged"] == 20
    assert balance(acme).balance == 5000 - 40 - 20 and ledger.verify() == []


@pytest.fixture
def short_leases(queued_app, worker):
    queued_app.config.update(GENERATION_LEASE_SECONDS=3)
    worker.env.update(GENERATION_LEASE_SECONDS="3", SANDBOX_TIMEOUT_CAP="20")


def test_a_worker_killed_mid_video_leaves_exactly_one_outcome_after_it_restarts(queued_app, worker, acme,
                                                                                short_leases):
    client = queued_app.test_client()
    body = client.post("/api/v1/videos/generations", headers=key_headers(acme),
                       json={"model": VIDU, "prompt": "a fox [sandbox:slow=20]", "duration": 4}).get_json()
    generation_id = uuid.UUID(body["id"])
    worker.start()

    def running():
        db.session.expire_all()
        return db.session.get(Generation, generation_id).status == "GENERATING"

    assert wait_for(running, seconds=30), worker.output()[-2000:]
    worker.kill()  # SIGKILL: no handler runs, the gateway call is left hanging
    time.sleep(4)  # its lease (3 s) lapses
    worker.start()  # the restarted worker's reconcile sweep finds it within the minute
    video = poll(client, acme, f"/api/v1/videos/{body['id']}", seconds=90)
    assert video["status"] == "failed" and video["error"]["code"] == "worker_lost", worker.output()[-2000:]
    assert (balance(acme).balance, balance(acme).held) == (5000, 0)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)
                             .where(LedgerEntry.type == "CONSUME")) == 0
    assert sweep.reconcile().failed == 0  # nothing left to end
    assert ledger.verify() == []


def test_cancelling_a_running_video_releases_its_hold_and_discards_what_arrives_later(queued_app, worker, acme,
                                                                                       short_leases):
    client = queued_app.test_client()
    body = client.post("/api/v1/videos/generations", headers=key_headers(acme),
                       json={"model": VIDU, "prompt": "a fox [sandbox:slow=5]", "duration": 4}).get_json()
    worker.start()
    assert wait_for(lambda: client.get(f"/api/v1/videos/{body['id']}", headers=key_headers(acme))
                    .get_json()["status"] == "in_progress", seconds=30)
    cancelled = client.delete(f"/api/v1/videos/{body['id']}", headers=key_headers(acme))
    assert cancelled.status_code == 200 and cancelled.get_json()["deleted"] is True
    assert (balance(acme).balance, balance(acme).held) == (5000, 0)
    time.sleep(7)  # the gateway answers; the worker loses its compare-and-set and throws the video away
    shown = client.get(f"/api/v1/videos/{body['id']}", headers=key_headers(acme)).get_json()
    assert shown["status"] == "failed" and shown["error"]["code"] == "cancelled"
    assert (balance(acme).balance, balance(acme).held) == (5000, 0) and ledger.verify() == []
    worker.stop(signal.SIGTERM)


def test_beyond_the_tenants_cap_on_long_jobs_a_video_is_429_and_holds_nothing(queued_app, acme):
    queued_app.config["MAX_ACTIVE_LONG_JOBS"] = 2
    client = queued_app.test_client()  # no worker: what is queued stays queued
    for _ in range(2):
        assert client.post("/api/v1/videos/generations", headers=key_headers(acme),
                           json={"model": VIDU, "prompt": "a fox", "duration": 4}).status_code == 202
    held = balance(acme).held
    refused = client.post("/api/v1/midjourney/imagine", headers=key_headers(acme), json={"prompt": "a fox"})
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "too_many_jobs"
    assert refused.headers["Retry-After"]
    assert balance(acme).held == held == 96
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)) == 2


def test_a_midjourney_task_past_its_deadline_that_succeeded_late_is_completed_and_charged(
        queued_app, worker, acme, tmp_path, runner):
    """The worker submitted the task and died; the gateway finished it meanwhile. The deadline sweep
    asks the gateway before failing it, and completes it: charged, not refunded."""
    import requests

    from tests.sandbox.conftest import LiveSandbox
    gateway = LiveSandbox(tmp_path, {"SANDBOX_SECRET": "live-secret"}, "--quiet")
    try:
        queued_app.config.update(WAULEAPI_URL=gateway.url, WAULEAPI_SECRET="live-secret")
        worker.env.update(WAULEAPI_URL=gateway.url, WAULEAPI_SECRET="live-secret", MIDJOURNEY_POLL_SECONDS="60")
        client = queued_app.test_client()
        task = client.post("/api/v1/midjourney/imagine", headers=key_headers(acme), json={"prompt": "a fox"}).get_json()
        worker.start()

        def submitted():
            db.session.expire_all()
            return db.session.get(Generation, uuid.UUID(task["id"])).upstream_task_id

        task_id = wait_for(submitted, seconds=30)
        assert task_id, worker.output()[-2000:]
        worker.kill()
        for _ in range(3):  # the gateway goes on without us: its task reaches SUCCESS
            requests.get(f"{gateway.url}/v1/midjourney/task/{task_id}", timeout=5,
                         headers={"Authorization": "Bearer live-secret"})
        db.session.execute(sa.update(Generation).where(Generation.id == uuid.UUID(task["id"]))
                           .values(deadline_at=sa.func.now()))
        db.session.commit()
        with queued_app.app_context():
            result = queued_app.test_cli_runner().invoke(args=["holds", "expire"])
        assert result.exit_code == 0, result.output
    finally:
        gateway.stop()
    shown = client.get(f"/api/v1/midjourney/tasks/{task['id']}", headers=key_headers(acme)).get_json()
    assert shown["status"] == "COMPLETED" and shown["credits_charged"] == 40 and len(shown["buttons"]) == 9
    assert balance(acme).balance == 4960 and balance(acme).held == 0 and ledger.verify() == []
