"""A tenant's own bucket on the wire: what a tenant admin or platform admin sends, and what is shown back
(never the access key id or secret: only the key id's last four characters). The same shapes for the
tenant-admin API and the platform admin API."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.schemas import Body, Out, Timestamp


class TenantBucketIn(Body):
    provider: Literal["oss", "s3"]
    bucket: str = Field(min_length=3, max_length=63)
    endpoint: str = Field(default="", max_length=255, description=(
        "scheme://host of the service: https://oss-cn-beijing.aliyuncs.com, an R2 or MinIO endpoint; "
        "empty for AWS S3 (then region names it)"))
    region: str = Field(default="", max_length=64, description="S3's region (auto for R2); unused by OSS")
    access_key_id: str | None = Field(default=None, max_length=256, description=(
        "Required the first time; left out, the saved one is kept. Never shown again."))
    secret: str | None = Field(default=None, max_length=256, description=(
        "Required the first time; left out, the saved one is kept. Never shown again."))
    custom_domain: str | None = Field(default=None, max_length=255, description=(
        "scheme://host bound to the bucket; presigned URLs are made on it"))
    path_prefix: str = Field(default="", max_length=200, description="Folder for our objects, such as waule/")


class StorageModeIn(Body):
    mode: Literal["PLATFORM", "CUSTOM"] = Field(description=(
        "Where new results go: the platform's storage, or the tenant's own (verified) bucket. Files already "
        "stored stay where they are and keep downloading."))


class TenantBucketOut(Out):
    provider: str
    bucket: str
    endpoint: str
    region: str
    access_key_id_last4: str = Field(description="The only part of the keys ever shown")
    custom_domain: str | None
    path_prefix: str
    is_verified: bool
    last_verified_at: Timestamp | None
    last_error: str | None = Field(description="Why the last verification failed")
    created_at: Timestamp
    updated_at: Timestamp


class StorageModeOut(Out):
    mode: Literal["PLATFORM", "CUSTOM"]
    bucket: TenantBucketOut | None
