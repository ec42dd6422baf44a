"""Identity on the wire: tenants, members, devices, API keys and sign-in, for the tenant API and the
admin API.

Per audience: a tenant sees its own tenant summary; a platform admin sees the whole row.
Nothing here ever carries a password hash, a key digest or an encrypted secret.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, Field

from app.identity.tenants import MAX_SEATS_LIMIT
from app.schemas import Body, ListOf, Out, Query, Timestamp


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
    low_credits_threshold: int | None = Field(description="credits.low fires when available credits fall "
                                                          "below this; null: never")
    created_at: Timestamp
    updated_at: Timestamp


class UserOut(Out):
    id: uuid.UUID
    username: str
    nickname: str | None
    role: str
    is_active: bool
    last_login_at: Timestamp | None
    created_at: Timestamp


class DeviceOut(Out):
    id: uuid.UUID
    user_id: uuid.UUID
    fingerprint: str
    device_info: dict | None
    created_at: Timestamp
    last_seen_at: Timestamp


class ApiKeyOut(Out):
    id: uuid.UUID
    name: str
    mode: str
    prefix: str
    scopes: list[str]
    status: str
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None
    request_count: int
    created_at: Timestamp


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


class TokensOut(Out):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserOut
    tenant: TenantSummaryOut


class RefreshIn(Body):
    refresh_token: str = Field(max_length=256)


class LogoutIn(Body):
    refresh_token: str | None = Field(default=None, max_length=256)


class MeOut(Out):
    kind: str
    mode: str
    user: UserOut | None
    api_key: ApiKeyOut | None
    tenant: TenantSummaryOut


class OkOut(Out):
    ok: bool = True


class TenantCreateIn(Body):
    name: str = Field(min_length=1, max_length=120)
    contact_name: str | None = Field(default=None, max_length=120)
    contact_phone: str | None = Field(default=None, max_length=40)
    contact_email: str | None = Field(default=None, max_length=254)
    max_seats: int = Field(default=5, ge=0, le=MAX_SEATS_LIMIT)
    require_device: bool = True
    admin_username: str | None = Field(default=None, max_length=64)
    admin_password: str | None = None


class TenantUpdateIn(Body):
    """Only what is sent changes. Fields that cannot be empty refuse an explicit null."""

    name: str = Field(default=None, min_length=1, max_length=120)
    contact_name: str | None = Field(default=None, max_length=120)
    contact_phone: str | None = Field(default=None, max_length=40)
    contact_email: str | None = Field(default=None, max_length=254)
    is_active: bool = None
    max_seats: int = Field(default=None, ge=0, le=MAX_SEATS_LIMIT)
    enabled_models: list[str] = None
    storage_quota_bytes: int | None = Field(default=None, ge=0, description="null means no quota")
    require_device: bool = None


class TenantListQuery(Query):
    search: str | None = Field(default=None, max_length=120)
    page: int = Field(default=1, ge=1)
    per_page: int = Field(default=20, ge=1, le=100)


class TenantRowOut(TenantOut):
    members: int = Field(description="Members (not tenant admins), active or not")
    active_members: int = Field(description="Active members: the seats in use")


class TenantPageOut(ListOf):
    data: list[TenantRowOut]
    total: int
    page: int
    per_page: int


class TenantCreatedOut(Out):
    tenant: TenantOut
    api_key: ApiKeyCreatedOut
    admin: UserOut | None


class MemberListOut(ListOf):
    data: list[UserOut]
    seats_used: int
    max_seats: int


class ApiKeyListOut(ListOf):
    data: list[ApiKeyOut]


class DeviceListOut(ListOf):
    data: list[DeviceOut]
