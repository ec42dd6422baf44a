"""Webhooks: the endpoints a tenant registers, one delivery per event and endpoint, and every attempt
to deliver it."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, IdMixin, TimestampMixin, one_of, utcnow

EVENT_TYPES = ("generation.completed", "generation.failed", "credits.low")
# PENDING: waiting for its next attempt. SUCCEEDED: a 2xx. FAILED: every retry used. DISABLED: its
# endpoint was disabled (by a 410 or by hand) before it got through.
DELIVERY_STATUSES = ("PENDING", "SUCCEEDED", "FAILED", "DISABLED")


class WebhookEndpoint(IdMixin, TimestampMixin, Base):
    """Where a tenant wants events sent, and the secret that signs them (AES-GCM at rest; the plain
    secret is shown once). During a rotation the previous secret signs too, until previous_until."""

    __tablename__ = "webhook_endpoints"

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    events: Mapped[list] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(200))
    secret_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    previous_until: Mapped[datetime | None]


class WebhookDelivery(IdMixin, Base):
    """One event for one endpoint. `message_id` is the `webhook-id` header, the same on every attempt,
    so receivers can drop a duplicate; `body` is the exact JSON sent each time."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.CheckConstraint(one_of("status", DELIVERY_STATUSES), name="status_known"),
        sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        # What the retry sweep asks for: PENDING rows that are due.
        sa.Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    message_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="PENDING")
    # Attempts since the schedule began (at creation or at a redelivery), and when it began.
    attempts: Mapped[int] = mapped_column(default=0)
    schedule_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    endpoint: Mapped[WebhookEndpoint] = relationship()
    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.attempted_at", cascade="all, delete-orphan",
        passive_deletes=True)


class WebhookAttempt(IdMixin, Base):
    """One try at sending a delivery: what came back (or why nothing did) and how long it took."""

    __tablename__ = "webhook_attempts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                                   index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int] = mapped_column(default=0)
    response_excerpt: Mapped[str | None] = mapped_column(sa.String(1024))
    error: Mapped[str | None] = mapped_column(sa.String(300))

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempt_log")
