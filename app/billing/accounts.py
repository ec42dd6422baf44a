"""Money in and out: recharge, adjustment, seat purchase, the account summary and the transaction
history. Each public function is one transaction. (Expired holds are swept with their generations, in
app/generation/sweep.py.)"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from flask import current_app

from app.billing import idempotency, ledger
from app.billing.models import ENTRY_TYPES, LedgerEntry, PlatformSetting
from app.core.errors import InvalidInput
from app.core.paging import day_end, day_start, newest_first, one_page
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit, tenants
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.identity.tenants import get_tenant
from app.webhooks import check_low_credits

SEAT_PRICE = "seat_price_credits"


@dataclass
class Movement:
    """Credits that moved: the entry written and the account right after it."""

    entry: LedgerEntry
    account: ledger.Account
    replayed: bool = False  # a retried request: the entry and figures are the first request's


def recharge(tenant_id, amount: int, actor: Actor, *, description: str | None = None,
             idempotency_key: str | None = None) -> Movement:
    tenant = get_tenant(tenant_id)
    limit = current_app.config["RECHARGE_MAX_CREDITS"]
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= limit:
        raise InvalidInput(f"Amount must be a whole number of credits from 1 to {limit:,}.", param="amount")
    description = (description or "").strip() or "Recharge"
    key = idempotency.check_key(idempotency_key)

    def operation() -> dict:
        entry = ledger.credit(tenant.id, "RECHARGE", amount, actor, description=description)
        # Storage fees the tenant could not pay are taken first, so its generations start again.
        fees = ledger.collect_owed_storage_fees(tenant.id, amount, actor, reference=f"recharge:{entry.id}")
        changes = {"amount": amount, "description": description, "entry_id": str(entry.id)}
        if fees is not None:
            changes["storage_fees_paid"] = -fees.amount
        audit.record(actor, "credits.recharge", target_type="tenant", target_id=tenant.id, tenant_id=tenant.id,
                     changes=changes)
        check_low_credits(tenant.id)  # back above the threshold: the next fall alerts again
        account = ledger.account(tenant.id)
        return {"entry_id": str(entry.id), "balance": account.balance, "held": account.held}

    result, replayed = idempotency.run_once(tenant.id, "admin.recharge", key,
                                            {"amount": amount, "description": description}, operation)
    return Movement(db.session.get(LedgerEntry, uuid.UUID(result["entry_id"])),
                    ledger.Account(result["balance"], result["held"]), replayed)


@atomic()
def adjust(tenant_id, amount: int, reason: str, actor: Actor) -> Movement:
    """Correct a balance up or down, with a reason; never below zero available."""
    tenant = get_tenant(tenant_id)
    limit = current_app.config["RECHARGE_MAX_CREDITS"]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(amount) > limit:
        raise InvalidInput(f"Adjustment must be a non-zero whole number of credits up to ±{limit:,}.",
                           param="amount")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required for an adjustment.", param="reason")
    if amount > 0:
        entry = ledger.credit(tenant.id, "ADJUST", amount, actor, description=reason)
    else:
        try:
            entry = ledger.debit(tenant.id, "ADJUST", -amount, actor, description=reason)
        except ledger.InsufficientCredits:
            raise InvalidInput(f"Cannot take {-amount} credits: only {ledger.account(tenant.id).available} "
                               "are available.", code="adjustment_exceeds_available", param="amount") from None
    audit.record(actor, "credits.adjust", target_type="tenant", target_id=tenant.id, tenant_id=tenant.id,
                 changes={"amount": amount, "reason": reason, "entry_id": str(entry.id)})
    check_low_credits(tenant.id)
    return Movement(entry, ledger.account(tenant.id))


def seat_price() -> int:
    setting = db.session.get(PlatformSetting, SEAT_PRICE)
    if setting is not None:
        return int(setting.value["credits"])
    return current_app.config["SEAT_PRICE_CREDITS"]


def set_seat_price(credits: int, actor: Actor) -> int:
    if isinstance(credits, bool) or not isinstance(credits, int) or not 0 <= credits <= 10_000_000:
        raise InvalidInput("Seat price must be a whole number of credits from 0 to 10,000,000.", param="credits")
    old = seat_price()
    with atomic():
        setting = db.session.get(PlatformSetting, SEAT_PRICE) or PlatformSetting(name=SEAT_PRICE)
        setting.value = {"credits": credits}
        db.session.add(setting)
        audit.record(actor, "settings.seat_price", target_type="setting", target_id=SEAT_PRICE,
                     changes={"credits": [old, credits]})
    return credits


@dataclass
class SeatPurchase:
    account: ledger.Account
    max_seats: int
    credits: int
    entry: LedgerEntry | None  # None when seats are free


@atomic()
def purchase_seats(tenant_id: uuid.UUID, count: int, actor: Actor) -> SeatPurchase:
    """Debit SEAT_PURCHASE and raise max_seats in one UPDATE (402 when credits are short)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise InvalidInput("count must be a whole number from 1 to 1000.", param="count")
    price = seat_price()
    total = price * count
    description = f"{count} seat{'s' if count > 1 else ''} at {price} credits"
    if total:
        entry = ledger.debit(tenant_id, "SEAT_PURCHASE", total, actor, description=description,
                             extra_values={"max_seats": Tenant.max_seats + count})
    else:
        db.session.execute(sa.update(Tenant).where(Tenant.id == tenant_id)
                           .values(max_seats=Tenant.max_seats + count)
                           .execution_options(synchronize_session=False))
        entry = None
    max_seats = db.session.scalar(sa.select(Tenant.max_seats).where(Tenant.id == tenant_id))
    if max_seats > tenants.MAX_SEATS_LIMIT:  # checked after the UPDATE, so no race; atomic() undoes it
        raise InvalidInput(f"A tenant can have at most {tenants.MAX_SEATS_LIMIT:,} seats.", param="count")
    audit.record(actor, "seats.purchase", target_type="tenant", target_id=tenant_id, tenant_id=tenant_id,
                 changes={"count": count, "price": price, "max_seats": max_seats})
    check_low_credits(tenant_id)
    return SeatPurchase(ledger.account(tenant_id), max_seats, total, entry)


@dataclass
class Page:
    entries: list[LedgerEntry]
    next_cursor: str | None


def list_entries(tenant_id: uuid.UUID, *, type_: str | None = None, date_from: date | None = None,
                 date_to: date | None = None, cursor: str | None = None, limit: int = 50) -> Page:
    """Newest first, keyset-paginated on (created_at, id): no OFFSET scans however deep the page."""
    if type_ is not None and type_ not in ENTRY_TYPES:
        raise InvalidInput(f"type must be one of {', '.join(ENTRY_TYPES)}.", param="type")
    limit = min(max(1, limit), 200)
    query = sa.select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id)
    if type_:
        query = query.where(LedgerEntry.type == type_)
    query = newest_first(query, LedgerEntry, date_from=date_from, date_to=date_to, cursor=cursor)
    return Page(*one_page(list(db.session.scalars(query.limit(limit + 1))), limit))


def iter_entries(tenant_id: uuid.UUID, *, type_: str | None = None, date_from: date | None = None,
                 date_to: date | None = None, batch: int = 200) -> Iterator[LedgerEntry]:
    """Every matching entry, newest first, fetched `batch` at a time through list_entries, so an
    export never holds a whole ledger in memory. The filters are checked now, not mid-stream."""
    first = list_entries(tenant_id, type_=type_, date_from=date_from, date_to=date_to, limit=batch)

    def entries():
        page = first
        while True:
            yield from page.entries
            if page.next_cursor is None:
                return
            page = list_entries(tenant_id, type_=type_, date_from=date_from, date_to=date_to,
                                cursor=page.next_cursor, limit=batch)

    return entries()


@dataclass
class Activity:
    """Credits that moved in a period (all positive except `adjusted`, which is net) and what is
    held right now, for one tenant or, with no tenant, the whole platform."""

    tenant_id: uuid.UUID | None
    tenant_name: str | None
    recharged: int = 0
    consumed: int = 0
    refunded: int = 0
    adjusted: int = 0
    seat_purchases: int = 0
    storage: int = 0
    held: int = 0


@dataclass
class Overview:
    date_from: date
    date_to: date
    total: Activity
    tenants: list[Activity]


def overview(date_from: date, date_to: date) -> Overview:
    """Ledger activity from date_from to date_to (whole UTC days, both included), per tenant with
    any activity or held credits, most consumption first. One grouped query over the ledger."""
    if date_from > date_to:
        raise InvalidInput("The start date must not be after the end date.", param="date_from")

    def total_of(type_: str, sign: int = 1):
        # CONSUME, SEAT_PURCHASE and STORAGE are stored negative; reported here as positive spend.
        amount = sa.case((LedgerEntry.type == type_, LedgerEntry.amount), else_=0)
        return (sign * sa.func.coalesce(sa.func.sum(amount), 0)).label(type_.lower())

    consumed = total_of("CONSUME", -1)
    period = sa.and_(LedgerEntry.tenant_id == Tenant.id, LedgerEntry.created_at >= day_start(date_from),
                     LedgerEntry.created_at < day_end(date_to))
    rows = db.session.execute(
        sa.select(Tenant.id, Tenant.name, total_of("RECHARGE"), consumed, total_of("REFUND"), total_of("ADJUST"),
                  total_of("SEAT_PURCHASE", -1), total_of("STORAGE", -1), Tenant.held)
        .outerjoin(LedgerEntry, period)
        .group_by(Tenant.id, Tenant.name, Tenant.held)
        .having(sa.or_(sa.func.count(LedgerEntry.id) > 0, Tenant.held > 0))
        .order_by(consumed.desc(), Tenant.name)
    ).all()
    activities = [Activity(*row) for row in rows]
    total = Activity(None, None, *(sum(getattr(a, name) for a in activities) for name in
                                   ("recharged", "consumed", "refunded", "adjusted", "seat_purchases", "storage",
                                    "held")))
    return Overview(date_from, date_to, total, activities)
