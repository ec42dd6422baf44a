from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin, utcnow


class Gateway(IdMixin, TimestampMixin, Base):
    """A waule-api instance. Models may name one; otherwise WAULEAPI_URL is the default.
    Connection failures fail over to the next active gateway by priority (lower first)."""

    __tablename__ = "gateways"

    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    base_url: Mapped[str] = mapped_column(sa.String(255))
    # scheme://host[:port] its result files come from when not base_url's origin; the fetch allowlists it.
    files_origin: Mapped[str | None] = mapped_column(sa.String(255))
    secret_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    path_prefix: Mapped[str] = mapped_column(sa.String(40), default="/v1")
    priority: Mapped[int] = mapped_column(default=100)
    weight: Mapped[int] = mapped_column(default=1)
    is_active: Mapped[bool] = mapped_column(default=True)
    success_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    error_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    last_error_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]


class GatewayCircuit(Base):
    """The circuit breaker of one gateway, keyed by its base URL (so the default gateway from
    WAULEAPI_URL, which has no Gateway row, has one too). Shared by every process through the database:
    after GATEWAY_CIRCUIT_FAILURES consecutive connection failures the gateway is skipped until
    `open_until`, then one request (or probe) tries it again."""

    __tablename__ = "gateway_circuits"

    base_url: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    open_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
