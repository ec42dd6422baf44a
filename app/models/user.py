from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, IdMixin, TimestampMixin, utcnow
from app.models.tenant import Tenant

USER_ROLES = ("member", "admin")


class TenantUser(IdMixin, TimestampMixin, Base):
    """A person in a tenant: a member (uses a seat) or a tenant admin (manages the tenant).

    One table for both keeps usernames unique per tenant across roles, so login needs no role hint.
    """

    __tablename__ = "tenant_users"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "username", name="uq_tenant_users_tenant_username"),
        sa.CheckConstraint("role IN ('member', 'admin')", name="role_known"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(sa.String(64))
    password_hash: Mapped[str] = mapped_column(sa.String(72))
    nickname: Mapped[str | None] = mapped_column(sa.String(80))
    role: Mapped[str] = mapped_column(sa.String(16), default="member")
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]

    tenant: Mapped[Tenant] = relationship()


class TenantDevice(IdMixin, Base):
    """The one device a user is bound to (first login binds it; an admin unbinds it)."""

    __tablename__ = "tenant_devices"

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("tenant_users.id", ondelete="CASCADE"), unique=True
    )
    fingerprint: Mapped[str] = mapped_column(sa.String(128))
    device_info: Mapped[dict | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[TenantUser] = relationship()


class UserSession(IdMixin, Base):
    """One login of a user on a device. Access tokens name their session and every request checks it
    is still live, so logout, deactivation and password changes take effect at once."""

    __tablename__ = "user_sessions"

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenant_users.id", ondelete="CASCADE"), index=True)
    # The mode of the API key used to log in: test-mode sessions never touch real credits.
    key_mode: Mapped[str] = mapped_column(sa.String(8))
    device_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(40))


class RefreshToken(IdMixin, Base):
    """An opaque refresh token, stored as a digest. Each use rotates it; presenting a rotated one
    again means it leaked, so its whole session is revoked."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("user_sessions.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[UserSession] = relationship()
