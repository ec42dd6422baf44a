"""Credits on the wire: accounts, ledger entries, recharges, adjustments and seats."""
from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from app.schemas import Body, Out, Query, Timestamp, dump


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
    created_at: Timestamp


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
                           "created_at": entry.created_at})


def account_out(account) -> dict:
    return dump(AccountOut, account)


class RechargeIn(Body):
    amount: int = Field(gt=0, description="Whole credits, up to RECHARGE_MAX_CREDITS")
    description: str | None = Field(default=None, max_length=255)


class AdjustIn(Body):
    amount: int = Field(description="Positive adds, negative takes away; never below zero available")
    reason: str = Field(min_length=1, max_length=255)


class MoneyOut(AccountOut):
    entry: EntryOut


class SeatPriceIn(Body):
    credits: int = Field(ge=0, le=10_000_000)
