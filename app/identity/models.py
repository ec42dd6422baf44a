"""Who is who: tenants and their API keys, the people in a tenant (members and tenant admins), their
devices and sessions, the platform's own admins, and the audit trail of every change."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, IdMixin, TimestampMixin, one_of, utcnow

OSS_MODES = ("PLATFORM", "CUSTOM")
KEY_MODES = ("live", "test")
# `generate` calls the generation endpoints; `admin` acts as the tenant's admin over the API.
KEY_SCOPES = ("generate", "admin")
USER_ROLES = ("member", "admin")
COUNTER_KINDS = ("account", "ip")


class Tenant(IdMixin, TimestampMixin, Base):
    """A business customer: owns API keys, users, devices and (later) credits and storage."""

    __tablename__ = "tenants"
    __table_args__ = (
        sa.CheckConstraint("max_seats >= 0", name="max_seats_non_negative"),
        sa.CheckConstraint("oss_mode IN ('PLATFORM', 'CUSTOM')", name="oss_mode_known"),
        # The ledger's invariants, enforced by the database itself (docs/architecture.md, "Credits ledger").
        sa.CheckConstraint("held >= 0", name="held_non_negative"),
        sa.CheckConstraint("storage_fees_owed >= 0", name="storage_fees_owed_non_negative"),
        sa.CheckConstraint("storage_download_unbilled_bytes >= 0", name="storage_download_unbilled_non_negative"),
        sa.CheckConstraint("storage_fee_carry_millicredits >= 0 AND storage_fee_carry_millicredits < 1000",
                           name="storage_fee_carry_below_a_credit"),
        sa.CheckConstraint("balance - held >= 0", name="available_non_negative"),
        sa.CheckConstraint("low_credits_threshold >= 0", name="low_credits_threshold_non_negative"),
    )

    name: Mapped[str] = mapped_column(sa.String(120))
    contact_name: Mapped[str | None] = mapped_column(sa.String(120))
    contact_phone: Mapped[str | None] = mapped_column(sa.String(40))
    contact_email: Mapped[str | None] = mapped_column(sa.String(254))
    is_active: Mapped[bool] = mapped_column(default=True)
    max_seats: Mapped[int] = mapped_column(default=5)
    # Model ids this tenant may use; empty means every active model.
    enabled_models: Mapped[list] = mapped_column(default=list)
    oss_mode: Mapped[str] = mapped_column(sa.String(16), default="PLATFORM")
    storage_used_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    storage_quota_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Storage fees the balance could not cover; taken first from the next recharge, and while any
    # are owed no new generation starts (402 storage_fees_owed).
    storage_fees_owed: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Bytes downloaded through us (buffered, then added here) that no daily bill has charged yet.
    storage_download_unbilled_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # The fraction of a credit the daily storage bills have not charged yet, carried to the next day.
    storage_fee_carry_millicredits: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    require_device: Mapped[bool] = mapped_column(default=True)
    # Credits: spendable = balance - held. Changed only by app/billing/ledger.py, in SQL.
    balance: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    held: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # credits.low fires when available credits fall below this (None: never); low_credits_notified_at is
    # set when it fires and cleared when credits are back at or above it, so it fires once per crossing.
    low_credits_threshold: Mapped[int | None] = mapped_column(sa.BigInteger)
    low_credits_notified_at: Mapped[datetime | None]

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="tenant", cascade="all, delete-orphan")


class ApiKey(IdMixin, Base):
    """A tenant API key. Only an HMAC of the key is stored; the key itself is shown once."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.CheckConstraint("mode IN ('live', 'test')", name="mode_known"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    mode: Mapped[str] = mapped_column(sa.String(8))
    prefix: Mapped[str] = mapped_column(sa.String(24))
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scopes: Mapped[list] = mapped_column(default=list)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    request_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tenant: Mapped[Tenant] = relationship(back_populates="api_keys")

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"



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


class PlatformAdmin(IdMixin, UserMixin, Base):
    """An operator of the platform: signs in to /admin and holds tokens for /admin/api."""

    __tablename__ = "platform_admins"

    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(72))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]
    # Part of the session identity: bumping it signs out every dashboard session of this admin.
    session_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class AdminToken(IdMixin, Base):
    """A personal access token for the JSON admin API, stored as an HMAC digest."""

    __tablename__ = "admin_tokens"

    admin_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("platform_admins.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    prefix: Mapped[str] = mapped_column(sa.String(24))
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    admin: Mapped[PlatformAdmin] = relationship()


class AuditLog(IdMixin, Base):
    """Who changed what, from where, when. `changes` never holds a secret value."""

    __tablename__ = "audit_logs"
    __table_args__ = (sa.Index("ix_audit_logs_tenant_created", "tenant_id", "created_at"),)

    actor_type: Mapped[str] = mapped_column(sa.String(24))  # platform_admin | tenant_admin | api_key | system
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    actor_name: Mapped[str | None] = mapped_column(sa.String(120))
    tenant_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target_type: Mapped[str] = mapped_column(sa.String(40))
    target_id: Mapped[str | None] = mapped_column(sa.String(64))
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    changes: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LoginFailureCount(Base):
    """Failed sign-ins of one account (or from one client address) in the window that began with the first
    of them: the embedded store of app/identity/throttle.py, changed only by its conditional statements.
    With REDIS_URL set these counts live in Redis instead."""

    __tablename__ = "login_failure_counts"
    __table_args__ = (
        sa.CheckConstraint(one_of("kind", COUNTER_KINDS), name="kind_known"),
        sa.CheckConstraint("failures >= 0", name="failures_non_negative"),
    )

    # "tenant:<id>" or "platform-admin" for accounts; "*" for addresses, counted across every realm.
    realm: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(128), primary_key=True)  # lower-cased username, or address
    window_started_at: Mapped[datetime]
    failures: Mapped[int]
