"""Gateways in the dashboard: add and edit with field errors, a secret that never comes back out,
test connection against the in-process sandbox and a closed port, (de)activation, health counters
from real traffic, and a model's gateway."""
from __future__ import annotations

import json
import re
import uuid

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.catalog import service as catalog
from app.core.crypto import decrypt
from app.extensions import db
from app.gateway.client import SECRET_CONTEXT
from app.models import AiModel, Gateway, Generation
from tests.admin.conftest import audit_entries, text_of
from tests.admin.test_generations_admin import IMAGE, generate_image
from tests.conftest import TEST_ACTOR

SANDBOX_SECRET = "test-gateway-secret"  # what the in-process sandbox expects (tests/conftest.py)
OTHER_SECRET = "s3cret-never-shown-7f3a"


def gateway_form(**overrides) -> dict:
    return {"name": "sandbox", "base_url": "http://sandbox.local", "secret": SANDBOX_SECRET, "path_prefix": "/v1",
            "priority": "10", "weight": "1", "is_active": "on", **overrides}


def add_gateway(dashboard, **overrides) -> Gateway:
    response = dashboard.post("/admin/gateways", gateway_form(**overrides))
    assert response.status_code == 200, text_of(response)[:500]
    return db.session.scalar(sa.select(Gateway).where(Gateway.name == gateway_form(**overrides)["name"]))


def all_gateways() -> list[Gateway]:
    return list(db.session.scalars(sa.select(Gateway)))


def assert_no_secret(*texts):
    for secret in (SANDBOX_SECRET, OTHER_SECRET):
        for text in texts:
            assert secret not in text


def test_add_a_gateway_and_its_secret_is_stored_encrypted_and_never_shown(dashboard):
    page = dashboard.get("/admin/gateways")
    assert page.status_code == 200 and "No gateways yet" in text_of(page)
    response = dashboard.post("/admin/gateways", gateway_form(secret=OTHER_SECRET, name="overseas-1"))
    assert response.status_code == 200
    assert "Added gateway overseas-1." in text_of(response)
    row = db.session.scalar(sa.select(Gateway))
    assert (row.name, row.base_url, row.path_prefix, row.priority, row.is_active) == (
        "overseas-1", "http://sandbox.local", "/v1", 10, True)
    assert OTHER_SECRET.encode() not in row.secret_encrypted
    assert decrypt(row.secret_encrypted, context=SECRET_CONTEXT) == OTHER_SECRET
    listing, edit = dashboard.get("/admin/gateways"), dashboard.get(f"/admin/gateways/{row.id}")
    assert "••••" in text_of(listing) and "•••• stored." in text_of(edit)
    entries = audit_entries(action="gateway.create")
    assert len(entries) == 1 and entries[0].changes["base_url"] == "http://sandbox.local"
    assert_no_secret(text_of(response), text_of(listing), text_of(edit),
                     json.dumps([e.changes for e in audit_entries()]))


@pytest.mark.parametrize("field,value,message", [
    ("base_url", "ftp://files.example.com", "Base URL must be an http:// or https:// address"),
    ("base_url", "not a url", "Base URL must be an http:// or https:// address"),
    ("base_url", "https://user:pw@api.example.com", "Base URL must be an http:// or https:// address"),
    ("name", "", "Name must not be empty."),
    ("secret", "", "Secret must not be empty."),
    ("priority", "high", "Priority must be a whole number."),
    ("weight", "0", "Weight must be a whole number from 1 to 1000."),
    ("path_prefix", "v1", "Path prefix must start with /"),
    ("files_origin", "https://files.example.com/results", "Files origin must be an origin only"),
])
def test_a_bad_field_comes_back_beside_that_field_and_the_secret_is_not_echoed(dashboard, field, value, message):
    response = dashboard.post("/admin/gateways", gateway_form(**{field: value, "secret": OTHER_SECRET}
                                                              if field != "secret" else {field: value}))
    assert response.status_code == 400
    error = re.search(rf'<small class="field-error" id="gateway-{field}-error">([^<]+)</small>', text_of(response))
    assert error and error.group(1).replace("&#39;", "'").startswith(message), text_of(response)[:2000]
    assert all_gateways() == []
    assert_no_secret(text_of(response))
    if field != "name":
        assert 'value="sandbox"' in text_of(response)  # what was typed stays


def test_a_duplicate_name_is_refused_beside_the_name(dashboard):
    add_gateway(dashboard)
    response = dashboard.post("/admin/gateways", gateway_form(name="SANDBOX"))
    assert response.status_code == 409
    assert 'id="gateway-name-error">A gateway named' in text_of(response)
    assert len(all_gateways()) == 1


def test_every_form_needs_the_csrf_token(dashboard):
    assert dashboard.post("/admin/gateways", gateway_form(), csrf=False).status_code == 400
    assert all_gateways() == []
    row = add_gateway(dashboard)
    for path in (f"/admin/gateways/{row.id}", f"/admin/gateways/{row.id}/test", f"/admin/gateways/{row.id}/active"):
        assert dashboard.post(path, gateway_form(name="renamed"), csrf=False).status_code == 400
    db.session.refresh(row)
    assert row.name == "sandbox" and row.is_active


def test_test_connection_reaches_the_sandbox_health_endpoint(dashboard):
    row = add_gateway(dashboard)
    response = dashboard.post(f"/admin/gateways/{row.id}/test")
    assert response.status_code == 200
    assert 'data-test="ok"' in text_of(response) and "/health answered “ok”" in text_of(response)
    assert "<html" not in text_of(response)  # just the inline result for htmx
    entry = audit_entries(action="gateway.test")[0]
    assert entry.changes == {"name": "sandbox", "ok": True, "detail": "ok"}


def test_test_connection_to_a_closed_port_shows_unreachable(dashboard):
    row = add_gateway(dashboard, name="dead", base_url="http://127.0.0.1:1")
    response = dashboard.post(f"/admin/gateways/{row.id}/test")
    assert response.status_code == 200
    assert 'data-test="failed"' in text_of(response) and "unreachable: ConnectionError" in text_of(response)
    # Without htmx the same button answers the whole page, the result beside its gateway.
    page = dashboard.post(f"/admin/gateways/{row.id}/test", htmx=False)
    assert page.status_code == 200 and "<html" in text_of(page) and "unreachable" in text_of(page)


def test_edit_keeps_the_secret_when_left_empty_and_replaces_it_when_typed(dashboard):
    row = add_gateway(dashboard)
    response = dashboard.post(f"/admin/gateways/{row.id}", gateway_form(name="sandbox-eu", secret="", priority="5"))
    assert response.status_code == 200 and "Saved." in text_of(response)
    db.session.refresh(row)
    assert (row.name, row.priority) == ("sandbox-eu", 5)
    assert decrypt(row.secret_encrypted, context=SECRET_CONTEXT) == SANDBOX_SECRET

    response = dashboard.post(f"/admin/gateways/{row.id}", gateway_form(name="sandbox-eu", secret=OTHER_SECRET, priority="5"))
    assert "the new secret is stored" in text_of(response)
    db.session.refresh(row)
    assert decrypt(row.secret_encrypted, context=SECRET_CONTEXT) == OTHER_SECRET
    updates = [e.changes for e in audit_entries(action="gateway.update")]
    assert updates[0]["priority"] == [10, 5] and updates[1] == {"name": "sandbox-eu", "secret": "replaced"}
    assert_no_secret(text_of(response), json.dumps(updates))

    bad = dashboard.post(f"/admin/gateways/{row.id}", gateway_form(base_url="gopher://x", secret=OTHER_SECRET))
    assert bad.status_code == 400 and 'id="gateway-edit-base_url-error"' in text_of(bad)
    assert_no_secret(text_of(bad))


def test_a_files_origin_is_added_shown_edited_and_cleared(dashboard):
    row = add_gateway(dashboard, files_origin="https://Files.Example.com:8443/")
    assert row.files_origin == "https://files.example.com:8443"
    listing = text_of(dashboard.get("/admin/gateways"))
    assert re.search(r"data-files-origin[^>]*>files: https://files.example.com:8443<", listing)
    edit = text_of(dashboard.get(f"/admin/gateways/{row.id}"))
    assert 'name="files_origin" value="https://files.example.com:8443"' in edit

    bad = dashboard.post(f"/admin/gateways/{row.id}", gateway_form(files_origin="https://u:p@files.example.com"))
    assert bad.status_code == 400 and 'id="gateway-edit-files_origin-error">Files origin must be' in text_of(bad)
    db.session.refresh(row)
    assert row.files_origin == "https://files.example.com:8443"

    assert dashboard.post(f"/admin/gateways/{row.id}", gateway_form(files_origin="")).status_code == 200
    db.session.refresh(row)
    assert row.files_origin is None
    assert "data-files-origin" not in text_of(dashboard.get("/admin/gateways"))
    changes = [e.changes for e in audit_entries(action="gateway.update")]
    assert changes[-1]["files_origin"] == ["https://files.example.com:8443", None]
    assert audit_entries(action="gateway.create")[0].changes["files_origin"] == "https://files.example.com:8443"


def test_deactivate_and_activate(dashboard):
    row = add_gateway(dashboard)
    response = dashboard.post(f"/admin/gateways/{row.id}/active", {"active": "0"})
    assert "sandbox is deactivated" in text_of(response)
    db.session.refresh(row)
    assert not row.is_active
    dashboard.post(f"/admin/gateways/{row.id}/active", {"active": "1"})
    db.session.refresh(row)
    assert row.is_active


def test_health_counters_and_a_models_gateway_come_from_real_traffic(client, dashboard, make):
    catalog.seed_catalog(TEST_ACTOR)
    acme = make.tenant("Acme")
    billing.recharge(acme.tenant.id, 1000, TEST_ACTOR)
    row = add_gateway(dashboard, priority="500")  # after the default gateway, unless a model names it
    model = db.session.scalar(sa.select(AiModel).where(AiModel.model_id == IMAGE))
    editor = dashboard.get(f"/admin/models/{model.id}")
    assert re.search(rf'<option value="{row.id}"\s*>sandbox</option>', text_of(editor))
    saved = dashboard.post(f"/admin/models/{model.id}/gateway", {"gateway_id": str(row.id)})
    assert saved.status_code == 200 and "Gateway saved." in text_of(saved)
    db.session.refresh(model)
    assert model.gateway_id == row.id
    assert audit_entries(action="model.gateway")[0].changes["gateway"] == [None, "sandbox"]

    generation_id = generate_image(client, acme)["generation_id"]
    generate_image(client, acme, prompt="fox [sandbox:fail]")
    assert db.session.get(Generation, uuid.UUID(generation_id)).gateway_id == row.id
    page = text_of(dashboard.get("/admin/gateways"))
    assert re.search(r'data-health="success"[^>]*>✓ 1<', page)
    assert re.search(r'data-health="error"[^>]*>✗ 1<', page)
    assert re.search(r'data-health="last_error">Last error \([^)]+\): HTTP 500', page)
    assert "sandbox" in text_of(dashboard.get(f"/admin/generations/{generation_id}"))

    dashboard.post(f"/admin/models/{model.id}/gateway", {"gateway_id": ""})
    db.session.refresh(model)
    assert model.gateway_id is None


def test_an_unknown_gateway_is_a_404(dashboard):
    assert dashboard.get("/admin/gateways/not-an-id").status_code == 404
    assert dashboard.post("/admin/gateways/7b0c5a57-1d56-4c1c-9d1b-9b8a3a0f3f11/test").status_code == 404
