"""Models, prices and credits as a tenant sees them."""
from __future__ import annotations

from datetime import date
from typing import Literal

from flask import jsonify
from pydantic import BaseModel, ConfigDict, Field

from app.api import bp
from app.api.auth import current_principal, tenant_admin_required
from app.api.schema import Body, Out, Query, dump, endpoint
from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog

AUTH = ("api_key", "member")


class ModelOut(Out):
    id: str
    object: Literal["model"] = "model"
    owned_by: str
    kind: str
    display_name: str
    capabilities: dict
    pricing: dict


class ModelListOut(Out):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class EstimateIn(BaseModel):
    """The generation body you would send, with its `model`: other fields pass to the pricing rule."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=120)


class EstimateOut(Out):
    model: str
    credits: int
    breakdown: dict


class AccountOut(Out):
    balance: int
    held: int
    available: int


class EntryOut(Out):
    id: str
    type: str
    amount: int
    balance_after: int
    description: str
    reference: str | None
    hold_id: str | None
    actor: dict
    created_at: str


class TransactionsQuery(Query):
    type: Literal["RECHARGE", "CONSUME", "REFUND", "ADJUST", "STORAGE", "SEAT_PURCHASE"] | None = None
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class TransactionListOut(Out):
    object: Literal["list"] = "list"
    data: list[EntryOut]
    has_more: bool
    next_cursor: str | None


class SeatsIn(Body):
    count: int = Field(ge=1, le=1000)


class SeatsOut(AccountOut):
    max_seats: int
    credits: int
    entry: EntryOut | None


def entry_out(entry) -> dict:
    return dump(EntryOut, {"id": str(entry.id), "type": entry.type, "amount": entry.amount,
                           "balance_after": entry.balance_after, "description": entry.description,
                           "reference": entry.reference, "hold_id": str(entry.hold_id) if entry.hold_id else None,
                           "actor": {"type": entry.actor_type, "name": entry.actor_name},
                           "created_at": entry.created_at.isoformat()})


def account_out(account) -> dict:
    return dump(AccountOut, account)


def model_dict(model, rule) -> dict:
    return {"id": model.model_id, "owned_by": model.provider, "kind": model.kind,
            "display_name": model.display_name, "capabilities": model.capabilities,
            "pricing": {"billing_type": rule.billing_type, **rule.prices}}


@bp.get("/models")
@endpoint("The models this tenant may use (OpenAI's list shape)", response=ModelListOut, auth=AUTH, tags=("models",))
def list_models():
    rows = catalog.models_for_tenant(current_principal().tenant)
    return jsonify(ModelListOut(data=[model_dict(m, r) for m, r in rows]).model_dump(mode="json"))


@bp.post("/billing/estimate")
@endpoint("What a generation would hold, with the breakdown", body=EstimateIn, response=EstimateOut, auth=AUTH,
          errors=(403, 404), tags=("billing",))
def estimate(body: EstimateIn):
    model, quote = catalog.estimate_for_tenant(current_principal().tenant, body.model, body.model_dump())
    return jsonify(EstimateOut(model=model.model_id, credits=quote.credits, breakdown=quote.breakdown)
                   .model_dump(mode="json"))


@bp.get("/account")
@endpoint("Credits: balance, held by running requests, and available", response=AccountOut, auth=AUTH,
          tags=("billing",))
def account():
    return jsonify(account_out(ledger.account(current_principal().tenant.id)))


@bp.get("/transactions")
@endpoint("The tenant's ledger, newest first, cursor-paginated", query=TransactionsQuery,
          response=TransactionListOut, auth=AUTH, tags=("billing",))
def transactions(query: TransactionsQuery):
    page = billing.list_entries(current_principal().tenant.id, type_=query.type, date_from=query.date_from,
                                date_to=query.date_to, cursor=query.cursor, limit=query.limit)
    return jsonify({"object": "list", "data": [entry_out(e) for e in page.entries],
                    "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor})


@bp.post("/tenant/seats")
@endpoint("Buy seats with credits (tenant admin)", body=SeatsIn, response=SeatsOut, auth=AUTH,
          errors=(402, 403), tags=("tenant",))
@tenant_admin_required
def buy_seats(body: SeatsIn):
    principal = current_principal()
    bought = billing.purchase_seats(principal.tenant.id, body.count, principal.actor())
    return jsonify(dump(SeatsOut, {**account_out(bought.account), "max_seats": bought.max_seats,
                                   "credits": bought.credits,
                                   "entry": entry_out(bought.entry) if bought.entry else None}))
