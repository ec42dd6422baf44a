"""Gateways as platform admins manage them: everything but the secret, which goes in and never out."""
from __future__ import annotations


from pydantic import Field

from app.gateway import registry as gateways
from app.schemas import Body, Out, Timestamp


FILES_ORIGIN = ("scheme://host[:port] its result files come from, when not base_url's origin. Results on a private "
                "address are downloaded only from these origins (and FETCH_ALLOWLIST's), never another port")


class GatewayOut(Out):
    id: str
    name: str
    base_url: str
    files_origin: str | None
    path_prefix: str
    priority: int
    weight: int
    is_active: bool
    success_count: int
    error_count: int
    last_error: str | None
    last_error_at: Timestamp | None
    last_success_at: Timestamp | None
    created_at: Timestamp


class GatewayListOut(Out):
    object: str = "list"
    data: list[GatewayOut]


class GatewayCreateIn(Body):
    name: str = Field(min_length=1, max_length=gateways.NAME_MAX)
    base_url: str = Field(description="http:// or https:// address of the waule-api instance")
    secret: str = Field(min_length=1, max_length=gateways.SECRET_MAX, description="Stored encrypted; never returned")
    files_origin: str | None = Field(default=None, description=FILES_ORIGIN)
    path_prefix: str = "/v1"
    priority: int = Field(default=100, description="Lower is tried first")
    weight: int = Field(default=1, description="Share of calls among gateways of equal priority")
    is_active: bool = True


class GatewayUpdateIn(Body):
    """Only what is sent changes; a secret replaces the stored one; a null or empty files_origin removes it."""

    name: str = Field(default=None, min_length=1, max_length=gateways.NAME_MAX)
    base_url: str = None
    files_origin: str | None = Field(default=None, description=FILES_ORIGIN + "; null or empty removes it")
    secret: str = Field(default=None, min_length=1, max_length=gateways.SECRET_MAX)
    path_prefix: str = None
    priority: int = None
    weight: int = None
    is_active: bool = None


class ConnectionTestIn(Body):
    """No fields: an empty body or {} (a malformed one is still refused, as on every POST)."""


class ConnectionTestOut(Out):
    ok: bool
    detail: str
