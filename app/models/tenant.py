from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, IdMixin, TimestampMixin, utcnow

OSS_MODES = ("PLATFORM", "CUSTOM")
KEY_MODES = ("live", "test")
# `generate` calls the generation endpoints; `admin` acts as the tenant's admin over the API.
KEY_SCOPES = ("generate", "admin")


class Tenant(IdMixin, TimestampMixin, Base):
    """A business customer: owns API keys, users, devices and (later) credits and storage."""

    __tablename__ = "tenants"
    __table_args__ = (
        sa.CheckConstraint("max_seats >= 0", name="max_seats_non_negative"),
        sa.CheckConstraint("oss_mode IN ('PLATFORM', 'CUSTOM')", name="oss_mode_known"),
        # The ledger's invariants, enforced by the database itself (DESIGN §4).
        sa.CheckConstraint("held >= 0", name="held_non_negative"),
        sa.CheckConstraint("balance - held >= 0", name="available_non_negative"),
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
    require_device: Mapped[bool] = mapped_column(default=True)
    # Credits: spendable = balance - held. Changed only by app/services/ledger.py, in SQL.
    balance: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    held: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # AES-GCM ciphertext of the webhook signing secret; the plaintext is shown once.
    api_secret_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)

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
