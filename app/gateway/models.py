from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin


class Gateway(IdMixin, TimestampMixin, Base):
    """A waule-api instance. Models may name one; otherwise WAULEAPI_URL is the default.
    Connection failures fail over to the next active gateway by priority (lower first)."""

    __tablename__ = "gateways"

    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    base_url: Mapped[str] = mapped_column(sa.String(255))
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
