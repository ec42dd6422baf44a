"""Money in through the JSON admin API: recharge (idempotent), adjustment, and the catalog's prices."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import idempotency, ledger
from app.catalog import service as catalog
from app.catalog.seed import MODELS
from app.core.errors import InvalidInput
from app.core.transaction import atomic
from app.extensions import db
from app.models import AuditLog, IdempotencyKey, LedgerEntry, PriceRule, utcnow
from tests.conftest import TEST_ACTOR, assert_error, key_headers, make_app, require_postgres


@pytest.fixture
def headers(make):
    return make.admin_token_headers(make.platform_admin("ops"))


@pytest.fixture
def acme(make):
    return make.tenant("Acme")


@pytest.fixture
def catalog_seeded(app):
    return catalog.seed_catalog(TEST_ACTOR)


def recharge(client, headers, created, body, key=None):
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(f"/admin/api/tenants/{created.tenant.id}/recharge", json=body, headers=headers | extra)


def adjust(client, headers, created, body):
    return client.post(f"/admin/api/tenants/{created.tenant.id}/adjust", json=body, headers=headers)


def entries(created=None) -> list[LedgerEntry]:
    query = sa.select(LedgerEntry).order_by(LedgerEntry.created_at)
    if created is not None:
        query = query.where(LedgerEntry.tenant_id == created.tenant.id)
    return list(db.session.scalars(query))


def audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(sa.select(AuditLog).where(AuditLog.action == action)))


def balance(created) -> ledger.Account:
    return ledger.account(created.tenant.id)


def test_recharge_adds_credits_and_answers_with_the_account_and_entry(client, headers, acme):
    response = recharge(client, headers, acme, {"amount": 5000, "description": "Invoice 2024-001"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["balance"], body["held"], body["available"]) == (5000, 0, 5000)
    entry = body["entry"]
    assert entry["type"] == "RECHARGE" and entry["amount"] == 5000 and entry["balance_after"] == 5000
    assert entry["description"] == "Invoice 2024-001" and entry["actor"] == {"type": "platform_admin", "name": "ops"}
    assert "Idempotent-Replayed" not in response.headers
    [audit] = audits("credits.recharge")
    assert audit.tenant_id == acme.tenant.id and audit.actor_name == "ops"
    assert audit.changes["amount"] == 5000 and audit.changes["entry_id"] == entry["id"]

    # The tenant sees the same thing.
    assert client.get("/api/v1/account", headers=key_headers(acme)).get_json() == \
        {"balance": 5000, "held": 0, "available": 5000}
    assert client.get(f"/admin/api/tenants/{acme.tenant.id}/account", headers=headers).get_json() == \
        {"balance": 5000, "held": 0, "available": 5000}
    assert ledger.verify() == []


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", None, True, 10_000_001])
def test_a_bad_amount_is_400_and_writes_nothing(client, headers, acme, amount):
    recharge(client, headers, acme, {"amount": 100})
    error = assert_error(recharge(client, headers, acme, {"amount": amount}), 400)
    assert error["param"] == "amount"
    assert len(entries(acme)) == 1 and balance(acme).balance == 100
    assert len(audits("credits.recharge")) == 1
    assert ledger.verify() == []


def test_a_missing_amount_or_unknown_field_is_400(client, headers, acme):
    assert_error(recharge(client, headers, acme, {}), 400)
    assert_error(recharge(client, headers, acme, {"amount": 10, "currency": "EUR"}), 400)
    assert entries(acme) == []


def test_the_configured_maximum_bounds_a_recharge(test_env, tmp_path, make, acme):
    strict = make_app(test_env, tmp_path / "strict", RECHARGE_MAX_CREDITS=1000)
    client = strict.test_client()
    headers = make.admin_token_headers()
    assert_error(recharge(client, headers, acme, {"amount": 1001}), 400)
    assert entries(acme) == []
    assert recharge(client, headers, acme, {"amount": 1000}).status_code == 201
    assert balance(acme).balance == 1000
    with strict.app_context():
        db.engine.dispose()


def test_the_same_key_and_body_replays_and_charges_once(client, headers, acme):
    first = recharge(client, headers, acme, {"amount": 300}, key="order-77")
    assert first.status_code == 201
    again = recharge(client, headers, acme, {"amount": 300}, key="order-77")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert len(entries(acme)) == 1 and balance(acme).balance == 300
    assert len(audits("credits.recharge")) == 1
    assert ledger.verify() == []


def test_the_same_key_with_another_body_is_422(client, headers, acme):
    assert recharge(client, headers, acme, {"amount": 300}, key="order-78").status_code == 201
    assert_error(recharge(client, headers, acme, {"amount": 301}, key="order-78"), 422, "idempotency_key_reused")
    assert_error(recharge(client, headers, acme, {"amount": 300, "description": "other"}, key="order-78"), 422,
                 "idempotency_key_reused")
    assert len(entries(acme)) == 1 and balance(acme).balance == 300
    assert ledger.verify() == []


def test_a_key_belongs_to_one_tenant(client, headers, make, acme):
    globex = make.tenant("Globex")
    assert recharge(client, headers, acme, {"amount": 40}, key="shared").status_code == 201
    response = recharge(client, headers, globex, {"amount": 40}, key="shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert balance(acme).balance == 40 and balance(globex).balance == 40
    assert len(entries(acme)) == 1 and len(entries(globex)) == 1
    assert ledger.verify() == []


def test_a_refused_recharge_does_not_use_up_its_key(client, headers, acme):
    assert_error(recharge(client, headers, acme, {"amount": 0}, key="retry-me"), 400)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0
    assert recharge(client, headers, acme, {"amount": 10}, key="retry-me").status_code == 201
    assert balance(acme).balance == 10


def test_a_key_whose_first_request_is_still_running_is_409(client, headers, acme):
    with atomic():  # as a long generation leaves it: claimed and committed, not finished
        idempotency.claim(acme.tenant.id, "admin.recharge", "slow", {"amount": 5, "description": "Recharge"})
    assert_error(recharge(client, headers, acme, {"amount": 5}, key="slow"), 409, "idempotency_request_in_progress")
    assert_error(recharge(client, headers, acme, {"amount": 6}, key="slow"), 422, "idempotency_key_reused")
    assert entries(acme) == []


def test_an_expired_key_runs_again(client, headers, acme):
    assert recharge(client, headers, acme, {"amount": 5}, key="yesterday").status_code == 201
    with atomic():
        db.session.execute(sa.update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = recharge(client, headers, acme, {"amount": 8}, key="yesterday")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert balance(acme).balance == 13
    assert recharge(client, headers, acme, {"amount": 8}, key="yesterday").headers["Idempotent-Replayed"] == "true"
    assert balance(acme).balance == 13
    assert ledger.verify() == []


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "tab\there"])
def test_a_malformed_idempotency_key_is_400(client, headers, acme, key):
    response = client.post(f"/admin/api/tenants/{acme.tenant.id}/recharge", json={"amount": 10},
                           headers=headers | {"Idempotency-Key": key})
    assert_error(response, 400, "invalid_idempotency_key")
    assert entries(acme) == []


@pytest.mark.parametrize("path", ["recharge", "adjust", "account", "transactions"])
@pytest.mark.parametrize("tenant_id", [lambda: str(uuid.uuid4()), lambda: "not-a-uuid"])
def test_an_unknown_tenant_is_404(client, headers, path, tenant_id):
    url = f"/admin/api/tenants/{tenant_id()}/{path}"
    if path in ("recharge", "adjust"):
        response = client.post(url, json={"amount": 10, "reason": "x"}, headers=headers)
    else:
        response = client.get(url, headers=headers)
    assert_error(response, 404)
    assert entries() == []


def test_money_routes_need_an_admin_token(client, acme):
    assert_error(recharge(client, {}, acme, {"amount": 10}), 401)
    assert_error(recharge(client, key_headers(acme), acme, {"amount": 10}), 401)
    assert entries() == []


def test_the_admin_reads_a_tenants_ledger(client, headers, acme):
    for amount in (10, 20, 30):
        recharge(client, headers, acme, {"amount": amount})
    page = client.get(f"/admin/api/tenants/{acme.tenant.id}/transactions?limit=2", headers=headers).get_json()
    assert [e["amount"] for e in page["data"]] == [30, 20] and page["has_more"] is True
    rest = client.get(f"/admin/api/tenants/{acme.tenant.id}/transactions",
                      query_string={"limit": 2, "cursor": page["next_cursor"]}, headers=headers).get_json()
    assert [e["amount"] for e in rest["data"]] == [10] and rest["has_more"] is False


def test_adjust_up_and_down_with_a_reason(client, headers, acme):
    recharge(client, headers, acme, {"amount": 100})
    up = adjust(client, headers, acme, {"amount": 25, "reason": "goodwill"})
    assert up.status_code == 201, up.get_json()
    assert up.get_json()["balance"] == 125 and up.get_json()["entry"]["type"] == "ADJUST"
    down = adjust(client, headers, acme, {"amount": -40, "reason": "double-booked invoice"})
    assert down.status_code == 201
    body = down.get_json()
    assert (body["balance"], body["available"]) == (85, 85)
    assert body["entry"]["amount"] == -40 and body["entry"]["description"] == "double-booked invoice"
    assert [a.changes["amount"] for a in audits("credits.adjust")] == [25, -40]
    assert ledger.verify() == []


@pytest.mark.parametrize("body", [{"amount": 10}, {"amount": 10, "reason": ""}, {"amount": 10, "reason": "   "}])
def test_an_adjustment_needs_a_reason(client, headers, acme, body):
    error = assert_error(adjust(client, headers, acme, body), 400)
    assert error["param"] == "reason"
    assert entries(acme) == []


@pytest.mark.parametrize("amount", [0, 1.5, "5", 10_000_001, -10_000_001])
def test_a_bad_adjustment_amount_is_400(client, headers, acme, amount):
    error = assert_error(adjust(client, headers, acme, {"amount": amount, "reason": "r"}), 400)
    assert error["param"] == "amount"
    assert entries(acme) == []


def test_an_adjustment_never_takes_more_than_is_available(client, headers, acme):
    recharge(client, headers, acme, {"amount": 100})
    with atomic():  # 30 held by a running request is not available to take away
        ledger.hold(acme.tenant.id, 30)
    error = assert_error(adjust(client, headers, acme, {"amount": -71, "reason": "too much"}), 400,
                         "adjustment_exceeds_available")
    assert error["param"] == "amount" and "70" in error["message"]
    assert balance(acme) == ledger.Account(100, 30)
    assert len(entries(acme)) == 1 and audits("credits.adjust") == []
    assert adjust(client, headers, acme, {"amount": -70, "reason": "exactly all"}).status_code == 201
    assert balance(acme) == ledger.Account(30, 30)
    assert ledger.verify() == []


def admin_models(client, headers) -> dict:
    response = client.get("/admin/api/models", headers=headers)
    assert response.status_code == 200, response.get_json()
    return {m["id"]: m for m in response.get_json()["data"]}


def patch_model(client, headers, model, body):
    return client.patch(f"/admin/api/models/{model['uuid']}", json=body, headers=headers)


def test_the_admin_lists_every_model_with_its_price_rule(client, headers, acme, catalog_seeded):
    models = admin_models(client, headers)
    assert set(models) == {m["model_id"] for m in MODELS}
    assert all(m["pricing"]["billing_type"] and "is_active" in m and uuid.UUID(m["uuid"]) for m in models.values())
    assert models["midjourney-v7"]["pricing"]["mode_percent"]["turbo"] == 200
    # inactive models are still listed for the admin
    patch_model(client, headers, models["sora-image"], {"is_active": False})
    assert admin_models(client, headers)["sora-image"]["is_active"] is False


def test_a_price_change_shows_in_the_tenants_estimate(client, headers, acme, catalog_seeded):
    sora = admin_models(client, headers)["sora-image"]
    assert client.post("/api/v1/billing/estimate", json={"model": "sora-image"},
                       headers=key_headers(acme)).get_json()["credits"] == 30
    response = patch_model(client, headers, sora, {"prices": {"credits": 45}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["pricing"] == {"billing_type": "PER_IMAGE", "credits": 45, "by_resolution": {}}
    assert client.post("/api/v1/billing/estimate", json={"model": "sora-image", "n": 2},
                       headers=key_headers(acme)).get_json()["credits"] == 90
    [audit] = audits("model.update")
    assert audit.changes["model_id"] == "sora-image" and "prices" in audit.changes


def test_switching_billing_type_takes_the_new_prices(client, headers, acme, catalog_seeded):
    sora = admin_models(client, headers)["sora-image"]
    response = patch_model(client, headers, sora, {"billing_type": "PER_REQUEST", "prices": {"credits": 12}})
    assert response.status_code == 200, response.get_json()
    result = client.post("/api/v1/billing/estimate", json={"model": "sora-image", "n": 3},
                         headers=key_headers(acme)).get_json()
    assert result["credits"] == 12 and result["breakdown"] == {"per_request": 12}


@pytest.mark.parametrize("body", [
    {"prices": {"credits": -5}},
    {"prices": {"credits": "5"}},
    {"prices": {"per_image": 5}},
    {"billing_type": "PER_PIXEL"},
    {"billing_type": "OPERATION_MODE"},  # the PER_IMAGE prices do not fit it
    {"is_active": False, "prices": {"credits": -1}},  # one bad part refuses the whole change
    {"display_name": "   "},
])
def test_an_invalid_model_change_is_400_and_changes_nothing(client, headers, acme, catalog_seeded, body):
    before = admin_models(client, headers)["sora-image"]
    assert_error(patch_model(client, headers, before, body), 400)
    assert admin_models(client, headers)["sora-image"] == before
    rule = db.session.scalar(sa.select(PriceRule).where(PriceRule.model_id == uuid.UUID(before["uuid"])))
    assert (rule.billing_type, rule.prices) == ("PER_IMAGE", {"credits": 30})
    assert client.post("/api/v1/billing/estimate", json={"model": "sora-image"},
                       headers=key_headers(acme)).get_json()["credits"] == 30
    assert audits("model.update") == []


def test_a_refused_model_change_leaves_nothing_for_a_later_commit(client, headers, acme, catalog_seeded):
    """The dashboard and CLI call the service directly; a refusal must not leave half a change pending."""
    sora = admin_models(client, headers)["sora-image"]
    with pytest.raises(InvalidInput):
        catalog.update_model(sora["uuid"], TEST_ACTOR, is_active=False, prices={"credits": -1})
    db.session.commit()  # whatever the caller commits next
    assert admin_models(client, headers)["sora-image"] == sora


def test_an_unknown_model_uuid_is_404(client, headers, catalog_seeded):
    assert_error(client.patch(f"/admin/api/models/{uuid.uuid4()}", json={"is_active": False}, headers=headers), 404)
    assert_error(client.patch("/admin/api/models/nope", json={"is_active": False}, headers=headers), 404)


def test_seat_price_is_validated(client, headers):
    for credits in (-1, 10_000_001, 1.5, "5"):
        assert_error(client.put("/admin/api/settings/seat-price", json={"credits": credits}, headers=headers), 400)
    response = client.put("/admin/api/settings/seat-price", json={"credits": 7}, headers=headers)
    assert response.get_json() == {"credits": 7}
    assert billing.seat_price() == 7
    assert [a.changes["credits"][1] for a in audits("settings.seat_price")] == [7]


def test_concurrent_duplicates_of_one_recharge_charge_once(app, make, acme, is_postgres):
    require_postgres(is_postgres)
    headers = make.admin_token_headers()
    url = f"/admin/api/tenants/{acme.tenant.id}/recharge"
    statuses, barrier = [None] * 10, threading.Barrier(10)

    def send(index):
        with app.app_context():  # a thread of its own: its own app context and database session
            try:
                barrier.wait()
                response = app.test_client().post(url, json={"amount": 700},
                                                  headers=headers | {"Idempotency-Key": "burst"})
                statuses[index] = (response.status_code, response.headers.get("Idempotent-Replayed"))
            except Exception as error:  # noqa: BLE001 - reported by the assertion below, not lost in a thread
                statuses[index] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(s, tuple) and s[0] in (201, 409) for s in statuses), statuses
    assert statuses.count((201, None)) == 1, statuses  # one did the work; the rest replayed it or were told to wait
    db.session.expire_all()
    assert len(entries(acme)) == 1 and balance(acme).balance == 700
    assert len(audits("credits.recharge")) == 1
    assert ledger.verify() == []
