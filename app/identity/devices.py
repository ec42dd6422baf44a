"""Device binding: a user's first login binds the device; any other device is refused until an
admin unbinds the bound one. Seats and devices are how tenants are licensed."""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.core import cache
from app.core.db import utcnow
from app.core.errors import Forbidden, InvalidInput
from app.core.lookup import get_for_tenant
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import Tenant, TenantDevice, TenantUser, UserSession


def require_device_id(tenant: Tenant, device_id: str | None) -> str | None:
    device_id = (device_id or "").strip() or None
    if tenant.require_device and device_id is None:
        raise InvalidInput("This tenant requires a device_id to log in.", code="device_id_required",
                           param="device_id")
    if device_id is not None and len(device_id) > 128:
        raise InvalidInput("device_id must be at most 128 characters.", param="device_id")
    return device_id


def check_device(user: TenantUser, device_id: str | None, device_info: dict | None) -> None:
    """Bind on first use, refuse a different device (403 device_not_bound). The caller commits."""
    if not user.tenant.require_device or device_id is None:
        return
    device = db.session.scalar(sa.select(TenantDevice).where(TenantDevice.user_id == user.id))
    if device is None:
        device = TenantDevice(tenant_id=user.tenant_id, user_id=user.id, fingerprint=device_id,
                              device_info=device_info)
        try:
            with db.session.begin_nested():
                db.session.add(device)
        except IntegrityError:  # a concurrent first login bound another device a moment ago
            device = db.session.scalar(sa.select(TenantDevice).where(TenantDevice.user_id == user.id))
    if device.fingerprint != device_id:
        raise Forbidden("This account is bound to another device; ask your admin to unbind it.",
                        code="device_not_bound")
    device.last_seen_at = utcnow()
    if device_info:
        device.device_info = device_info


def list_devices(tenant_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> list[TenantDevice]:
    query = sa.select(TenantDevice).where(TenantDevice.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(TenantDevice.user_id == user_id)
    return list(db.session.scalars(query.order_by(TenantDevice.last_seen_at.desc())))


@atomic()
def unbind_device(tenant_id: uuid.UUID, device_id, actor: Actor) -> None:
    device = get_for_tenant(TenantDevice, tenant_id, device_id, what="device")
    audit.record(actor, "device.unbind", target_type="tenant_device", target_id=device.id, tenant_id=tenant_id,
                 changes={"user_id": str(device.user_id), "fingerprint": device.fingerprint})
    # The unbound device must not keep refreshing its way in while the user moves to a new one.
    cache.changed("user_sessions")
    db.session.execute(
        sa.update(UserSession).where(UserSession.user_id == device.user_id,
                                     UserSession.device_fingerprint == device.fingerprint,
                                     UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="device_unbound")
    )
    db.session.delete(device)
