"""Models, estimates and credits as a tenant's client sees them, over HTTP on the real database."""
from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.catalog.seed import MODELS
from app.core.transaction import atomic
from app.extensions import db
from app.identity import tenants
from app.models import AuditLog, LedgerEntry, Tenant
from tests.conftest import TEST_ACTOR, assert_error, key_headers


@pytest.fixture
def catalog_seeded(app):
    return catalog.seed_catalog(TEST_ACTOR)


@pytest.fixture
def acme(make):
    return make.tenant("Acme")


@pytest.fixture
def member_headers(make, acme):
    return make.auth(acme, make.user(acme, "mia", role="member"))


@pytest.fixture
def tenant_admin_headers(make, acme):
    return make.auth(acme, make.user(acme, "ada", role="admin"))


def fund(created, amount):
    billing.recharge(created.tenant.id, amount, TEST_ACTOR)


def model_ids(response):
    assert response.status_code == 200, response.get_json()
    return [m["id"] for m in response.get_json()["data"]]


def estimate(client, headers, **body):
    return client.post("/api/v1/billing/estimate", json=body, headers=headers)


def test_models_are_listed_in_openai_shape_with_capabilities_and_pricing(client, acme, catalog_seeded):
    response = client.get("/api/v1/models", headers=key_headers(acme))
    body = response.get_json()
    assert response.status_code == 200 and body["object"] == "list"
    assert sorted(model_ids(response)) == sorted(m["model_id"] for m in MODELS)
    by_id = {m["id"]: m for m in body["data"]}
    seedream = by_id["doubao-seedream-4-0-250828"]
    assert {"id", "object", "owned_by", "kind", "capabilities", "pricing"} <= set(seedream)
    assert seedream["object"] == "model" and seedream["owned_by"] == "Doubao" and seedream["kind"] == "image"
    assert "16:9" in seedream["capabilities"]["ratios"]
    assert seedream["pricing"]["billing_type"] == "PER_IMAGE" and seedream["pricing"]["by_resolution"]["4K"] == 40
    assert {m["kind"] for m in body["data"]} == {"image", "video", "audio", "chat", "midjourney"}


def test_a_member_sees_the_same_models_as_the_key(client, acme, member_headers, catalog_seeded):
    assert model_ids(client.get("/api/v1/models", headers=member_headers)) == \
        model_ids(client.get("/api/v1/models", headers=key_headers(acme)))


def test_models_need_credentials(client, catalog_seeded):
    assert_error(client.get("/api/v1/models"), 401, "missing_credentials")


def test_a_tenant_with_enabled_models_sees_and_may_use_only_those(client, acme, member_headers, catalog_seeded):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"enabled_models": ["veo3.1", "gemini-2.5-pro"]})
    for headers in (key_headers(acme), member_headers):
        assert sorted(model_ids(client.get("/api/v1/models", headers=headers))) == ["gemini-2.5-pro", "veo3.1"]
        assert estimate(client, headers, model="veo3.1", duration=4).get_json()["credits"] == 240
        error = assert_error(estimate(client, headers, model="sora-image"), 403, "model_not_enabled")
        assert error["param"] == "model"


def test_a_deactivated_model_disappears_and_is_refused(client, acme, member_headers, catalog_seeded):
    sora, _rule = next((m, r) for m, r in catalog.list_models() if m.model_id == "sora-image")
    assert estimate(client, member_headers, model="sora-image").status_code == 200
    catalog.update_model(sora.id, TEST_ACTOR, is_active=False)
    for headers in (key_headers(acme), member_headers):
        assert "sora-image" not in model_ids(client.get("/api/v1/models", headers=headers))
        assert_error(estimate(client, headers, model="sora-image"), 403, "model_not_enabled")
    catalog.update_model(sora.id, TEST_ACTOR, is_active=True)
    assert "sora-image" in model_ids(client.get("/api/v1/models", headers=member_headers))


def test_an_unknown_model_is_404(client, acme, catalog_seeded):
    error = assert_error(estimate(client, key_headers(acme), model="dall-e-9"), 404, "model_not_found")
    assert error["param"] == "model"


@pytest.mark.parametrize(("body", "credits", "breakdown"), [
    ({"model": "doubao-seedream-4-0-250828", "n": 3, "image_size": "4K"}, 120,
     {"images": 3, "per_image": 40, "resolution": "4K"}),
    ({"model": "doubao-seedream-4-0-250828", "prompt": "a cat"}, 20, {"images": 1, "per_image": 20}),
    ({"model": "viduq2-pro", "duration": 4, "resolution": "1080p"}, 140,
     {"resolution": "1080p", "per_second": 35, "seconds": 4}),
    ({"model": "MiniMax-Hailuo-2.3", "duration": 10, "resolution": "768p"}, 280, {"tier": "768p_10"}),
    ({"model": "veo3.1"}, 480, {"seconds": 8, "per_second": 60}),
    ({"model": "speech-2.6-hd", "input": "a" * 1500}, 40, {"characters": 1500, "per_characters": 1000}),
    ({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 1000},
     9, {"input_tokens": 104, "output_tokens": 1000}),
    ({"model": "midjourney-v7", "operation": "upscale", "mode": "relax"}, 10,
     {"operation": "upscale", "mode": "relax", "mode_percent": 50}),
    ({"model": "midjourney-v7", "prompt": "a castle"}, 40, {"operation": "imagine", "mode": "fast"}),
    ({"model": "wan2.2-animate-mix", "mode": "wan-pro", "duration": 10}, 350, {"mode": "wan-pro", "seconds": 10}),
])
def test_estimate_gives_credits_and_breakdown_per_kind(client, acme, catalog_seeded, body, credits, breakdown):
    response = estimate(client, key_headers(acme), **body)
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["model"] == body["model"] and result["credits"] == credits
    assert breakdown.items() <= result["breakdown"].items(), result["breakdown"]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "doubao-seedream-4-0-250828", "n": 0}, "n"),
    ({"model": "doubao-seedream-4-0-250828", "n": 16}, "n"),
    ({"model": "viduq2-pro", "duration": "5"}, "duration"),
    ({"model": "veo3.1", "duration": -2}, "duration"),
    ({"model": "midjourney-v7", "operation": "blend"}, "operation"),
    ({"model": "gemini-2.5-pro", "max_tokens": 0, "messages": []}, "max_tokens"),
    ({"prompt": "no model"}, "model"),
    ({"model": ""}, "model"),
])
def test_estimate_refuses_bad_params_naming_them(client, acme, catalog_seeded, body, param):
    error = assert_error(estimate(client, key_headers(acme), **body), 400)
    assert error["param"] == param, error


@pytest.mark.parametrize(("raw", "param"), [
    ('{"model": "veo3.1", "duration": NaN}', "duration"),
    ('{"model": "gemini-2.5-pro", "messages": 5}', "messages"),
    ('{"model": "midjourney-v7", "mode": {"fast": 1}}', "mode"),
    ('{"model": "midjourney-v7", "operation": ["imagine"]}', "operation"),
    ('{"model": "wan2.2-animate-mix", "mode": ["wan-pro"]}', "mode"),
])
def test_estimate_refuses_odd_json_values_with_400_not_500(client, acme, catalog_seeded, raw, param):
    response = client.post("/api/v1/billing/estimate", data=raw,
                           headers=key_headers(acme) | {"Content-Type": "application/json"})
    assert assert_error(response, 400)["param"] == param


def test_estimate_counts_only_text_parts_of_chat_content(client, acme, catalog_seeded):
    content = [{"type": "text", "text": "x" * 400}, {"type": "image_url", "image_url": {"url": "u"}}, {"text": 5}, 7]
    response = estimate(client, key_headers(acme), model="gemini-2.5-pro", max_tokens=1000,
                        messages=[{"role": "user", "content": content}])
    assert response.status_code == 200 and response.get_json()["breakdown"]["input_tokens"] == 104


def test_estimate_for_a_member_matches_the_key(client, acme, member_headers, catalog_seeded):
    body = {"model": "viduq2-turbo", "duration": 8}
    assert estimate(client, member_headers, **body).get_json() == estimate(client, key_headers(acme), **body).get_json()


def account(client, headers):
    response = client.get("/api/v1/account", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_new_tenant_has_nothing(client, acme):
    assert account(client, key_headers(acme)) == {"balance": 0, "held": 0, "available": 0}


def test_account_follows_recharges_holds_and_settlement(client, acme, member_headers):
    fund(acme, 500)
    fund(acme, 250)
    with atomic():
        first = ledger.hold(acme.tenant.id, 120, reference="gen-1")
        ledger.hold(acme.tenant.id, 30, reference="gen-2")
    assert account(client, key_headers(acme)) == {"balance": 750, "held": 150, "available": 600}
    with atomic():
        ledger.settle(first.id, 100, TEST_ACTOR)
    assert account(client, member_headers) == {"balance": 650, "held": 30, "available": 620}
    assert ledger.verify() == []


def transactions(client, headers, **query):
    response = client.get("/api/v1/transactions", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def backdate(entry_id, when: datetime):
    with atomic():
        db.session.execute(sa.update(LedgerEntry).where(LedgerEntry.id == entry_id).values(created_at=when))


def tenant_entries(created) -> list[LedgerEntry]:
    return list(db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.tenant_id == created.tenant.id)))


def test_transactions_are_newest_first_and_filter_by_type(client, acme, member_headers):
    for amount in (100, 200, 300):
        fund(acme, amount)
    billing.adjust(acme.tenant.id, -50, "refund of a duplicate order", TEST_ACTOR)
    body = transactions(client, key_headers(acme))
    assert body["object"] == "list" and body["has_more"] is False and body["next_cursor"] is None
    assert [(e["type"], e["amount"], e["balance_after"]) for e in body["data"]] == [
        ("ADJUST", -50, 550), ("RECHARGE", 300, 600), ("RECHARGE", 200, 300), ("RECHARGE", 100, 100)]
    assert body["data"][0]["description"] == "refund of a duplicate order"
    assert body["data"][0]["actor"] == {"type": "system", "name": "tests"}
    recharges = transactions(client, member_headers, type="RECHARGE")["data"]
    assert [e["amount"] for e in recharges] == [300, 200, 100]
    assert transactions(client, member_headers, type="CONSUME")["data"] == []
    assert ledger.verify() == []


def test_transactions_filter_by_date_inclusive_of_both_days(client, acme):
    for amount in (1, 2, 3, 4):
        fund(acme, amount)
    by_amount = {e.amount: e.id for e in tenant_entries(acme)}
    backdate(by_amount[1], datetime(2024, 1, 10, 0, 0, 0, tzinfo=timezone.utc))
    backdate(by_amount[2], datetime(2024, 1, 31, 23, 59, 59, tzinfo=timezone.utc))
    backdate(by_amount[3], datetime(2024, 2, 1, 0, 0, 0, tzinfo=timezone.utc))

    def amounts(**query):
        return [e["amount"] for e in transactions(client, key_headers(acme), **query)["data"]]

    assert amounts(**{"from": "2024-01-01", "to": "2024-01-31"}) == [2, 1]
    assert amounts(**{"from": "2024-01-31", "to": "2024-02-01"}) == [3, 2]
    assert amounts(**{"to": "2024-01-10"}) == [1]
    assert amounts(**{"from": "2024-02-01"}) == [4, 3]
    assert amounts(**{"from": "2024-02-02", "to": "2024-12-31"}) == []
    assert amounts(**{"from": "2024-01-01", "to": "2024-01-31", "type": "ADJUST"}) == []
    assert amounts(**{"from": "0001-01-01", "to": "9999-12-31"}) == [4, 3, 2, 1]  # the calendar's very ends
    assert amounts(**{"from": "9999-12-31"}) == []
    assert_error(client.get("/api/v1/transactions?from=yesterday", headers=key_headers(acme)), 400)


def test_cursor_pagination_walks_every_entry_exactly_once(client, acme, member_headers):
    for amount in range(1, 8):
        fund(acme, amount)
    with atomic():
        hold = ledger.hold(acme.tenant.id, 5)
    with atomic():
        ledger.settle(hold.id, 5, TEST_ACTOR)
    # Entries sharing a timestamp (one transaction, a coarse clock) must still page without gaps.
    same_moment = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    for entry in tenant_entries(acme)[2:6]:
        backdate(entry.id, same_moment)
    expected = [e["id"] for e in transactions(client, key_headers(acme), limit=200)["data"]]
    assert len(expected) == 8

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = transactions(client, member_headers, **query)
        pages += 1
        seen += [e["id"] for e in page["data"]]
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
        assert pages < 10
    assert seen == expected and len(set(seen)) == 8 and pages == 4
    assert ledger.verify() == []


def test_cursor_pagination_with_a_type_filter(client, acme):
    for amount in range(1, 6):
        fund(acme, amount)
        billing.adjust(acme.tenant.id, 1, "bonus", TEST_ACTOR)
    first = transactions(client, key_headers(acme), type="RECHARGE", limit=3)
    second = transactions(client, key_headers(acme), type="RECHARGE", limit=3, cursor=first["next_cursor"])
    assert [e["amount"] for e in first["data"] + second["data"]] == [5, 4, 3, 2, 1]
    assert first["has_more"] is True and second["has_more"] is False


def forged_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("query", [
    {"cursor": "not-a-cursor"}, {"cursor": "bm9wZQ"}, {"cursor": "%00"}, {"type": "GIFT"}, {"limit": 0},
    {"limit": 201}, {"limit": "ten"}, {"from": "2024-13-01"},
    {"cursor": forged_cursor(f"2024-01-01T00:00:00|{uuid.uuid4()}")},  # no offset
    {"cursor": forged_cursor("2024-01-01T00:00:00+00:00|42")},
    {"cursor": forged_cursor(f"0001-01-01T00:00:00+01:00|{uuid.uuid4()}")},  # before year 1 in UTC
    {"cursor": forged_cursor(f"9999-12-31T23:59:59-05:00|{uuid.uuid4()}")},  # after year 9999 in UTC
])
def test_transactions_refuse_bad_queries(client, acme, query):
    fund(acme, 10)
    assert_error(client.get("/api/v1/transactions", query_string=query, headers=key_headers(acme)), 400)


def test_a_tenant_never_sees_another_tenants_entries(client, make, acme):
    other = make.tenant("Globex")
    fund(acme, 100)
    fund(acme, 200)
    acme_page = transactions(client, key_headers(acme), limit=1)
    assert len(acme_page["data"]) == 1 and acme_page["has_more"]
    assert transactions(client, key_headers(other))["data"] == []
    # Acme's cursor does not open Acme's ledger to Globex either.
    assert transactions(client, key_headers(other), cursor=acme_page["next_cursor"])["data"] == []
    assert account(client, key_headers(other)) == {"balance": 0, "held": 0, "available": 0}
    assert ledger.verify() == []


def buy_seats(client, headers, count):
    return client.post("/api/v1/tenant/seats", json={"count": count}, headers=headers)


def max_seats(created) -> int:
    return db.session.scalar(sa.select(Tenant.max_seats).where(Tenant.id == created.tenant.id))


def test_a_tenant_admin_buys_seats_with_credits(client, make, acme, tenant_admin_headers):
    response = client.put("/admin/api/settings/seat-price", json={"credits": 250},
                          headers=make.admin_token_headers())
    assert response.status_code == 200 and response.get_json() == {"credits": 250}
    fund(acme, 1000)
    before = max_seats(acme)

    response = buy_seats(client, tenant_admin_headers, 3)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["max_seats"] == before + 3 == max_seats(acme)
    assert (body["balance"], body["held"], body["available"], body["credits"]) == (250, 0, 250, 750)
    assert body["entry"]["type"] == "SEAT_PURCHASE" and body["entry"]["amount"] == -750
    assert body["entry"]["balance_after"] == 250 and body["entry"]["actor"]["name"] == "ada"
    assert transactions(client, tenant_admin_headers, type="SEAT_PURCHASE")["data"][0]["id"] == body["entry"]["id"]
    audit = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "seats.purchase")).all()
    assert len(audit) == 1 and audit[0].tenant_id == acme.tenant.id and audit[0].actor_name == "ada"
    assert audit[0].changes["count"] == 3 and audit[0].changes["price"] == 250
    assert ledger.verify() == []


def test_seats_without_enough_credits_are_402_and_change_nothing(client, acme, tenant_admin_headers):
    fund(acme, billing.seat_price() * 2 - 1)
    with atomic():  # held credits are not available for seats
        ledger.hold(acme.tenant.id, 1)
    before = max_seats(acme)
    assert_error(buy_seats(client, tenant_admin_headers, 2), 402, "insufficient_credits")
    assert max_seats(acme) == before
    assert ledger.account(acme.tenant.id) == ledger.Account(billing.seat_price() * 2 - 1, 1)
    assert [e.type for e in tenant_entries(acme)] == ["RECHARGE"]
    assert ledger.verify() == []


def test_only_a_tenant_admin_buys_seats(client, acme, member_headers):
    fund(acme, 100_000)
    before = max_seats(acme)
    assert_error(buy_seats(client, member_headers, 1), 403, "tenant_admin_required")
    assert max_seats(acme) == before and ledger.account(acme.tenant.id).balance == 100_000


@pytest.mark.parametrize("count", [0, -1, 1001, "2", 1.5, None])
def test_a_bad_seat_count_is_400(client, acme, tenant_admin_headers, count):
    fund(acme, 100_000)
    error = assert_error(buy_seats(client, tenant_admin_headers, count), 400)
    assert error["param"] == "count"
    assert [e.type for e in tenant_entries(acme)] == ["RECHARGE"]


def test_free_seats_write_no_entry(client, make, acme, tenant_admin_headers):
    client.put("/admin/api/settings/seat-price", json={"credits": 0}, headers=make.admin_token_headers())
    before = max_seats(acme)
    body = buy_seats(client, tenant_admin_headers, 2).get_json()
    assert body["max_seats"] == before + 2 and body["credits"] == 0 and body["entry"] is None
    assert tenant_entries(acme) == []
    assert ledger.verify() == []


def test_a_foreign_tenant_id_plays_no_part_in_seats(client, make, acme, tenant_admin_headers):
    """Seats go to the caller's own tenant; there is no tenant id to forge."""
    other = make.tenant("Globex")
    fund(acme, 10_000)
    fund(other, 10_000)
    before = max_seats(other)
    assert buy_seats(client, tenant_admin_headers, 1).status_code == 200
    assert max_seats(other) == before and ledger.account(other.tenant.id).balance == 10_000
    assert_error(client.post("/api/v1/tenant/seats", json={"count": 1, "tenant_id": str(uuid.uuid4())},
                             headers=tenant_admin_headers), 400)


def test_seats_stop_at_the_platform_limit_and_nothing_is_charged(client, acme, tenant_admin_headers):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"max_seats": tenants.MAX_SEATS_LIMIT - 1})
    fund(acme, billing.seat_price() * 2)
    error = assert_error(buy_seats(client, tenant_admin_headers, 2), 400)
    assert error["param"] == "count"
    assert max_seats(acme) == tenants.MAX_SEATS_LIMIT - 1
    assert ledger.account(acme.tenant.id).balance == billing.seat_price() * 2
    assert buy_seats(client, tenant_admin_headers, 1).get_json()["max_seats"] == tenants.MAX_SEATS_LIMIT
    assert ledger.verify() == []
