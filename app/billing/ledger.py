"""The credits ledger (docs/architecture.md, "Credits ledger"), modelled on two-phase transfers.

A tenant has `balance` and `held`; spendable = balance - held, and the database's CHECK constraints
keep both invariants. Every balance change is one conditional UPDATE in SQL (never read-then-write
in Python) plus its LedgerEntry, in the caller's transaction. A hold resolves exactly once:
settle, release and expire are compare-and-set on its status, so racing workers cannot both win.

These functions never commit: call them inside `app.core.transaction.atomic()` (or call the
committing operations in app/billing/accounts.py).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.billing.models import CreditHold, LedgerEntry
from app.core import cache
from app.core.db import utcnow
from app.core.errors import Conflict, DomainError, InvalidInput, NotFound
from app.extensions import db
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.storage.models import TenantStorageUsage

DEFAULT_HOLD_TTL = timedelta(minutes=30)
STORAGE_DAY_REFERENCE = "storage:"  # a daily storage fee's reference: storage:YYYY-MM-DD


class InsufficientCredits(DomainError):
    status = 402
    type = "insufficient_credits"
    code = "insufficient_credits"


class HoldAlreadyResolved(Conflict):
    code = "hold_already_resolved"


@dataclass(frozen=True)
class Account:
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


def _whole(amount, *, allow_zero: bool = False, param: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("Amount must be a whole number of credits.", param=param)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput("Amount must be positive." if not allow_zero else "Amount must not be negative.",
                           param=param)
    return amount


def account(tenant_id: uuid.UUID) -> Account:
    row = db.session.execute(sa.select(Tenant.balance, Tenant.held).where(Tenant.id == tenant_id)).first()
    if row is None:
        raise NotFound("No such tenant.", code="tenant_not_found")
    return Account(row.balance, row.held)


# The statements every generation runs, built once against the tables (not the mapped classes):
# plain Core skips the ORM's bulk-statement machinery, which cost more than the round trips.
_tenants, _holds, _entries = Tenant.__table__, CreditHold.__table__, LedgerEntry.__table__

_TAKE_HOLD = (sa.update(_tenants)
              .where(_tenants.c.id == sa.bindparam("tenant"),
                     _tenants.c.balance - _tenants.c.held >= sa.bindparam("amount"))
              .values(held=_tenants.c.held + sa.bindparam("amount")).returning(_tenants.c.id))
_INSERT_HOLD = sa.insert(_holds)
_RESOLVE = (sa.update(_holds).where(_holds.c.id == sa.bindparam("hold"), _holds.c.status == "HELD")
            .values(status=sa.bindparam("to"), resolved_at=sa.bindparam("now"))
            .returning(_holds.c.tenant_id, _holds.c.amount, _holds.c.reference))
_SETTLE = (sa.update(_holds).where(_holds.c.id == sa.bindparam("hold"), _holds.c.status == "HELD",
                                   _holds.c.amount >= sa.bindparam("charge"))
           .values(status="SETTLED", settled_amount=sa.bindparam("charge"), resolved_at=sa.bindparam("now"))
           .returning(_holds.c.tenant_id, _holds.c.amount, _holds.c.reference))
_CHARGE = (sa.update(_tenants).where(_tenants.c.id == sa.bindparam("tenant"))
           .values(balance=_tenants.c.balance - sa.bindparam("charge"), held=_tenants.c.held - sa.bindparam("freed"))
           .returning(_tenants.c.balance))
_UNHOLD = (sa.update(_tenants).where(_tenants.c.id == sa.bindparam("tenant"))
           .values(held=_tenants.c.held - sa.bindparam("freed")))
_CREDIT = (sa.update(_tenants).where(_tenants.c.id == sa.bindparam("tenant"))
           .values(balance=_tenants.c.balance + sa.bindparam("amount")).returning(_tenants.c.balance))
_INSERT_ENTRY = sa.insert(_entries)


def _entry(tenant_id, type_: str, amount: int, balance_after: int, actor: Actor, *, description: str = "",
           reference: str | None = None, hold_id: uuid.UUID | None = None) -> LedgerEntry:
    """Write the entry now and return it as written (a detached object, never to be added)."""
    entry = LedgerEntry(id=uuid.uuid4(), tenant_id=tenant_id, type=type_, amount=amount,
                        balance_after=balance_after, description=(description or "")[:255], actor_type=actor.kind,
                        actor_id=actor.id, actor_name=actor.name, reference=reference, hold_id=hold_id,
                        created_at=utcnow())
    db.session.execute(_INSERT_ENTRY, _columns(entry, _entries))
    return entry


def _columns(instance, table: sa.Table) -> dict:
    return {column.key: getattr(instance, column.key) for column in table.columns}


def hold(tenant_id: uuid.UUID, amount: int, *, reference: str | None = None, description: str | None = None,
         ttl: timedelta = DEFAULT_HOLD_TTL) -> CreditHold:
    """Set `amount` aside, or raise InsufficientCredits (402). One conditional UPDATE decides.
    Returns the hold as written (a detached object)."""
    amount = _whole(amount, allow_zero=True)
    granted = db.session.execute(_TAKE_HOLD, {"tenant": tenant_id, "amount": amount}).first()
    if granted is None:
        account(tenant_id)  # NotFound for a missing tenant, else it is a shortfall
        raise InsufficientCredits(f"Not enough credits: this needs {amount}.")
    now = utcnow()
    credit_hold = CreditHold(id=uuid.uuid4(), tenant_id=tenant_id, amount=amount, status="HELD",
                             settled_amount=None, reference=reference, description=description,
                             expires_at=now + ttl, resolved_at=None, created_at=now)
    db.session.execute(_INSERT_HOLD, _columns(credit_hold, _holds))
    return credit_hold


def _why_not_resolved(hold_id: uuid.UUID, settled_amount: int | None = None):
    found = db.session.get(CreditHold, hold_id, populate_existing=True)
    if found is None:
        raise NotFound("No such hold.", code="hold_not_found")
    if found.status != "HELD":
        raise HoldAlreadyResolved(f"Hold already {found.status.lower()}.")
    raise InvalidInput(f"Cannot settle {settled_amount} against a hold of {found.amount}.", param="amount")


def settle(hold_id: uuid.UUID, actual: int, actor: Actor, *, description: str = "") -> LedgerEntry | None:
    """Charge `actual` (≤ the hold) and return the rest to available. Returns the CONSUME entry,
    or None when nothing was charged (a zero charge moves no credits, so it writes no entry)."""
    actual = _whole(actual, allow_zero=True)
    resolved = db.session.execute(_SETTLE, {"hold": hold_id, "charge": actual, "now": utcnow()}).first()
    if resolved is None:
        _why_not_resolved(hold_id, actual)
    balance = db.session.execute(
        _CHARGE, {"tenant": resolved.tenant_id, "charge": actual, "freed": resolved.amount}).scalar_one()
    if actual == 0:
        return None
    return _entry(resolved.tenant_id, "CONSUME", -actual, balance, actor, description=description,
                  reference=resolved.reference, hold_id=hold_id)


def _unhold(hold_id: uuid.UUID, status: str) -> bool:
    resolved = db.session.execute(_RESOLVE, {"hold": hold_id, "to": status, "now": utcnow()}).first()
    if resolved is None:
        return False
    db.session.execute(_UNHOLD, {"tenant": resolved.tenant_id, "freed": resolved.amount})
    return True


def release(hold_id: uuid.UUID) -> bool:
    """Void a hold (any failure). True if this call released it; False if it was already resolved."""
    return _unhold(hold_id, "RELEASED")


def expire(hold_id: uuid.UUID) -> bool:
    """Like release, for holds whose request died; the sweep calls it."""
    return _unhold(hold_id, "EXPIRED")


def due_holds(now: datetime, limit: int = 500, *, created_before: datetime | None = None) -> list[uuid.UUID]:
    """Open holds past their expiry; with `created_before`, also those taken before then, whatever
    their expiry (an operator cleaning up after a crash)."""
    due = CreditHold.expires_at <= now
    if created_before is not None:
        due = sa.or_(due, CreditHold.created_at <= created_before)
    return list(db.session.scalars(
        sa.select(CreditHold.id).where(CreditHold.status == "HELD", due)
        .order_by(CreditHold.expires_at).limit(limit)
    ))


def credit(tenant_id: uuid.UUID, type_: str, amount: int, actor: Actor, *, description: str = "",
           reference: str | None = None) -> LedgerEntry:
    """Add credits (RECHARGE, REFUND, positive ADJUST)."""
    amount = _whole(amount)
    balance = db.session.execute(_CREDIT, {"tenant": tenant_id, "amount": amount}).scalar()
    if balance is None:
        raise NotFound("No such tenant.", code="tenant_not_found")
    return _entry(tenant_id, type_, amount, balance, actor, description=description, reference=reference)


def debit(tenant_id: uuid.UUID, type_: str, amount: int, actor: Actor, *, description: str = "",
          reference: str | None = None, extra_values: dict | None = None) -> LedgerEntry:
    """Take credits from what is available (negative ADJUST, STORAGE, SEAT_PURCHASE), never below
    zero available. `extra_values` are set on the tenant in the same UPDATE (e.g. more seats)."""
    amount = _whole(amount)
    balance = db.session.execute(
        sa.update(_tenants).where(_tenants.c.id == tenant_id, _tenants.c.balance - _tenants.c.held >= amount)
        .values(balance=_tenants.c.balance - amount, **(extra_values or {}))
        .returning(_tenants.c.balance)
    ).scalar()
    if balance is None:
        account(tenant_id)
        raise InsufficientCredits(f"Not enough available credits: this needs {amount}.")
    return _entry(tenant_id, type_, -amount, balance, actor, description=description, reference=reference)


@dataclass(frozen=True)
class StorageCharge:
    entry: LedgerEntry | None  # None when nothing could be taken
    paid: int
    owed: int  # added to the tenant's storage_fees_owed


def charge_storage_fee(tenant_id: uuid.UUID, fee: int, actor: Actor, *, description: str,
                       reference: str) -> StorageCharge:
    """A storage fee, taken from what is available and never below zero: the rest is added to the
    tenant's storage_fees_owed, which its next recharge pays first. Call it with the tenant's row
    locked (the daily bill does), so what is available cannot change before the debit; the debit is
    still the conditional UPDATE, which would refuse rather than overdraw."""
    fee = _whole(fee, allow_zero=True)
    paid = min(fee, max(account(tenant_id).available, 0))
    owed = fee - paid
    more_owed = {"storage_fees_owed": _tenants.c.storage_fees_owed + owed} if owed else None
    if owed:
        cache.changed("tenants")  # fees owed are cached with the tenant's access: they stop new generations
    entry = None
    if paid:
        if owed:
            description = f"{description}; {owed} of {fee} owed, taken from the next recharge"
        entry = debit(tenant_id, "STORAGE", paid, actor, description=description, reference=reference,
                      extra_values=more_owed)
    elif owed:
        db.session.execute(sa.update(_tenants).where(_tenants.c.id == tenant_id).values(**more_owed))
    return StorageCharge(entry, paid, owed)


def collect_owed_storage_fees(tenant_id: uuid.UUID, recharged: int, actor: Actor, *,
                              reference: str | None = None) -> LedgerEntry | None:
    """In a recharge's transaction, right after its credit (whose UPDATE holds the tenant's row): the
    storage fees the tenant owes, up to what was recharged, as a STORAGE entry of their own."""
    owed = db.session.scalar(sa.select(_tenants.c.storage_fees_owed).where(_tenants.c.id == tenant_id))
    taken = min(owed or 0, recharged)
    if taken <= 0:
        return None
    cache.changed("tenants")
    return debit(tenant_id, "STORAGE", taken, actor, reference=reference,
                 description=f"Storage fees owed: {taken} of {owed} credits, paid from a recharge",
                 extra_values={"storage_fees_owed": _tenants.c.storage_fees_owed - taken})


def verify() -> list[str]:
    """Check every tenant: balance = Σ entries, held = Σ HELD holds, each hold resolved once and
    charged as settled. Returns one line per offence (empty when the ledger is sound)."""
    problems = []
    entry_sum = (sa.select(LedgerEntry.tenant_id, sa.func.sum(LedgerEntry.amount).label("total"))
                 .group_by(LedgerEntry.tenant_id).subquery())
    held_sum = (sa.select(CreditHold.tenant_id, sa.func.sum(CreditHold.amount).label("total"))
                .where(CreditHold.status == "HELD").group_by(CreditHold.tenant_id).subquery())
    rows = db.session.execute(
        sa.select(Tenant.id, Tenant.name, Tenant.balance, Tenant.held,
                  sa.func.coalesce(entry_sum.c.total, 0), sa.func.coalesce(held_sum.c.total, 0))
        .outerjoin(entry_sum, entry_sum.c.tenant_id == Tenant.id)
        .outerjoin(held_sum, held_sum.c.tenant_id == Tenant.id)
    ).all()
    for tenant_id, name, balance, held, entries, holds in rows:
        if balance != entries:
            problems.append(f"tenant {tenant_id} ({name}): balance {balance} != sum of entries {entries}")
        if held != holds:
            problems.append(f"tenant {tenant_id} ({name}): held {held} != sum of HELD holds {holds}")

    charged = (sa.select(LedgerEntry.hold_id, sa.func.count().label("n"), sa.func.sum(LedgerEntry.amount).label("total"))
               .where(LedgerEntry.hold_id.is_not(None)).group_by(LedgerEntry.hold_id).subquery())
    holds = db.session.execute(
        sa.select(CreditHold.id, CreditHold.status, CreditHold.settled_amount, charged.c.n, charged.c.total)
        .outerjoin(charged, charged.c.hold_id == CreditHold.id)
        .where(sa.or_(charged.c.n.is_not(None), CreditHold.status == "SETTLED"))
    ).all()
    for hold_id, status, settled_amount, count, total in holds:
        count, total = count or 0, total or 0
        if count > 1:
            problems.append(f"hold {hold_id}: charged {count} times")
        elif status != "SETTLED" and count:
            problems.append(f"hold {hold_id}: {status} but charged {-total}")
        elif status == "SETTLED" and -total != (settled_amount or 0):
            problems.append(f"hold {hold_id}: settled {settled_amount} but charged {-total}")
    return problems + _verify_storage_fees()


def _verify_storage_fees() -> list[str]:
    """Every storage fee a daily bill charged is either a STORAGE entry (that day, or from a later
    recharge) or still owed; each day is charged at most once."""
    problems = []
    billed = (sa.select(TenantStorageUsage.tenant_id,
                        sa.func.sum(TenantStorageUsage.storage_credits + TenantStorageUsage.traffic_credits)
                        .label("total"))
              .group_by(TenantStorageUsage.tenant_id).subquery())
    paid = (sa.select(LedgerEntry.tenant_id, (-sa.func.sum(LedgerEntry.amount)).label("total"))
            .where(LedgerEntry.type == "STORAGE").group_by(LedgerEntry.tenant_id).subquery())
    rows = db.session.execute(
        sa.select(Tenant.id, Tenant.name, Tenant.storage_fees_owed, sa.func.coalesce(billed.c.total, 0),
                  sa.func.coalesce(paid.c.total, 0))
        .outerjoin(billed, billed.c.tenant_id == Tenant.id).outerjoin(paid, paid.c.tenant_id == Tenant.id)
    ).all()
    for tenant_id, name, owed, billed_total, paid_total in rows:
        if billed_total != paid_total + owed:
            problems.append(f"tenant {tenant_id} ({name}): storage fees billed {billed_total} != paid {paid_total} "
                            f"+ owed {owed}")
    twice = db.session.execute(
        sa.select(LedgerEntry.tenant_id, LedgerEntry.reference, sa.func.count())
        .where(LedgerEntry.type == "STORAGE", LedgerEntry.reference.like(f"{STORAGE_DAY_REFERENCE}%"))
        .group_by(LedgerEntry.tenant_id, LedgerEntry.reference).having(sa.func.count() > 1)
    ).all()
    for tenant_id, reference, count in twice:
        problems.append(f"tenant {tenant_id}: {reference} charged {count} times")
    return problems
