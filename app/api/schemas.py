"""Request and response models shared by the tenant API and the admin API.

Per audience: a tenant sees its own tenant summary; a platform admin sees the whole row.
Nothing here ever carries a password hash, a key digest or an encrypted secret.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, Field

from app.api.schema import Body, Out


class TenantSummaryOut(Out):
    id: uuid.UUID
    name: str
    is_active: bool
    max_seats: int
    require_device: bool


class TenantOut(TenantSummaryOut):
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    enabled_models: list[str]
    oss_mode: str
    storage_used_bytes: int
    storage_quota_bytes: int | None
    created_at: datetime
    updated_at: datetime


class UserOut(Out):
    id: uuid.UUID
    username: str
    nickname: str | None
    role: str
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime


class DeviceOut(Out):
    id: uuid.UUID
    user_id: uuid.UUID
    fingerprint: str
    device_info: dict | None
    created_at: datetime
    last_seen_at: datetime


class ApiKeyOut(Out):
    id: uuid.UUID
    name: str
    mode: str
    prefix: str
    scopes: list[str]
    status: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    request_count: int
    created_at: datetime


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The full key. Shown only in this response: store it now.")


class UserCreateIn(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str
    nickname: str | None = Field(default=None, max_length=80)
    role: Literal["member", "admin"] = "member"


class UserUpdateIn(Body):
    # is_active and password refuse an explicit null (it would read as "deactivate" or crash hashing).
    nickname: str | None = Field(default=None, max_length=80)
    is_active: bool = None
    password: str = None


class ApiKeyCreateIn(Body):
    name: str = Field(default="default", min_length=1, max_length=80)
    mode: Literal["live", "test"] = "live"
    scopes: list[Literal["generate", "admin"]] = Field(default_factory=lambda: ["generate"])
    expires_at: datetime | None = None


class LoginIn(Body):
    api_key: str = Field(validation_alias=AliasChoices("api_key", "apiKey"))
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    device_id: str | None = Field(default=None, validation_alias=AliasChoices("device_id", "deviceId"))
    device_info: dict | None = Field(default=None, validation_alias=AliasChoices("device_info", "deviceInfo"))


class ListOf(Out):
    object: Literal["list"] = "list"
