"""Tenant users (members and tenant admins): create, change, deactivate, with seats enforced."""
from __future__ import annotations

import re
import uuid

import sqlalchemy as sa

from app.core import cache
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidInput
from app.core.lookup import get_for_tenant, get_or_404
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import USER_ROLES, Tenant, TenantUser, UserSession
from app.identity.passwords import hash_password

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$")
EDITABLE = ("nickname", "is_active", "password")
NICKNAME_MAX = 80


def _nickname(value: str | None) -> str | None:
    value = (value or "").strip() or None
    if value is not None and len(value) > NICKNAME_MAX:
        raise InvalidInput(f"Nickname must be at most {NICKNAME_MAX} characters.", param="nickname")
    return value


def seats_used(tenant_id: uuid.UUID) -> int:
    """Active members hold seats; tenant admins do not."""
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(TenantUser).where(
            TenantUser.tenant_id == tenant_id, TenantUser.role == "member", TenantUser.is_active.is_(True)
        )
    )


def _take_seat(tenant: Tenant) -> None:
    # The caller holds the tenant row lock (FOR UPDATE), so two concurrent adds cannot both see a free seat.
    if seats_used(tenant.id) >= tenant.max_seats:
        raise Conflict(f"All {tenant.max_seats} seats are in use; deactivate a member or buy more seats.",
                       code="seat_limit_reached")


def add_user(tenant: Tenant, actor: Actor, *, username: str, password: str, nickname: str | None = None,
             role: str = "member") -> TenantUser:
    """Add a user to the session (the caller commits and must hold the tenant row lock)."""
    username = (username or "").strip()
    if not USERNAME_PATTERN.match(username):
        raise InvalidInput("Username must be 3 to 64 letters, digits or _ . @ - and start with a letter or digit.",
                           param="username")
    if role not in USER_ROLES:
        raise InvalidInput("Role must be 'member' or 'admin'.", param="role")
    nickname = _nickname(nickname)
    password_hash = hash_password(password)
    taken = db.session.scalar(sa.select(TenantUser.id).where(
        TenantUser.tenant_id == tenant.id, sa.func.lower(TenantUser.username) == username.lower()))
    if taken:
        raise Conflict(f"Username {username!r} is already taken in this tenant.", code="username_taken",
                       param="username")
    if role == "member":
        _take_seat(tenant)
    user = TenantUser(tenant_id=tenant.id, username=username, password_hash=password_hash,
                      nickname=nickname, role=role)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.create", target_type="tenant_user", target_id=user.id, tenant_id=tenant.id,
                 changes={"username": username, "role": role, "nickname": user.nickname})
    return user


@atomic()
def create_user(tenant_id: uuid.UUID, actor: Actor, **fields) -> TenantUser:
    tenant = get_or_404(Tenant, tenant_id, what="tenant", for_update=True)
    user = add_user(tenant, actor, **fields)
    return user


@atomic()
def update_user(tenant_id: uuid.UUID, user_id, actor: Actor, changes: dict) -> TenantUser:
    """Apply {nickname?, is_active?, password?}. Deactivation and a new password end the user's sessions."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    # None must not read as "deactivate" (falsy) or reach the password hasher.
    if "is_active" in changes and not isinstance(changes["is_active"], bool):
        raise InvalidInput("is_active must be true or false.", param="is_active")
    if "password" in changes and not isinstance(changes["password"], str):
        raise InvalidInput("password must be a string.", param="password")
    user = get_for_tenant(TenantUser, tenant_id, user_id, what="member")
    audited = {}
    if "nickname" in changes:
        audited |= audit.diff(user, {"nickname": _nickname(changes["nickname"])})
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        end_sessions(user.id, reason="password_changed")
        audited["password"] = "changed"
    if "is_active" in changes and changes["is_active"] != user.is_active:
        if changes["is_active"] and user.role == "member":
            _take_seat(get_or_404(Tenant, tenant_id, what="tenant", for_update=True))
        if not changes["is_active"]:
            end_sessions(user.id, reason="deactivated")
        audited |= audit.diff(user, {"is_active": bool(changes["is_active"])})
    if audited:
        audit.record(actor, "user.update", target_type="tenant_user", target_id=user.id, tenant_id=tenant_id,
                     changes=audited)
    return user


def end_sessions(user_id: uuid.UUID, *, reason: str) -> None:
    cache.changed("user_sessions")
    db.session.execute(
        sa.update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


def end_tenant_sessions(tenant_id: uuid.UUID, *, reason: str) -> None:
    """Every session in the tenant; the caller commits. Reactivating a tenant must not revive them."""
    cache.changed("user_sessions")
    db.session.execute(
        sa.update(UserSession).where(UserSession.tenant_id == tenant_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


def get_user(tenant_id: uuid.UUID, user_id) -> TenantUser:
    return get_for_tenant(TenantUser, tenant_id, user_id, what="member")


def list_users(tenant_id: uuid.UUID, *, role: str | None = None) -> list[TenantUser]:
    query = sa.select(TenantUser).where(TenantUser.tenant_id == tenant_id)
    if role:
        query = query.where(TenantUser.role == role)
    return list(db.session.scalars(query.order_by(TenantUser.created_at, TenantUser.username)))
