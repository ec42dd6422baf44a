"""One model as OpenAI's `models.retrieve` asks for it, and the creation time every model carries."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.catalog import service as catalog
from app.catalog.models import AiModel
from app.extensions import db
from app.identity import tenants
from tests.conftest import TEST_ACTOR, assert_error, key_headers

IMAGE = "doubao-seedream-4-0-250828"
CHAT = "gemini-2.5-pro"


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def _created(model_id: str) -> int:
    row = db.session.query(AiModel).filter_by(model_id=model_id).one()
    return int(row.created_at.timestamp())


def test_every_listed_model_has_its_creation_time_in_unix_seconds(client, acme):
    models = client.get("/api/v1/models", headers=key_headers(acme)).get_json()["data"]
    assert models
    now = datetime.now(timezone.utc).timestamp()
    for model in models:
        assert isinstance(model["created"], int) and not isinstance(model["created"], bool), model["id"]
        assert now - 3600 < model["created"] <= now + 1
    assert {m["id"]: m["created"] for m in models}[IMAGE] == _created(IMAGE)


def test_a_model_is_retrieved_in_the_shape_the_list_gives_it(client, acme, make):
    listed = {m["id"]: m for m in client.get("/api/v1/models", headers=key_headers(acme)).get_json()["data"]}
    for headers in (key_headers(acme), make.auth(acme, make.user(acme, "mia"))):
        response = client.get(f"/api/v1/models/{IMAGE}", headers=headers)
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == listed[IMAGE]
    dotted = client.get("/api/v1/models/veo3.1", headers=key_headers(acme))  # ids may carry dots
    assert dotted.status_code == 200 and dotted.get_json()["id"] == "veo3.1"


def test_a_model_the_tenant_cannot_use_is_not_found_like_an_unknown_one(client, acme):
    assert_error(client.get("/api/v1/models/no-such-model", headers=key_headers(acme)), 404, "model_not_found")
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"enabled_models": [CHAT]})
    error = assert_error(client.get(f"/api/v1/models/{IMAGE}", headers=key_headers(acme)), 404, "model_not_found")
    assert error["param"] == "model"
    assert client.get(f"/api/v1/models/{CHAT}", headers=key_headers(acme)).status_code == 200
    model_uuid = db.session.query(AiModel.id).filter_by(model_id=CHAT).scalar()
    catalog.update_model(model_uuid, TEST_ACTOR, is_active=False)
    assert_error(client.get(f"/api/v1/models/{CHAT}", headers=key_headers(acme)), 404, "model_not_found")


def test_retrieving_a_model_needs_credentials(client, acme):
    assert_error(client.get(f"/api/v1/models/{IMAGE}"), 401, "missing_credentials")


def test_the_admin_api_lists_the_creation_time_too(client, acme, make):
    models = client.get("/admin/api/models", headers=make.admin_token_headers()).get_json()["data"]
    assert {m["id"]: m["created"] for m in models}[IMAGE] == _created(IMAGE)
