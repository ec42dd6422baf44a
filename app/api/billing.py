"""Credits as a tenant sees them: the account, the ledger, and buying seats."""
from __future__ import annotations

from flask import jsonify

from app.api import bp
from app.api.auth import AUTH, current_principal, tenant_admin_required
from app.api.openapi import endpoint
from app.billing import accounts as billing
from app.billing import ledger
from app.schemas import dump
from app.schemas.billing import (AccountOut, SeatsIn, SeatsOut, TransactionListOut, TransactionsQuery, account_out,
                                 entry_out)


@bp.get("/account")
@endpoint("Credits: balance, held by running requests, and available", response=AccountOut, auth=AUTH,
          tags=("billing",))
def account():
    return jsonify(account_out(ledger.account(current_principal().tenant_id)))


@bp.get("/transactions")
@endpoint("The tenant's ledger, newest first, cursor-paginated", query=TransactionsQuery,
          response=TransactionListOut, auth=AUTH, tags=("billing",))
def transactions(query: TransactionsQuery):
    page = billing.list_entries(current_principal().tenant_id, type_=query.type, date_from=query.date_from,
                                date_to=query.date_to, cursor=query.cursor, limit=query.limit)
    return jsonify({"object": "list", "data": [entry_out(e) for e in page.entries],
                    "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor})


@bp.post("/tenant/seats")
@endpoint("Buy seats with credits (tenant admin)", body=SeatsIn, response=SeatsOut, auth=AUTH,
          errors=(402, 403), tags=("tenant",))
@tenant_admin_required
def buy_seats(body: SeatsIn):
    principal = current_principal()
    bought = billing.purchase_seats(principal.tenant_id, body.count, principal.actor())
    return jsonify(dump(SeatsOut, {**account_out(bought.account), "max_seats": bought.max_seats,
                                   "credits": bought.credits,
                                   "entry": entry_out(bought.entry) if bought.entry else None}))
