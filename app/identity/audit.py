"""The audit trail. Services call `record` inside the transaction that makes the change, so an
audited change and its entry commit together or not at all."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import sqlalchemy as sa

from app.core.db import parse_uuid
from app.extensions import db
from app.identity.models import AuditLog, Tenant


@dataclass(frozen=True)
class Actor:
    """Who is acting, passed explicitly into services (they never read request globals)."""

    kind: str  # platform_admin | tenant_admin | api_key | system
    id: str | None = None
    name: str | None = None
    tenant_id: uuid.UUID | None = None
    ip: str | None = None


SYSTEM = Actor(kind="system", name="system")


def record(actor: Actor, action: str, *, target_type: str, target_id=None, tenant_id=None,
           changes: dict | None = None) -> AuditLog:
    entry = AuditLog(
        actor_type=actor.kind,
        actor_id=actor.id,
        actor_name=actor.name,
        tenant_id=tenant_id if tenant_id is not None else actor.tenant_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        ip=actor.ip,
        changes=changes or {},
    )
    db.session.add(entry)
    return entry


def diff(obj, new_values: dict) -> dict:
    """Apply `new_values` to `obj`, returning {field: [old, new]} for what really changed."""
    changed = {}
    for field, value in new_values.items():
        old = getattr(obj, field)
        if old != value:
            setattr(obj, field, value)
            changed[field] = [_plain(old), _plain(value)]
    return changed


def _plain(value):
    return value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)


@dataclass
class AuditRow:
    entry: AuditLog
    tenant_name: str | None


def list_entries(*, action: str | None = None, tenant: str | None = None, actor_name: str | None = None,
                 date_from: date | None = None, date_to: date | None = None, page: int = 1,
                 per_page: int = 50) -> tuple[list[AuditRow], int]:
    """One page of entries, newest first, and the total matching.

    `action` matches as a prefix ("tenant." finds every tenant action); `tenant` is a tenant id or part
    of its name; `actor_name` is part of the actor's name; dates are whole UTC days, both inclusive.
    """
    page, per_page = max(1, page), min(max(1, per_page), 200)
    where = []
    if action and action.strip():
        where.append(AuditLog.action.startswith(action.strip().lower(), autoescape=True))
    if tenant and tenant.strip():
        tenant_uuid = parse_uuid(tenant.strip())
        if tenant_uuid is not None:
            where.append(AuditLog.tenant_id == tenant_uuid)
        else:
            where.append(sa.func.lower(Tenant.name).contains(tenant.strip().lower(), autoescape=True))
    if actor_name and actor_name.strip():
        where.append(sa.func.lower(sa.func.coalesce(AuditLog.actor_name, ""))
                     .contains(actor_name.strip().lower(), autoescape=True))
    if date_from is not None:
        where.append(AuditLog.created_at >= datetime.combine(date_from, time.min, tzinfo=timezone.utc))
    if date_to is not None:
        where.append(AuditLog.created_at < datetime.combine(date_to + timedelta(days=1), time.min,
                                                            tzinfo=timezone.utc))
    joined = sa.select(AuditLog, Tenant.name).outerjoin(Tenant, Tenant.id == AuditLog.tenant_id).where(*where)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(joined.subquery()))
    rows = db.session.execute(joined.order_by(AuditLog.created_at.desc(), AuditLog.id)
                              .limit(per_page).offset((page - 1) * per_page)).all()
    return [AuditRow(entry, name) for entry, name in rows], total


def known_actions() -> list[str]:
    """The distinct actions recorded so far, for a filter's choices."""
    return list(db.session.scalars(sa.select(AuditLog.action).distinct().order_by(AuditLog.action)))
