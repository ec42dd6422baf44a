"""A generation (one request that costs credits) and the usage it leaves behind."""
from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin, utcnow

GENERATION_STATUSES = ("PENDING", "GENERATING", "UPLOADING", "COMPLETED", "FAILED")
ACTIVE_STATUSES = ("PENDING", "GENERATING", "UPLOADING")  # not over yet: a worker or a sweep may still end it
FINAL_STATUSES = ("COMPLETED", "FAILED")
# Kinds that always run on the worker's long queue: the gateway takes minutes (videos) or is polled.
LONG_KINDS = ("video", "midjourney")


class Generation(IdMixin, TimestampMixin, Base):
    """One request that costs credits, from validation to its stored results."""

    __tablename__ = "generations"
    __table_args__ = (
        sa.Index("ix_generations_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_generations_status_deadline", "status", "deadline_at"),
    )
    # Not a column: the result files the settle statement just confirmed, in order, when this request
    # finished the generation on PostgreSQL's one-statement path; the answer is built from them instead
    # of reading them back. None otherwise (read them with storage.files_of).
    confirmed_files = None

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("tenant_users.id", ondelete="SET NULL"), index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(16))
    is_test: Mapped[bool] = mapped_column(default=False)
    params: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="PENDING")
    hold_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("credit_holds.id"), index=True)
    # The request's Idempotency-Key, written with the hold: whoever ends the generation finishes or frees it.
    idempotency_key_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("idempotency_keys.id", ondelete="SET NULL"))
    credits_held: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    credits_charged: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    results: Mapped[list] = mapped_column(default=list)  # [{file_id, content_type, size_bytes, original_url}]
    output: Mapped[dict | None]  # chat: the completion; counts and extras
    error_code: Mapped[str | None] = mapped_column(sa.String(60))
    error_message: Mapped[str | None] = mapped_column(sa.String(1000))
    gateway_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("gateways.id", ondelete="SET NULL"))
    timeline: Mapped[list] = mapped_column(default=list)  # [{status, at}]
    upstream_ms: Mapped[int | None]
    deadline_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]  # when the gateway call began (GENERATING)
    # A worker's claim on a queued generation it runs, renewed by its heartbeat. A lapsed lease means the
    # worker died: the reconcile sweep fails the generation (or resumes polling, for Midjourney).
    lease_until: Mapped[datetime | None] = mapped_column(index=True)
    upstream_task_id: Mapped[str | None] = mapped_column(sa.String(120))  # Midjourney's taskId, to poll
    progress: Mapped[int] = mapped_column(default=0)  # 0–100, as far as anyone knows
    # The generation this one acts on (a Midjourney action's grid) or repeats (a retry from the dashboard).
    parent_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("generations.id", ondelete="SET NULL"))
    deleted_at: Mapped[datetime | None]  # deleted by its owner: its objects are gone, the row stays for the ledger

    # Every ORM write of a generation is a compare-and-set on the status it last read (UPDATE … WHERE
    # status = :read): when a sweep has failed it meanwhile, the worker's write raises StaleDataError
    # instead of overwriting the failure, so a finishing worker and a sweep never both win.
    __mapper_args__ = {"version_id_col": status, "version_id_generator": False}

    @property
    def caller(self) -> str:
        """Who asked, as storage paths and usage rollups name it: the member's id, or 'api' for a key."""
        return str(self.user_id) if self.user_id else "api"


class UsageRecord(IdMixin, Base):
    """The analytics row of one billable call, success or failure."""

    __tablename__ = "usage_records"
    __table_args__ = (sa.Index("ix_usage_records_tenant_created", "tenant_id", "created_at"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("tenant_users.id", ondelete="SET NULL"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("api_keys.id", ondelete="SET NULL"))
    generation_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("generations.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(16))
    operation: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(16))  # success | failure
    is_test: Mapped[bool] = mapped_column(default=False)
    credits: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    seconds: Mapped[float | None]
    quantity: Mapped[int | None]
    latency_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageDaily(Base):
    """Per tenant, day, model and caller: running totals kept as records are written, so summaries
    never scan raw rows. `caller` is a member id, or 'api' for key calls."""

    __tablename__ = "usage_daily"

    tenant_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    caller: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    is_test: Mapped[bool] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    requests: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    failures: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    credits: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    seconds: Mapped[float] = mapped_column(default=0.0)
    quantity: Mapped[int] = mapped_column(sa.BigInteger, default=0)
