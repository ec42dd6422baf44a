"""Usage: one record per billable call (success or failure) and daily rollups kept as records are
written, so summaries read a few rollup rows and never scan raw records."""
from __future__ import annotations

import functools
import uuid
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.extensions import db
from app.generation.models import Generation, UsageDaily, UsageRecord
from app.identity.models import Tenant, TenantUser

ROLLED_UP = ("requests", "failures", "credits", "input_tokens", "output_tokens", "seconds", "quantity")


@functools.cache
def _rollup_upsert(dialect_name: str):
    """INSERT … ON CONFLICT DO UPDATE adding to the day's counters, built once per dialect: building
    it again on every generation cost more than running it."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    daily = UsageDaily.__table__
    columns = ("tenant_id", "day", "model", "caller", "is_test", "kind", *ROLLED_UP)
    insert = dialect.insert(daily).values({name: sa.bindparam(name) for name in columns})
    return insert.on_conflict_do_update(
        index_elements=["tenant_id", "day", "model", "caller", "is_test"],
        set_={name: daily.c[name] + insert.excluded[name] for name in ROLLED_UP},
    )


# Against the table, not the mapped class: the ORM's bulk-insert path costs more than the INSERT.
_INSERT_RECORD = sa.insert(UsageRecord.__table__)


def record(generation: Generation, *, status: str, credits: int, input_tokens: int | None = None,
           output_tokens: int | None = None, seconds: float | None = None, quantity: int | None = None,
           latency_ms: int | None = None) -> None:
    """Add the record and fold it into its day's rollup, in the caller's transaction."""
    now = utcnow()
    db.session.execute(_INSERT_RECORD, {
        "tenant_id": generation.tenant_id, "user_id": generation.user_id, "api_key_id": generation.api_key_id,
        "generation_id": generation.id, "model": generation.model, "kind": generation.kind,
        "operation": generation.params.get("operation") or f"{generation.kind}.generate", "status": status,
        "is_test": generation.is_test, "credits": credits, "input_tokens": input_tokens,
        "output_tokens": output_tokens, "seconds": seconds, "quantity": quantity, "latency_ms": latency_ms,
        "created_at": now})
    db.session.execute(_rollup_upsert(db.engine.dialect.name), {
        "tenant_id": generation.tenant_id, "day": now.date(), "model": generation.model,
        "caller": generation.caller, "is_test": generation.is_test, "kind": generation.kind,
        "requests": 1, "failures": int(status != "success"), "credits": credits,
        "input_tokens": input_tokens or 0, "output_tokens": output_tokens or 0, "seconds": seconds or 0.0,
        "quantity": quantity or 0})


def _range(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    date_to = date_to or utcnow().date()
    date_from = date_from or date_to - timedelta(days=29)
    if date_from > date_to:
        raise InvalidInput("from must not be after to.", param="from")
    if (date_to - date_from).days > 366:
        raise InvalidInput("A range of at most 366 days.", param="from")
    return date_from, date_to


GROUPS = {"day": UsageDaily.day, "model": UsageDaily.model, "member": UsageDaily.caller}


def summary(tenant_id: uuid.UUID, *, date_from: date | None = None, date_to: date | None = None,
            group_by: str = "day", include_test: bool = False) -> dict:
    if group_by not in GROUPS:
        raise InvalidInput("group_by must be day, model or member.", param="group_by")
    date_from, date_to = _range(date_from, date_to)
    column = GROUPS[group_by]
    where = [UsageDaily.tenant_id == tenant_id, UsageDaily.day >= date_from, UsageDaily.day <= date_to]
    if not include_test:
        where.append(UsageDaily.is_test.is_(False))
    rows = db.session.execute(
        sa.select(column.label("key"), sa.func.sum(UsageDaily.requests), sa.func.sum(UsageDaily.failures),
                  sa.func.sum(UsageDaily.credits), sa.func.sum(UsageDaily.input_tokens),
                  sa.func.sum(UsageDaily.output_tokens), sa.func.sum(UsageDaily.seconds),
                  sa.func.sum(UsageDaily.quantity))
        .where(*where).group_by(column).order_by(column)
    ).all()
    names = {}
    if group_by == "member":
        ids = [uuid.UUID(r.key) for r in rows if r.key != "api"]
        names = {str(u.id): u.username for u in db.session.scalars(sa.select(TenantUser).where(TenantUser.id.in_(ids)))}
    data = []
    for key, requests, failures, credits, input_tokens, output_tokens, seconds, quantity in rows:
        item = {"key": key.isoformat() if isinstance(key, date) else key, "requests": int(requests or 0),
                "failures": int(failures or 0), "credits": int(credits or 0),
                "input_tokens": int(input_tokens or 0), "output_tokens": int(output_tokens or 0),
                "seconds": float(seconds or 0), "quantity": int(quantity or 0)}
        if group_by == "member":
            item["username"] = "(API key)" if key == "api" else names.get(key)
        data.append(item)
    totals = {name: sum(item[name] for item in data) for name in ("requests", "failures", "credits")}
    return {"from": date_from.isoformat(), "to": date_to.isoformat(), "group_by": group_by, "data": data,
            "totals": totals}


def records(tenant_id: uuid.UUID, *, date_from: date | None = None, date_to: date | None = None,
            limit: int = 500) -> list[UsageRecord]:
    date_from, date_to = _range(date_from, date_to)
    start = datetime.combine(date_from, datetime.min.time(), tzinfo=timezone.utc)
    end = datetime.combine(date_to + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    return list(db.session.scalars(
        sa.select(UsageRecord).where(UsageRecord.tenant_id == tenant_id, UsageRecord.created_at >= start,
                                     UsageRecord.created_at < end)
        .order_by(UsageRecord.created_at.desc()).limit(min(max(1, limit), 5000))))


def by_operation(tenant_id: uuid.UUID, *, date_from: date | None = None, date_to: date | None = None) -> list[dict]:
    """The seed's summary: per operation (here: per kind), from the rollups."""
    date_from, date_to = _range(date_from, date_to)
    rows = db.session.execute(
        sa.select(UsageDaily.kind, sa.func.sum(UsageDaily.requests), sa.func.sum(UsageDaily.credits))
        .where(UsageDaily.tenant_id == tenant_id, UsageDaily.day >= date_from, UsageDaily.day <= date_to,
               UsageDaily.is_test.is_(False))
        .group_by(UsageDaily.kind).order_by(UsageDaily.kind)).all()
    return [{"operation": f"{kind}.generate", "count": int(n or 0), "credits": int(c or 0)} for kind, n, c in rows]


def tenant_report(tenant_id: uuid.UUID, *, date_from: date | None = None, date_to: date | None = None) -> dict:
    """A tenant's period for the dashboard: every day of it (days without calls as zeros, so a chart
    has no gaps), the per-model table and the totals, all from the rollups."""
    days = summary(tenant_id, date_from=date_from, date_to=date_to, group_by="day")
    models = summary(tenant_id, date_from=date_from, date_to=date_to, group_by="model")
    first, last = date.fromisoformat(days["from"]), date.fromisoformat(days["to"])
    seen = {item["key"]: item for item in days["data"]}
    empty = {"requests": 0, "failures": 0, "credits": 0, "input_tokens": 0, "output_tokens": 0, "seconds": 0.0,
             "quantity": 0}
    every_day = []
    for offset in range((last - first).days + 1):
        key = (first + timedelta(days=offset)).isoformat()
        every_day.append(seen.get(key) or {"key": key, **empty})
    return {"from": first, "to": last, "days": every_day, "models": models["data"], "totals": days["totals"]}


def platform_day(day: date, *, top: int = 5) -> dict:
    """One UTC day across tenants, live calls only: totals and the tenants that spent the most, from
    a single grouped query over the rollups."""
    rows = db.session.execute(
        sa.select(UsageDaily.tenant_id, Tenant.name, sa.func.sum(UsageDaily.requests),
                  sa.func.sum(UsageDaily.failures), sa.func.sum(UsageDaily.credits))
        .join(Tenant, Tenant.id == UsageDaily.tenant_id)
        .where(UsageDaily.day == day, UsageDaily.is_test.is_(False))
        .group_by(UsageDaily.tenant_id, Tenant.name)).all()
    tenants = [{"tenant_id": tenant_id, "name": name, "requests": int(requests or 0), "failures": int(failures or 0),
                "credits": int(credits or 0)} for tenant_id, name, requests, failures, credits in rows]
    tenants.sort(key=lambda t: (-t["credits"], -t["requests"], t["name"]))
    return {"day": day, "requests": sum(t["requests"] for t in tenants),
            "failures": sum(t["failures"] for t in tenants), "credits": sum(t["credits"] for t in tenants),
            "top_tenants": tenants[:top]}
