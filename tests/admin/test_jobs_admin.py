"""The worker's jobs in the dashboard: running rows of the generations list polling themselves, a
video's player and a Midjourney task's buttons on the detail page, and the Jobs page with its queues,
running, stuck and failed jobs, cancel and retry.

Jobs run where they are enqueued here (JOBS_QUEUE=immediate), so a video sent through the API is
finished by the time it answers. What a worker has in hand is written by the real `flow.start`: a
queued video is one accepted and not yet taken (as a lost job leaves it); a running one is also
claimed under a lease, the one column a worker writes that is set by hand. Time passing is faked by
moving timestamps, as tests/integration/test_sweep.py does."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.extensions import db
from app.generation import flow
from app.models import AiModel, CreditHold, Generation, utcnow
from tests.admin.conftest import Dashboard, audit_entries, text_of
from tests.conftest import PASSWORD, TEST_ACTOR, assert_error, key_headers

VIDU = "viduq2-turbo"  # DURATION_RESOLUTION: 12 credits a second at 720p, so 60 for 5 s
IMAGE = "doubao-seedream-4-0-250828"
VIDEO = {"model": VIDU, "prompt": "a fox running", "duration": 5, "resolution": "720p"}


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme Studio", credits=1000)


def caller(created) -> flow.Caller:
    return flow.Caller(created.tenant, None, created.api_key.id, False, TEST_ACTOR)


def queued_video(created, **params) -> uuid.UUID:
    """A video accepted (credits held) and waiting for a worker."""
    return flow.start(caller(created), "video", {**VIDEO, **params}).generation.id


def running_video(created, *, lease: timedelta = timedelta(seconds=60)) -> uuid.UUID:
    """A video a worker has claimed: GENERATING, its lease `lease` from now (in the past: the worker died)."""
    generation_id = flow.start(caller(created), "video", dict(VIDEO), generating=True).generation.id
    db.session.execute(sa.update(Generation.__table__).where(Generation.__table__.c.id == generation_id)
                       .values(lease_until=utcnow() + lease))
    db.session.commit()
    return generation_id


def finished_video(client, created, prompt="a fox running") -> dict:
    """A video sent through the API; its job has run by the time this answers. The video object, as GET shows it."""
    response = client.post("/api/v1/videos/generations", headers=key_headers(created), json={**VIDEO, "prompt": prompt})
    assert response.status_code == 202, response.get_json()
    return client.get(f"/api/v1/videos/{response.get_json()['id']}", headers=key_headers(created)).get_json()


def current(generation_id) -> Generation:
    return db.session.get(Generation, uuid.UUID(str(generation_id)), populate_existing=True)


def hold_of(generation: Generation) -> CreditHold:
    return db.session.get(CreditHold, generation.hold_id, populate_existing=True)


def row_of(page: str, generation_id) -> str:
    found = re.search(rf'<tr data-generation="{generation_id}"[^>]*>', page)
    assert found, f"no row for {generation_id}"
    return found.group(0)


def job_rows(page: str) -> dict[str, str]:
    """{generation id: the list it is shown in} on the Jobs page."""
    return dict(re.findall(r'<tr data-job="([^"]+)" data-list="(\w+)">', page))


def counts(page: str) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(r'data-count="(\w+)">(\d+)<', page)}


def test_a_running_row_polls_itself_with_progress_and_stops_once_it_is_final(client, dashboard, acme):
    done = finished_video(client, acme)["id"]
    waiting = queued_video(acme)

    page = text_of(dashboard.get("/admin/generations"))
    running_row = row_of(page, waiting)
    assert f'hx-get="/admin/generations/{waiting}/row"' in running_row and 'hx-trigger="every 2s"' in running_row
    assert 'hx-swap="outerHTML"' in running_row
    assert "hx-trigger" not in row_of(page, done) and 'data-status="COMPLETED"' in row_of(page, done)
    assert page.count("<progress") == 1  # only the running video shows how far it has come

    polled = dashboard.get(f"/admin/generations/{waiting}/row", htmx=True)
    assert polled.status_code == 200 and "HX-Request" in polled.headers["Vary"]
    assert text_of(polled).lstrip().startswith("<tr") and "<html" not in text_of(polled)
    assert 'hx-trigger="every 2s"' in row_of(text_of(polled), waiting) and 'data-status="PENDING"' in text_of(polled)

    # The tenant cancels it through the API; the next poll gets the final row, which polls no more.
    assert client.delete(f"/api/v1/videos/{waiting}", headers=key_headers(acme)).status_code == 200
    final = text_of(dashboard.get(f"/admin/generations/{waiting}/row", htmx=True))
    assert 'data-status="FAILED"' in final and "hx-trigger" not in final and "hx-get" not in final
    assert "cancelled" in final and "<progress" not in final

    plain = dashboard.get(f"/admin/generations/{waiting}/row")
    assert plain.status_code == 302 and plain.headers["Location"].endswith(f"/admin/generations/{waiting}")
    assert dashboard.get(f"/admin/generations/{uuid.uuid4()}/row", htmx=True).status_code == 404


def test_a_video_plays_from_the_dashboard_with_range_requests_and_shows_its_thumbnail(app, client, dashboard, acme):
    video = finished_video(client, acme)
    page = text_of(dashboard.get(f"/admin/generations/{video['id']}"))
    content = f"/admin/generations/{video['id']}/content"
    player = re.search(r"<video [^>]*>", page).group(0)
    assert f'src="{content}"' in player and f'poster="{content}?variant=thumbnail"' in player
    assert re.search(rf'<img src="{re.escape(content)}\?variant=thumbnail"[^>]*data-preview="thumbnail"', page)

    browser = dashboard.client  # bytes, not a page: no CSRF token to pick up
    whole = browser.get(content)
    assert whole.status_code == 200 and whole.mimetype == "video/mp4" and whole.data[4:8] == b"ftyp"
    assert len(whole.data) == video["file_size"] and whole.headers["Accept-Ranges"] == "bytes"
    part = browser.get(content, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == whole.data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.data)}"
    thumbnail = browser.get(f"{content}?variant=thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg" and thumbnail.data[:3] == b"\xff\xd8\xff"

    assert dashboard.get(f"/admin/generations/{uuid.uuid4()}/content").status_code == 404
    failed = finished_video(client, acme, "a fox [sandbox:fail]")["id"]
    assert dashboard.get(f"/admin/generations/{failed}/content").status_code == 404
    signed_out = app.test_client().get(content)  # the dashboard's session is the only way in
    assert signed_out.status_code == 302 and "/admin/login" in signed_out.headers["Location"]


def test_a_midjourney_task_shows_its_image_buttons_and_the_actions_taken_on_it(client, dashboard, acme):
    imagined = client.post("/api/v1/midjourney/imagine", headers=key_headers(acme), json={"prompt": "a lighthouse"})
    task = client.get(f"/api/v1/midjourney/tasks/{imagined.get_json()['id']}", headers=key_headers(acme)).get_json()
    upscale = next(button["custom_id"] for button in task["buttons"] if button["label"] == "U2")
    acted = client.post("/api/v1/midjourney/action", headers=key_headers(acme),
                        json={"generation_id": task["id"], "custom_id": upscale}).get_json()

    page = text_of(dashboard.get(f"/admin/generations/{task['id']}"))
    assert re.search(r'<img src="/files/[^"]+"[^>]*data-preview="image"', page)
    labels = [label.split()[-1] for label in re.findall(r"data-button>([^<]+)<", page)]
    assert labels[:4] == ["U1", "U2", "U3", "U4"] and "V1" in labels
    assert "<form" not in page.split('id="generation-buttons"')[1].split("</section>")[0]  # labels, not actions
    assert f'data-child="{acted["id"]}"' in page and "upscale" in page and "Actions taken on it" in page

    child = text_of(dashboard.get(f"/admin/generations/{acted['id']}"))
    assert "Acts on" in child and f'href="/admin/generations/{task["id"]}" data-parent' in child


def test_the_jobs_page_shows_queued_running_stuck_and_the_days_failures_by_code(client, dashboard, acme, make, app):
    globex = make.funded_tenant("Globex", credits=1000)
    queued = queued_video(acme)
    running = running_video(globex)
    died = running_video(acme, lease=timedelta(seconds=-90))  # its worker stopped renewing the lease
    lost = queued_video(globex, prompt="a lost job")
    waited = timedelta(seconds=app.config["RECONCILE_PENDING_SECONDS"] + 30)
    db.session.execute(sa.update(Generation.__table__).where(Generation.__table__.c.id == lost)
                       .values(created_at=utcnow() - waited))
    db.session.commit()
    broken = [finished_video(client, acme, f"a fox {n} [sandbox:fail]")["id"] for n in range(2)]
    cancelled = queued_video(globex)
    client.delete(f"/api/v1/videos/{cancelled}", headers=key_headers(globex))
    finished_video(client, acme)  # completed: on no list
    client.post("/api/v1/images/generations", headers=key_headers(acme),
                json={"model": IMAGE, "prompt": "x [sandbox:fail]"})  # not a worker's job

    response = dashboard.get("/admin/jobs")
    assert response.status_code == 200
    page = text_of(response)
    assert 'aria-current="page">Jobs' in page
    assert job_rows(page) == {str(queued): "queued", str(running): "running", str(died): "stuck", str(lost): "stuck",
                              broken[0]: "failed", broken[1]: "failed", str(cancelled): "failed"}
    assert counts(page) == {"running": 1, "queued": 1, "stuck": 2, "failed": 3}
    assert re.findall(r'data-failures="(\w+)">(\d+)<', page) == [("upstream_error", "2"), ("cancelled", "1")]
    assert re.search(r'data-queue="long">0<', page) and re.search(r'data-queue="short">0<', page)
    stuck_why = re.findall(r'<td data-why>([^<]+)</td>', page)
    assert sorted(why.split()[0] for why in stuck_why) == ["lease", "queued"]
    assert "Globex" in page and "Acme Studio" in page

    fragment = dashboard.get("/admin/jobs", htmx=True)
    assert text_of(fragment).lstrip().startswith('<div id="jobs">') and "<html" not in text_of(fragment)


def test_the_queues_show_how_many_jobs_wait_for_a_worker(queued_dashboard, acme):
    client = queued_dashboard.client
    for _ in range(2):
        assert client.post("/api/v1/videos/generations", headers=key_headers(acme), json=VIDEO).status_code == 202
    page = text_of(queued_dashboard.get("/admin/jobs"))
    assert re.search(r'data-queue="long">2<', page) and re.search(r'data-queue="short">0<', page)
    assert counts(page)["queued"] == 2


def test_cancel_releases_the_hold_charges_nothing_and_is_audited(dashboard, acme, root):
    running = running_video(acme)
    assert ledger.account(acme.tenant.id).held == 60

    response = dashboard.post(f"/admin/jobs/{running}/cancel")
    assert response.status_code == 200
    page = text_of(response)
    assert page.lstrip().startswith('<div id="jobs">') and "its hold is released and nothing is charged" in page
    assert job_rows(page) == {str(running): "failed"}
    generation = current(running)
    assert generation.status == "FAILED" and generation.error_code == "cancelled" and generation.credits_charged == 0
    assert "platform admin" in generation.error_message and generation.lease_until is None
    assert hold_of(generation).status == "RELEASED"
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (1000, 0) and ledger.verify() == []
    [entry] = audit_entries(action="generation.cancel")
    assert entry.actor_name == "root" and entry.target_id == str(running) and entry.tenant_id == acme.tenant.id
    assert entry.changes == {"status": ["GENERATING", "FAILED"], "credits_released": 60}

    again = dashboard.post(f"/admin/jobs/{running}/cancel")
    assert again.status_code == 409 and "Not cancelled: This generation is already failed" in text_of(again)
    assert len(audit_entries(action="generation.cancel")) == 1 and ledger.verify() == []
    assert dashboard.post(f"/admin/jobs/{uuid.uuid4()}/cancel").status_code == 404
    assert dashboard.post(f"/admin/jobs/{running}/cancel", csrf=False).status_code == 400


def test_cancel_from_the_detail_page_comes_back_to_it(dashboard, acme):
    waiting = queued_video(acme)
    page = text_of(dashboard.get(f"/admin/generations/{waiting}"))
    assert f'action="/admin/jobs/{waiting}/cancel"' in page and "Retry</button>" not in page
    response = dashboard.post(f"/admin/jobs/{waiting}/cancel", {"next": f"/admin/generations/{waiting}"}, htmx=False)
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/generations/{waiting}"
    after = text_of(dashboard.get(f"/admin/generations/{waiting}"))
    assert "Cancelled by a platform admin" in after and "hold released" in after
    assert "/cancel" not in after and f'action="/admin/jobs/{waiting}/retry"' in after


def test_retry_starts_a_linked_generation_with_its_own_hold(dashboard, acme, root):
    first = queued_video(acme)
    dashboard.post(f"/admin/jobs/{first}/cancel")

    response = dashboard.post(f"/admin/jobs/{first}/retry")
    assert response.status_code == 200
    retried_id = re.search(r'data-retried="([^"]+)"', text_of(response)).group(1)
    retried, original = current(retried_id), current(first)
    assert retried.parent_id == original.id and retried.params == original.params and retried.kind == "video"
    assert retried.status == "COMPLETED" and retried.credits_charged == 60  # the job ran where it was enqueued
    assert retried.hold_id != original.hold_id and hold_of(retried).status == "SETTLED"
    assert hold_of(original).status == "RELEASED"
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (940, 0) and ledger.verify() == []
    [entry] = audit_entries(action="generation.retry")
    assert entry.actor_name == "root" and entry.target_id == retried_id and entry.tenant_id == acme.tenant.id
    assert entry.changes == {"retry_of": str(first), "credits_held": 60}

    page = text_of(response)
    assert re.search(rf'href="/admin/generations/{retried_id}" data-retry>', page)  # no second Retry button
    assert f"/admin/jobs/{first}/retry" not in page
    again = dashboard.post(f"/admin/jobs/{first}/retry")
    assert again.status_code == 409 and f"already been retried as {retried_id} (completed)" in text_of(again)

    detail = text_of(dashboard.get(f"/admin/generations/{retried_id}"))
    assert "Retry of" in detail and f'href="/admin/generations/{first}" data-parent' in detail
    assert f'data-child="{retried_id}"' in text_of(dashboard.get(f"/admin/generations/{first}"))


def test_a_retry_is_refused_clearly_when_the_tenant_cannot_pay_or_the_model_is_off(client, dashboard, acme):
    first = queued_video(acme)
    dashboard.post(f"/admin/jobs/{first}/cancel")
    billing.adjust(acme.tenant.id, -970, "spent elsewhere", TEST_ACTOR)

    broke = dashboard.post(f"/admin/jobs/{first}/retry")
    assert broke.status_code == 409 and "Not retried: Not enough credits: this needs 60." in text_of(broke)
    billing.recharge(acme.tenant.id, 1000, TEST_ACTOR)
    model = db.session.scalar(sa.select(AiModel).where(AiModel.model_id == VIDU))
    catalog.update_model(model.id, TEST_ACTOR, is_active=False)
    off = dashboard.post(f"/admin/jobs/{first}/retry")
    assert off.status_code == 409 and f"Not retried: The model &#39;{VIDU}&#39; is not enabled" in text_of(off)

    image = client.post("/api/v1/images/generations", headers=key_headers(acme),
                        json={"model": IMAGE, "prompt": "x [sandbox:fail]"})
    image_id = db.session.scalar(sa.select(Generation.id).where(Generation.kind == "image"))
    assert image.status_code == 502
    not_long = dashboard.post(f"/admin/jobs/{image_id}/retry")
    assert not_long.status_code == 409 and "Only videos and Midjourney tasks" in text_of(not_long)
    catalog.update_model(model.id, TEST_ACTOR, is_active=True)
    completed = finished_video(client, acme)["id"]
    assert "this one is completed" in text_of(dashboard.post(f"/admin/jobs/{completed}/retry"))

    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)
                             .where(Generation.parent_id.is_not(None))) == 0
    assert ledger.account(acme.tenant.id).held == 0 and ledger.verify() == []
    assert audit_entries(action="generation.retry") == []


def test_tenant_admins_never_reach_these_screens_and_another_tenants_job_is_404_to_them(client, make, acme):
    globex = make.funded_tenant("Globex")
    boss = make.user(acme, "acme-boss", role="admin")
    theirs = running_video(globex)
    token = make.auth(acme, boss)

    # Where a tenant admin works, their own tenant's API, Globex's job does not exist.
    assert_error(client.get(f"/api/v1/generations/{theirs}", headers=token), 404)
    assert_error(client.delete(f"/api/v1/videos/{theirs}", headers=token), 404)
    assert_error(client.get(f"/api/v1/videos/{theirs}/content", headers=token), 404)
    # The dashboard and the admin API are for platform admins only.
    assert_error(client.post(f"/admin/api/generations/{theirs}/cancel", headers=token), 401)
    assert_error(client.post(f"/admin/api/generations/{theirs}/retry", headers=token), 401)
    for path in ("/admin/jobs", f"/admin/generations/{theirs}", f"/admin/generations/{theirs}/content"):
        response = client.get(path, headers=token)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert Dashboard(client).sign_in("acme-boss", PASSWORD).status_code == 401
    assert client.get("/admin/jobs").status_code == 302

    assert current(theirs).status == "GENERATING" and ledger.account(globex.tenant.id).held == 60
