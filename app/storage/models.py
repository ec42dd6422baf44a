from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin, utcnow

# PENDING: recorded before the bytes are written, not yet metered; STORED: confirmed and metered in the
# transaction that settled its generation. A PENDING row that never confirms is swept with its object.
# DELETING: its owner deleted it (no longer metered); the object is removed, retried until it is: DELETED.
FILE_STATUSES = ("PENDING", "STORED", "DELETING", "DELETED")
# What an object is to its generation: the result itself, a video's first-frame thumbnail, a
# reference image the client uploaded with the request, or a file uploaded ahead (POST /uploads; PENDING
# until completed).
FILE_VARIANTS = ("result", "thumbnail", "reference", "upload")
STORAGE_PROVIDERS = ("oss", "s3")


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
    # The bucket it was written to ("" on the local disk): with the backend, where it is read and deleted,
    # whatever the tenant's storage mode is today.
    bucket: Mapped[str] = mapped_column(sa.String(63), default="", server_default="")
    storage_key: Mapped[str] = mapped_column(sa.String(400), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="PENDING")
    position: Mapped[int] = mapped_column(default=0)  # the result's index in its generation
    variant: Mapped[str] = mapped_column(sa.String(16), default="result")
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    original_url: Mapped[str | None] = mapped_column(sa.String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class StorageBillingRule(IdMixin, TimestampMixin, Base):
    """What storage costs a PLATFORM-mode tenant: marginal tiers in credits per GiB-month (the first
    `tier1_limit_gib` at tier 1, up to `tier2_limit_gib` at tier 2, the rest at tier 3) and a price per
    GiB downloaded. At most one rule is active; with none, storage is metered but not charged."""

    __tablename__ = "storage_billing_rules"
    __table_args__ = (
        sa.CheckConstraint("tier1_price >= 0 AND tier2_price >= 0 AND tier3_price >= 0 AND traffic_price >= 0",
                           name="prices_non_negative"),
        sa.CheckConstraint("tier1_limit_gib > 0 AND tier2_limit_gib > tier1_limit_gib", name="tiers_ascending"),
        sa.Index("uq_storage_billing_rules_one_active", "is_active", unique=True,
                 postgresql_where=sa.text("is_active"), sqlite_where=sa.text("is_active")),
    )

    name: Mapped[str] = mapped_column(sa.String(80))
    tier1_price: Mapped[int] = mapped_column(sa.BigInteger)
    tier1_limit_gib: Mapped[int] = mapped_column(sa.BigInteger)
    tier2_price: Mapped[int] = mapped_column(sa.BigInteger)
    tier2_limit_gib: Mapped[int] = mapped_column(sa.BigInteger)
    tier3_price: Mapped[int] = mapped_column(sa.BigInteger)
    traffic_price: Mapped[int] = mapped_column(sa.BigInteger)
    is_active: Mapped[bool] = mapped_column(default=False)


class TenantStorageUsage(IdMixin, Base):
    """One tenant's storage on one (UTC) day, written once by the daily bill: its row is what makes
    billing a day again charge nothing. Credits are what the day cost, whether paid then or owed."""

    __tablename__ = "tenant_storage_usage"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "day", name="uq_tenant_storage_usage_tenant_day"),
        sa.CheckConstraint("storage_bytes >= 0 AND upload_bytes >= 0 AND download_bytes >= 0 AND file_count >= 0",
                           name="counts_non_negative"),
        sa.CheckConstraint("storage_credits >= 0 AND traffic_credits >= 0", name="credits_non_negative"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    day: Mapped[date]
    oss_mode: Mapped[str] = mapped_column(sa.String(16))
    storage_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # the meter when the day was billed
    upload_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # objects stored that day
    download_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # counted since the previous bill
    file_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    storage_credits: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    traffic_credits: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    rule_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("storage_billing_rules.id",
                                                                    ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantStorageConfig(IdMixin, TimestampMixin, Base):
    """A tenant's own bucket (used in oss_mode CUSTOM once verified). The access key id and secret are
    AES-GCM at rest and never shown again: only the key id's last four characters are."""

    __tablename__ = "tenant_storage_configs"
    __table_args__ = (sa.CheckConstraint("provider IN ('oss', 's3')", name="provider_known"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(sa.String(8))
    endpoint: Mapped[str] = mapped_column(sa.String(255), default="")
    region: Mapped[str] = mapped_column(sa.String(64), default="")
    bucket: Mapped[str] = mapped_column(sa.String(63))
    access_key_id_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    access_key_id_last4: Mapped[str] = mapped_column(sa.String(4))
    secret_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    custom_domain: Mapped[str | None] = mapped_column(sa.String(255))
    path_prefix: Mapped[str] = mapped_column(sa.String(200), default="")
    is_verified: Mapped[bool] = mapped_column(default=False)
    last_verified_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
