"""Storage on the wire: a tenant's storage report (bytes used, quota, fees owed, usage by day, by member
and by kind) for its tenant admins and the platform admin alike, and the billing rules (admin only)."""
from __future__ import annotations

import uuid
from datetime import date

from pydantic import ConfigDict, Field

from app.schemas import Body, ListOf, Out, Query, Timestamp
from app.storage.billing import MAX_LIMIT_GIB, MAX_PRICE

MAX_BYTES = 2 ** 63 - 1  # BIGINT


class StoragePricingOut(Out):
    """What the tenant's storage costs: marginal tiers per GiB-month, prorated over a 30-day month."""

    tier1_price: int = Field(description="Credits per GiB-month up to tier1_limit_gib")
    tier1_limit_gib: int
    tier2_price: int = Field(description="Credits per GiB-month from tier1_limit_gib to tier2_limit_gib")
    tier2_limit_gib: int
    tier3_price: int = Field(description="Credits per GiB-month above tier2_limit_gib")
    traffic_price: int = Field(description="Credits per GiB downloaded")
    days_per_month: int


class StorageDayOut(Out):
    date: date
    billed: bool = Field(description="Whether the day's bill has run; an unbilled day shows zeros")
    storage_bytes: int = Field(description="Bytes stored when the day was billed")
    upload_bytes: int = Field(description="Bytes of the objects stored that day")
    download_bytes: int = Field(description="Bytes downloaded through the platform, counted since the bill before")
    file_count: int
    storage_credits: int
    traffic_credits: int


class StorageMemberOut(Out):
    member_id: str | None = Field(description="null: stored by calls made with an API key")
    username: str | None
    bytes: int
    files: int


class StorageKindOut(Out):
    kind: str = Field(description="The generation kind, or `upload` for a reference not linked to one")
    bytes: int
    files: int


class TenantStorageOut(Out):
    model_config = ConfigDict(populate_by_name=True)

    oss_mode: str = Field(description="PLATFORM (the platform's bucket, billed) or CUSTOM (the tenant's own)")
    used_bytes: int
    quota_bytes: int | None = Field(description="null: no quota")
    fees_owed: int = Field(description="Storage fees not yet paid; while any are owed no generation starts, "
                                       "and the next recharge pays them first")
    files: int
    pricing: StoragePricingOut | None = Field(description="null: this tenant's storage is not charged")
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    days: list[StorageDayOut]
    by_member: list[StorageMemberOut]
    by_kind: list[StorageKindOut]


def storage_out(report: dict) -> dict:
    """A storage report as it is sent: its range as `from` and `to`, like the usage report's."""
    return TenantStorageOut.model_validate(report).model_dump(mode="json", by_alias=True)


class TenantStorageQuery(Query):
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")


class StorageQuotaIn(Body):
    storage_quota_bytes: int | None = Field(ge=0, le=MAX_BYTES, description="null: no quota")


class StorageRuleOut(Out):
    id: uuid.UUID
    name: str
    tier1_price: int
    tier1_limit_gib: int
    tier2_price: int
    tier2_limit_gib: int
    tier3_price: int
    traffic_price: int
    is_active: bool
    created_at: Timestamp
    updated_at: Timestamp


class StorageRuleListOut(ListOf):
    data: list[StorageRuleOut]


Price = Field(default=None, ge=0, le=MAX_PRICE)
LimitGiB = Field(default=None, ge=1, le=MAX_LIMIT_GIB)


class StorageRuleCreateIn(Body):
    """Prices left out take the original design's: 10, 8 and 5 credits per GiB-month in bands ending at
    100 and 500 GiB, and 5 credits per GiB downloaded."""

    name: str = Field(min_length=1, max_length=80)
    tier1_price: int = Price
    tier1_limit_gib: int = LimitGiB
    tier2_price: int = Price
    tier2_limit_gib: int = LimitGiB
    tier3_price: int = Price
    traffic_price: int = Price
    is_active: bool = Field(default=False, description="Make it the active rule (the one before is deactivated)")


class StorageRuleUpdateIn(Body):
    """Only what is sent changes; none of them may be null."""

    name: str = Field(default=None, min_length=1, max_length=80)
    tier1_price: int = Price
    tier1_limit_gib: int = LimitGiB
    tier2_price: int = Price
    tier2_limit_gib: int = LimitGiB
    tier3_price: int = Price
    traffic_price: int = Price
    is_active: bool = Field(default=None, description="true makes it the active rule; false leaves none active")
