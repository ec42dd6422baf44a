from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, IdMixin, utcnow


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
