from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, utcnow


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
