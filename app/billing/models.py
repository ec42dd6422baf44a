"""Credits: holds, the append-only ledger, idempotency keys, and operator-editable settings."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, one_of, utcnow

HOLD_STATUSES = ("HELD", "SETTLED", "RELEASED", "EXPIRED")
ENTRY_TYPES = ("RECHARGE", "CONSUME", "REFUND", "ADJUST", "STORAGE", "SEAT_PURCHASE")


class CreditHold(IdMixin, Base):
    """Credits set aside before a call (a two-phase transfer's pending half). It resolves exactly
    once: HELD → SETTLED | RELEASED | EXPIRED, by compare-and-set on `status`."""

    __tablename__ = "credit_holds"
    __table_args__ = (
        sa.CheckConstraint(one_of("status", HOLD_STATUSES), name="status_known"),
        sa.CheckConstraint("amount >= 0", name="amount_non_negative"),
        sa.CheckConstraint("settled_amount IS NULL OR (settled_amount >= 0 AND settled_amount <= amount)",
                           name="settled_within_amount"),
        sa.Index("ix_credit_holds_status_expires", "status", "expires_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(16), default="HELD")
    settled_amount: Mapped[int | None] = mapped_column(sa.BigInteger)
    reference: Mapped[str | None] = mapped_column(sa.String(120))
    description: Mapped[str | None] = mapped_column(sa.String(255))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class LedgerEntry(IdMixin, Base):
    """One credit movement, append-only. balance = Σ amount over a tenant's entries."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.CheckConstraint(one_of("type", ENTRY_TYPES), name="type_known"),
        sa.Index("ix_ledger_entries_tenant_created", "tenant_id", "created_at", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(16))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    balance_after: Mapped[int] = mapped_column(sa.BigInteger)
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    actor_type: Mapped[str] = mapped_column(sa.String(24))
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    actor_name: Mapped[str | None] = mapped_column(sa.String(120))
    reference: Mapped[str | None] = mapped_column(sa.String(120))
    hold_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("credit_holds.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(IdMixin, Base):
    """A client's Idempotency-Key: the first request's fingerprint and, once done, what it did (ids and
    the figures its answer showed), so a retry answers exactly as the first request did."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "scope", "key", name="uq_idempotency_keys_tenant_scope_key"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(sa.String(60))  # which endpoint, so keys don't collide across them
    key: Mapped[str] = mapped_column(sa.String(255))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default="IN_PROGRESS")
    result: Mapped[dict | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PlatformSetting(Base):
    """Operator-editable platform values (seat price, recharge maximum…), one row per name."""

    __tablename__ = "platform_settings"

    name: Mapped[str] = mapped_column(sa.String(60), primary_key=True)
    value: Mapped[dict] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
