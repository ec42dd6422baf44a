"""The audit trail. Services call `record` inside the transaction that makes the change, so an
audited change and its entry commit together or not at all."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.extensions import db
from app.models import AuditLog


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
