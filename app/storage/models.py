from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, utcnow

# PENDING: recorded before the bytes are written, not yet metered; STORED: confirmed and metered in the
# transaction that settled its generation. A PENDING row that never confirms is swept with its object.
# DELETING: its owner deleted it (no longer metered); the object is removed, retried until it is: DELETED.
FILE_STATUSES = ("PENDING", "STORED", "DELETING", "DELETED")
# What an object is to its generation: the result itself, a video's first-frame thumbnail, or a
# reference image the client uploaded with the request.
FILE_VARIANTS = ("result", "thumbnail", "reference")


class StoredFile(IdMixin, Base):
    """One object in a storage backend: the only record of it, metered against the tenant's
    storage_used_bytes once STORED."""

    __tablename__ = "stored_files"
    __table_args__ = (
        sa.CheckConstraint("status IN ('PENDING', 'STORED', 'DELETING', 'DELETED')", name="status_known"),
        sa.Index("ix_stored_files_status_created", "status", "created_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    generation_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("generations.id", ondelete="SET NULL"),
                                                            index=True)
    backend: Mapped[str] = mapped_column(sa.String(16))
    storage_key: Mapped[str] = mapped_column(sa.String(400), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="PENDING")
    position: Mapped[int] = mapped_column(default=0)  # the result's index in its generation
    variant: Mapped[str] = mapped_column(sa.String(16), default="result")
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    original_url: Mapped[str | None] = mapped_column(sa.String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]
