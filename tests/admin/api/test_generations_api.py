"""Cancel and retry in the JSON admin API (/admin/api/generations/{id}/cancel and /retry), driven as an
operator's script drives them: the same services as the Jobs page, answering in the API's envelope."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.extensions import db
from app.models import AiModel, Generation
from tests.admin.conftest import audit_entries
from tests.admin.test_jobs_admin import VIDU, current, finished_video, hold_of, queued_video, running_video
from tests.conftest import TEST_ACTOR, assert_error, key_headers


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme Studio", credits=1000)


@pytest.fixture
def headers(make):
    return make.admin_token_headers(make.platform_admin("ops"))


def test_cancel_fails_a_running_job_releases_its_hold_and_is_audited(client, headers, acme):
    running = running_video(acme)
    response = client.post(f"/admin/api/generations/{running}/cancel", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == str(running) and body["object"] == "generation" and body["tenant_id"] == str(acme.tenant.id)
    assert body["status"] == "FAILED" and body["error"]["code"] == "cancelled" and body["credits_charged"] == 0
    assert body["lease_until"] is None and body["completed_at"].endswith("Z")
    assert hold_of(current(running)).status == "RELEASED"
    assert ledger.account(acme.tenant.id).held == 0 and ledger.verify() == []
    [entry] = audit_entries(action="generation.cancel")
    assert entry.actor_type == "platform_admin" and entry.actor_name == "ops" and entry.target_id == str(running)

    assert_error(client.post(f"/admin/api/generations/{running}/cancel", headers=headers), 409,
                 "generation_not_active")
    assert len(audit_entries(action="generation.cancel")) == 1


def test_retry_answers_201_with_a_new_generation_linked_to_the_first(client, headers, acme):
    first = queued_video(acme)
    client.post(f"/admin/api/generations/{first}/cancel", headers=headers)
    response = client.post(f"/admin/api/generations/{first}/retry", headers=headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["parent_id"] == str(first) and body["id"] != str(first) and body["kind"] == "video"
    assert body["status"] == "COMPLETED" and body["credits_held"] == 60 and body["credits_charged"] == 60
    retried = current(body["id"])
    assert retried.hold_id != current(first).hold_id and hold_of(retried).status == "SETTLED"
    assert ledger.account(acme.tenant.id).balance == 940 and ledger.verify() == []
    assert [entry.target_id for entry in audit_entries(action="generation.retry")] == [body["id"]]

    assert_error(client.post(f"/admin/api/generations/{first}/retry", headers=headers), 409, "already_retried")


def test_retry_refusals_keep_their_status_and_hold_nothing(client, headers, acme):
    first = queued_video(acme)
    client.post(f"/admin/api/generations/{first}/cancel", headers=headers)
    billing.adjust(acme.tenant.id, -970, "spent elsewhere", TEST_ACTOR)
    assert_error(client.post(f"/admin/api/generations/{first}/retry", headers=headers), 402, "insufficient_credits")
    billing.recharge(acme.tenant.id, 1000, TEST_ACTOR)
    model = db.session.scalar(sa.select(AiModel).where(AiModel.model_id == VIDU))
    catalog.update_model(model.id, TEST_ACTOR, is_active=False)
    assert_error(client.post(f"/admin/api/generations/{first}/retry", headers=headers), 403, "model_not_enabled")
    catalog.update_model(model.id, TEST_ACTOR, is_active=True)

    completed = finished_video(client, acme)["id"]
    assert_error(client.post(f"/admin/api/generations/{completed}/retry", headers=headers), 409,
                 "generation_not_retryable")
    assert_error(client.post(f"/admin/api/generations/{completed}/cancel", headers=headers), 409,
                 "generation_not_active")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)
                             .where(Generation.parent_id.is_not(None))) == 0
    assert ledger.account(acme.tenant.id).held == 0 and ledger.verify() == []


def test_unknown_ids_are_404_and_only_an_admin_token_gets_in(client, headers, acme):
    running = running_video(acme)
    for action in ("cancel", "retry"):
        assert_error(client.post(f"/admin/api/generations/{uuid.uuid4()}/{action}", headers=headers), 404,
                     "generation_not_found")
        assert_error(client.post(f"/admin/api/generations/not-an-id/{action}", headers=headers), 404)
        assert_error(client.post(f"/admin/api/generations/{running}/{action}"), 401)
        assert_error(client.post(f"/admin/api/generations/{running}/{action}", headers=key_headers(acme)), 401)
    assert current(running).status == "GENERATING"


def test_both_actions_are_in_the_admin_openapi_document(client, headers):
    paths = client.get("/admin/api/openapi.json", headers=headers).get_json()["paths"]
    cancel = paths["/admin/api/generations/{generation_id}/cancel"]["post"]
    retry = paths["/admin/api/generations/{generation_id}/retry"]["post"]
    assert cancel["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("AdminGenerationOut")
    assert {"401", "404", "409"} <= set(cancel["responses"])
    assert set(retry["responses"]) >= {"201", "402", "403", "404", "409", "429"}
    assert retry["security"] == [{"AdminToken": []}]
