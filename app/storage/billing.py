"""What storage costs: the billing rules (one active at a time) and the daily bill.

A day is billed once, after it is over (UTC), for every tenant: one TenantStorageUsage row per tenant and
day records what was stored, uploaded and downloaded and what it cost, and PLATFORM-mode tenants are
charged by the active rule. Storage is priced per GiB-month in marginal tiers and prorated per day, a
month being DAYS_PER_MONTH days whatever the calendar says; traffic per GiB downloaded through us since
the previous bill. Fees are reckoned in milli-credits: what a day does not make a whole credit is
carried to the next day (below a milli-credit it is dropped), so a small tenant pays a credit every few
days rather than a credit a day.

The day's charge is one STORAGE ledger entry (reference `storage:YYYY-MM-DD`), never below zero
available: what the tenant cannot pay is added to its storage_fees_owed, which its next recharge pays
first and which, until then, stops new generations (402). The usage row is inserted first and is
unique per tenant and day, so a second run (or a run racing this one) finds the day billed and
charges nothing.
"""
from __future__ import annotations

import functools
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.billing import ledger
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidInput
from app.core.lookup import get_or_404
from app.core.paging import day_end, day_start
from app.core.transaction import atomic, in_atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.identity.tenants import get_tenant, update_tenant
from app.storage import metering
from app.storage.models import StorageBillingRule, StoredFile, TenantStorageUsage
from app.storage.quota import human_size
from app.webhooks import check_low_credits

GiB = 1024 ** 3
DAYS_PER_MONTH = 30  # the one definition of a month: a GiB-month price is charged over 30 days
MILLI = 1000
BILLING = Actor(kind="system", name="storage-billing")

RULE_FIELDS = ("name", "tier1_price", "tier1_limit_gib", "tier2_price", "tier2_limit_gib", "tier3_price",
               "traffic_price")
# The original design's rule: 10, 8 and 5 credits per GiB-month, bands ending at 100 and 500 GiB, 5 per GiB of traffic.
RULE_DEFAULTS = {"tier1_price": 10, "tier1_limit_gib": 100, "tier2_price": 8, "tier2_limit_gib": 500,
                 "tier3_price": 5, "traffic_price": 5}
MAX_PRICE = 10_000_000
MAX_LIMIT_GIB = 1_000_000_000  # an exbibyte


def list_rules() -> list[StorageBillingRule]:
    """The active rule first, then the newest."""
    return list(db.session.scalars(sa.select(StorageBillingRule).order_by(
        StorageBillingRule.is_active.desc(), StorageBillingRule.created_at.desc(), StorageBillingRule.id)))


def get_rule(rule_id) -> StorageBillingRule:
    return get_or_404(StorageBillingRule, rule_id, what="storage rule")


def active_rule() -> StorageBillingRule | None:
    return db.session.scalar(sa.select(StorageBillingRule).where(StorageBillingRule.is_active.is_(True)))


def _clean_rule(fields: dict, current: StorageBillingRule | None = None) -> dict:
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise InvalidInput(f"Cannot set {', '.join(sorted(unknown))}.", param=sorted(unknown)[0])
    fields = dict(fields)
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip() if isinstance(fields["name"], str) else fields["name"]
        if not isinstance(fields["name"], str) or not 1 <= len(fields["name"]) <= 80:
            raise InvalidInput("A rule needs a name of at most 80 characters.", param="name")
    for name in ("tier1_price", "tier2_price", "tier3_price", "traffic_price"):
        if name in fields and not _whole(fields[name], 0, MAX_PRICE):
            raise InvalidInput(f"{name} must be a whole number of credits from 0 to {MAX_PRICE:,}.", param=name)
    for name in ("tier1_limit_gib", "tier2_limit_gib"):
        if name in fields and not _whole(fields[name], 1, MAX_LIMIT_GIB):
            raise InvalidInput(f"{name} must be a whole number of GiB from 1 to {MAX_LIMIT_GIB:,}.", param=name)
    tier1 = fields.get("tier1_limit_gib", getattr(current, "tier1_limit_gib", None))
    tier2 = fields.get("tier2_limit_gib", getattr(current, "tier2_limit_gib", None))
    if tier1 is not None and tier2 is not None and tier2 <= tier1:
        raise InvalidInput("Tier 2 must end above where tier 1 ends.", param="tier2_limit_gib")
    return fields


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def create_rule(actor: Actor, *, active: bool = False, **fields) -> StorageBillingRule:
    """A rule with the original design's prices for whatever is not given; `active` makes it the one."""
    values = {**RULE_DEFAULTS, **_clean_rule(fields)}
    _clean_rule(values)
    if not values.get("name"):
        raise InvalidInput("A rule needs a name of at most 80 characters.", param="name")
    with _one_active_at_a_time():
        rule = StorageBillingRule(id=uuid.uuid4(), is_active=False, **values)
        db.session.add(rule)
        db.session.flush()
        audit.record(actor, "storage_rule.create", target_type="storage_rule", target_id=rule.id, changes=values)
        if active:
            _activate(rule, actor)
    return rule


def update_rule(rule_id, actor: Actor, changes: dict) -> StorageBillingRule:
    """Prices change for the days billed from now on; days already billed keep what they cost.
    `is_active` true makes it the active rule (the one before is deactivated); false leaves none."""
    changes = dict(changes)
    active = changes.pop("is_active", None)
    with _one_active_at_a_time():
        rule = get_or_404(StorageBillingRule, rule_id, what="storage rule", for_update=True)
        changed = audit.diff(rule, _clean_rule(changes, rule))
        if changed:
            audit.record(actor, "storage_rule.update", target_type="storage_rule", target_id=rule.id,
                         changes=changed)
        if active is True and not rule.is_active:
            _activate(rule, actor)
        elif active is False and rule.is_active:
            rule.is_active = False
            audit.record(actor, "storage_rule.deactivate", target_type="storage_rule", target_id=rule.id)
    return rule


def set_active(rule_id, actor: Actor, active: bool) -> StorageBillingRule:
    return update_rule(rule_id, actor, {"is_active": bool(active)})


def _activate(rule: StorageBillingRule, actor: Actor) -> None:
    previous = db.session.scalars(sa.select(StorageBillingRule).where(StorageBillingRule.is_active.is_(True),
                                                                      StorageBillingRule.id != rule.id)).all()
    for other in previous:
        other.is_active = False
    db.session.flush()  # the old one off before the new one on: the unique index allows one at a time
    rule.is_active = True
    db.session.flush()
    audit.record(actor, "storage_rule.activate", target_type="storage_rule", target_id=rule.id,
                 changes={"deactivated": [str(other.id) for other in previous]})


@contextmanager
def _one_active_at_a_time():
    """atomic(); two activations racing each other are refused by the unique index: the second is a 409."""
    try:
        with atomic():
            yield
    except sa.exc.IntegrityError:
        raise Conflict("Another storage rule was activated at the same moment; reload and try again.",
                       code="storage_rule_conflict") from None


def pricing(tenant: Tenant, rule: StorageBillingRule | None = None) -> dict | None:
    """The prices the tenant's storage is billed at, or None when it is not (its own bucket, or no rule)."""
    rule = rule or active_rule()
    if rule is None or tenant.oss_mode != "PLATFORM":
        return None
    return {**{name: getattr(rule, name) for name in RULE_FIELDS if name != "name"}, "days_per_month": DAYS_PER_MONTH}


def tenant_report(tenant_id, *, date_from: date | None = None, date_to: date | None = None) -> dict:
    """A tenant's storage for its admins and ours: the meter, quota and fees owed, the billed days of a
    range, and what it stores now by member and by kind."""
    tenant = get_tenant(tenant_id)
    days = metering.usage_by_day(tenant.id, date_from=date_from, date_to=date_to)
    stored = metering.stored_by(tenant.id)
    return {"tenant": tenant, "oss_mode": tenant.oss_mode, "used_bytes": tenant.storage_used_bytes,
            "quota_bytes": tenant.storage_quota_bytes, "fees_owed": tenant.storage_fees_owed,
            "files": stored["files"], "pricing": pricing(tenant), "from": days["from"], "to": days["to"],
            "days": days["days"], "by_member": stored["by_member"], "by_kind": stored["by_kind"]}


def set_quota(tenant_id, quota_bytes: int | None, actor: Actor) -> Tenant:
    """The tenant's storage quota (None: none); an audited tenant change like any other."""
    if quota_bytes is not None and (isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int)):
        raise InvalidInput("storage_quota_bytes must be a whole number of bytes, or null.", param="storage_quota_bytes")
    return update_tenant(tenant_id, actor, {"storage_quota_bytes": quota_bytes})


def storage_millicredits(rule: StorageBillingRule, stored_bytes: int) -> int:
    """One day of `stored_bytes` at the rule's marginal tiers, in milli-credits (rounded down)."""
    bands = ((0, rule.tier1_limit_gib, rule.tier1_price),
             (rule.tier1_limit_gib, rule.tier2_limit_gib, rule.tier2_price),
             (rule.tier2_limit_gib, None, rule.tier3_price))
    byte_credits = 0  # Σ bytes in each band × its price per GiB-month
    for low, high, price in bands:
        top = stored_bytes if high is None else min(stored_bytes, high * GiB)
        byte_credits += max(0, top - low * GiB) * price
    return byte_credits * MILLI // (GiB * DAYS_PER_MONTH)


def traffic_millicredits(rule: StorageBillingRule, downloaded_bytes: int) -> int:
    return downloaded_bytes * rule.traffic_price * MILLI // GiB


@dataclass(frozen=True)
class DayFee:
    storage_credits: int
    traffic_credits: int
    carry: int  # milli-credits left for the next day, below one credit

    @property
    def credits(self) -> int:
        return self.storage_credits + self.traffic_credits


def day_fee(rule: StorageBillingRule, stored_bytes: int, downloaded_bytes: int, carry: int) -> DayFee:
    """A day's whole credits, storage first, with the carry from the days before."""
    storage = carry + storage_millicredits(rule, stored_bytes)
    traffic = storage % MILLI + traffic_millicredits(rule, downloaded_bytes)
    return DayFee(storage // MILLI, traffic // MILLI, traffic % MILLI)


@dataclass
class BillRun:
    day: date
    rule: StorageBillingRule | None
    billed: int = 0  # tenants this run billed
    already: int = 0  # tenants billed for the day before it
    credits: int = 0  # what this run's days cost, paid or owed
    owed: int = 0  # of which the tenants could not pay


@functools.cache
def _claim_day(dialect_name: str):
    """INSERT the day's row unless it exists, RETURNING its id: no id means the day was billed already."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = TenantStorageUsage.__table__
    columns = ("id", "tenant_id", "day", "oss_mode", "upload_bytes", "file_count", "created_at")
    return (dialect.insert(table).values({name: sa.bindparam(name) for name in columns})
            .on_conflict_do_nothing(index_elements=["tenant_id", "day"]).returning(table.c.id))


_tenants = Tenant.__table__


def bill(day: date | None = None, *, now: datetime) -> BillRun:
    """Bill `day` (by default the one before `now`) for every tenant not billed for it yet, each tenant
    in its own transaction. A day is billed only once it is over."""
    if in_atomic():
        raise RuntimeError("bill() commits each tenant on its own; call it outside atomic()")
    today = now.date()
    day = day or today - timedelta(days=1)
    if day >= today:
        raise InvalidInput(f"{day} is not over yet (UTC): a day is billed once it has ended.", param="date")
    metering.flush_downloads(force=True)  # what this process counted; other processes flush on their own
    rule = active_rule()
    run = BillRun(day, rule)
    billed = set(db.session.scalars(sa.select(TenantStorageUsage.tenant_id).where(TenantStorageUsage.day == day)))
    run.already = len(billed)
    tenants = [(tenant_id, mode) for tenant_id, mode in db.session.execute(
        sa.select(Tenant.id, Tenant.oss_mode).order_by(Tenant.id)) if tenant_id not in billed]
    if not tenants:
        return run
    uploads, files = _uploads_on(day), _stored_files()
    rule_id = rule.id if rule is not None else None
    for tenant_id, mode in tenants:
        charged = _bill_tenant(tenant_id, mode, day, rule_id, uploads.get(tenant_id, 0), files.get(tenant_id, 0))
        if charged is None:
            run.already += 1
            continue
        run.billed += 1
        run.credits += charged.fee
        run.owed += charged.owed
    return run


def bill_due() -> BillRun:
    """The periodic job: yesterday, for the tenants not billed for it yet (the first run after midnight
    bills it; later runs find nothing to do)."""
    return bill(now=utcnow())


@dataclass(frozen=True)
class _Charged:
    fee: int
    owed: int


def _bill_tenant(tenant_id: uuid.UUID, mode: str, day: date, rule_id: uuid.UUID | None, upload_bytes: int,
                 file_count: int) -> _Charged | None:
    with atomic():
        claimed = db.session.execute(_claim_day(db.engine.dialect.name), {
            "id": uuid.uuid4(), "tenant_id": tenant_id, "day": day, "oss_mode": mode, "upload_bytes": upload_bytes,
            "file_count": file_count, "created_at": utcnow()}).scalar()
        if claimed is None:
            return None
        # Locked from here: the meter, the downloads and the carry are read as no one else can change them.
        tenant = get_tenant(tenant_id, for_update=True)
        rule = db.session.get(StorageBillingRule, rule_id) if rule_id else None
        stored, downloaded = tenant.storage_used_bytes, tenant.storage_download_unbilled_bytes
        charged = rule is not None and tenant.oss_mode == "PLATFORM"
        carry = tenant.storage_fee_carry_millicredits
        fee = day_fee(rule, stored, downloaded, carry) if charged else DayFee(0, 0, carry)
        db.session.execute(sa.update(TenantStorageUsage.__table__)
                           .where(TenantStorageUsage.__table__.c.id == claimed)
                           .values(oss_mode=tenant.oss_mode, storage_bytes=stored, download_bytes=downloaded,
                                   storage_credits=fee.storage_credits, traffic_credits=fee.traffic_credits,
                                   rule_id=rule_id if charged else None))
        db.session.execute(sa.update(_tenants).where(_tenants.c.id == tenant_id).values(
            storage_download_unbilled_bytes=_tenants.c.storage_download_unbilled_bytes - downloaded,
            storage_fee_carry_millicredits=fee.carry))
        owed = 0
        if fee.credits:
            result = ledger.charge_storage_fee(
                tenant_id, fee.credits, BILLING, reference=f"{ledger.STORAGE_DAY_REFERENCE}{day.isoformat()}",
                description=f"Storage {day.isoformat()}: {human_size(stored)} stored ({fee.storage_credits}), "
                            f"{human_size(downloaded)} downloaded ({fee.traffic_credits})")
            owed = result.owed
            if result.paid:
                check_low_credits(tenant_id)
    return _Charged(fee.credits, owed)


_CONFIRMED = ("STORED", "DELETING", "DELETED")


def _uploads_on(day: date) -> dict[uuid.UUID, int]:
    """Bytes each tenant stored during `day`: every object recorded then and confirmed, deleted since or not."""
    return dict(db.session.execute(
        sa.select(StoredFile.tenant_id, sa.func.sum(StoredFile.size_bytes))
        .where(StoredFile.status.in_(_CONFIRMED), StoredFile.created_at >= day_start(day),
               StoredFile.created_at < day_end(day))
        .group_by(StoredFile.tenant_id)).all())


def _stored_files() -> dict[uuid.UUID, int]:
    return dict(db.session.execute(
        sa.select(StoredFile.tenant_id, sa.func.count())
        .where(StoredFile.status == "STORED", StoredFile.deleted_at.is_(None))
        .group_by(StoredFile.tenant_id)).all())
