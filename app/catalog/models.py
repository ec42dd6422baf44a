"""Models as waule-api knows them and how each is charged."""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin, one_of

MODEL_KINDS = ("image", "video", "audio", "chat", "midjourney")
BILLING_TYPES = ("PER_REQUEST", "PER_IMAGE", "PER_SECOND", "DURATION_RESOLUTION", "PER_CHARACTER",
                 "PER_TOKEN", "DURATION_MODE", "OPERATION_MODE")


class AiModel(IdMixin, TimestampMixin, Base):
    """A model as waule-api knows it (`model_id`), with what it can do and whether we sell it."""

    __tablename__ = "ai_models"
    __table_args__ = (sa.CheckConstraint(one_of("kind", MODEL_KINDS), name="kind_known"),)

    model_id: Mapped[str] = mapped_column(sa.String(120), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    display_name: Mapped[str] = mapped_column(sa.String(120))
    provider: Mapped[str] = mapped_column(sa.String(60))
    # ratios, resolutions, durations, max_reference_images, … (shape depends on kind)
    capabilities: Mapped[dict] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    # The gateway route that generates it ("/images/generations", "/sora/chat/completions", …).
    route: Mapped[str] = mapped_column(sa.String(60))
    # The waule-api instance that serves it; None = the default gateway (WAULEAPI_URL).
    gateway_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("gateways.id", ondelete="SET NULL"))


class PriceRule(IdMixin, TimestampMixin, Base):
    """How a model is charged: a billing type and its prices (validated by app/catalog/pricing.py)."""

    __tablename__ = "price_rules"
    __table_args__ = (sa.CheckConstraint(one_of("billing_type", BILLING_TYPES), name="billing_type_known"),)

    model_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("ai_models.id", ondelete="CASCADE"), unique=True)
    billing_type: Mapped[str] = mapped_column(sa.String(32))
    prices: Mapped[dict] = mapped_column(default=dict)
