"""Credits in the JSON admin API: recharge, adjust, a tenant's account and ledger, the seat price."""
from __future__ import annotations

from flask import g, jsonify, request

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.openapi import endpoint
from app.billing import accounts as billing
from app.billing import ledger
from app.schemas import dump
from app.schemas.billing import (AccountOut, AdjustIn, MoneyOut, RechargeIn, SeatPriceIn, TransactionListOut,
                                 TransactionsQuery, account_out, entry_out)


def _money(movement) -> dict:
    return dump(MoneyOut, {**account_out(movement.account), "entry": entry_out(movement.entry)})


@api_bp.post("/tenants/<tenant_id>/recharge")
@endpoint("Add credits to a tenant (send an Idempotency-Key header to make retries safe)", body=RechargeIn,
          response=MoneyOut, status=201, errors=(401, 404, 409, 422), tags=TAGS)
def recharge(body: RechargeIn):
    movement = billing.recharge(g.tenant.id, body.amount, admin_actor(), description=body.description,
                                idempotency_key=request.headers.get("Idempotency-Key"))
    response = jsonify(_money(movement))
    response.status_code = 201
    if movement.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@api_bp.post("/tenants/<tenant_id>/adjust")
@endpoint("Correct a tenant's balance up or down, with a reason", body=AdjustIn, response=MoneyOut, status=201,
          errors=(401, 404), tags=TAGS)
def adjust(body: AdjustIn):
    return jsonify(_money(billing.adjust(g.tenant.id, body.amount, body.reason, admin_actor()))), 201


@api_bp.get("/tenants/<tenant_id>/account")
@endpoint("A tenant's balance, held and available credits", response=AccountOut, errors=(401, 404), tags=TAGS)
def account():
    return jsonify(account_out(ledger.account(g.tenant.id)))


@api_bp.get("/tenants/<tenant_id>/transactions")
@endpoint("A tenant's ledger, newest first, cursor-paginated", query=TransactionsQuery,
          response=TransactionListOut, errors=(401, 404), tags=TAGS)
def transactions(query: TransactionsQuery):
    page = billing.list_entries(g.tenant.id, type_=query.type, date_from=query.date_from, date_to=query.date_to,
                                cursor=query.cursor, limit=query.limit)
    return jsonify({"object": "list", "data": [entry_out(e) for e in page.entries],
                    "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor})


@api_bp.put("/settings/seat-price")
@endpoint("Set the price of one seat in credits", body=SeatPriceIn, response=SeatPriceIn, errors=(401,), tags=TAGS)
def set_seat_price(body: SeatPriceIn):
    return jsonify({"credits": billing.set_seat_price(body.credits, admin_actor())})
