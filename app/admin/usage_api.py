"""Usage and gateways in the JSON admin API: a tenant's usage records with the seed's summary by
operation, and the waule-api gateways (whose secrets go in and never come out)."""
from __future__ import annotations

from datetime import date, datetime

from flask import g, jsonify
from pydantic import Field

from app.admin import api_bp
from app.admin.api import admin_actor
from app.api.schema import Body, Out, Query, dump, endpoint
from app.gateway import registry as gateways
from app.generation import usage

TAGS = ("admin",)


class UsageQuery(Query):
    date_from: date | None = Field(default=None, alias="from", description="First UTC day; default 29 days before to")
    date_to: date | None = Field(default=None, alias="to", description="Last UTC day, included; default today")


class UsageRecordOut(Out):
    id: str
    created_at: datetime
    model: str
    kind: str
    operation: str
    status: str
    is_test: bool
    credits: int
    input_tokens: int | None
    output_tokens: int | None
    seconds: float | None
    quantity: int | None
    latency_ms: int | None
    user_id: str | None
    api_key_id: str | None
    generation_id: str | None


class OperationSummaryOut(Out):
    operation: str
    count: int
    credits: int


class TenantUsageOut(Out):
    records: list[UsageRecordOut] = Field(description="Newest first, test-mode calls included and marked")
    summary: list[OperationSummaryOut] = Field(description="Live calls per operation, from the daily rollups")


def _record(row) -> dict:
    ids = {name: str(getattr(row, name)) if getattr(row, name) else None
           for name in ("user_id", "api_key_id", "generation_id")}
    return {**{name: getattr(row, name) for name in UsageRecordOut.model_fields if name not in ids}, "id": str(row.id),
            **ids}


@api_bp.get("/tenants/<tenant_id>/usage")
@endpoint("A tenant's usage records in a date range, with a summary by operation", query=UsageQuery,
          response=TenantUsageOut, errors=(401, 404), tags=TAGS)
def tenant_usage(query: UsageQuery):
    records = usage.records(g.tenant.id, date_from=query.date_from, date_to=query.date_to)
    summary = usage.by_operation(g.tenant.id, date_from=query.date_from, date_to=query.date_to)
    return jsonify(dump(TenantUsageOut, {"records": [_record(r) for r in records], "summary": summary}))


# --- gateways --------------------------------------------------------------------------------------

class GatewayOut(Out):
    id: str
    name: str
    base_url: str
    path_prefix: str
    priority: int
    weight: int
    is_active: bool
    success_count: int
    error_count: int
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    created_at: datetime


class GatewayListOut(Out):
    object: str = "list"
    data: list[GatewayOut]


class GatewayCreateIn(Body):
    name: str = Field(min_length=1, max_length=gateways.NAME_MAX)
    base_url: str = Field(description="http:// or https:// address of the waule-api instance")
    secret: str = Field(min_length=1, max_length=gateways.SECRET_MAX, description="Stored encrypted; never returned")
    path_prefix: str = "/v1"
    priority: int = Field(default=100, description="Lower is tried first")
    weight: int = Field(default=1, description="Share of calls among gateways of equal priority")
    is_active: bool = True


class GatewayUpdateIn(Body):
    """Only what is sent changes; a secret replaces the stored one."""

    name: str = Field(default=None, min_length=1, max_length=gateways.NAME_MAX)
    base_url: str = None
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


def _gateway(row) -> dict:
    return dump(GatewayOut, {**{name: getattr(row, name) for name in GatewayOut.model_fields if name != "id"},
                             "id": str(row.id)})


@api_bp.get("/gateways")
@endpoint("The waule-api gateways with their health counters (never their secrets)", response=GatewayListOut,
          errors=(401,), tags=TAGS)
def list_gateways():
    return jsonify({"object": "list", "data": [_gateway(row) for row in gateways.list_gateways()]})


@api_bp.post("/gateways")
@endpoint("Add a gateway", body=GatewayCreateIn, response=GatewayOut, status=201, errors=(401, 409), tags=TAGS)
def create_gateway(body: GatewayCreateIn):
    return jsonify(_gateway(gateways.create_gateway(admin_actor(), **body.model_dump()))), 201


@api_bp.patch("/gateways/<gateway_id>")
@endpoint("Change a gateway, replace its secret, or (de)activate it", body=GatewayUpdateIn, response=GatewayOut,
          errors=(401, 404, 409), tags=TAGS)
def update_gateway(gateway_id: str, body: GatewayUpdateIn):
    return jsonify(_gateway(gateways.update_gateway(gateway_id, admin_actor(), body.model_dump(exclude_unset=True))))


@api_bp.post("/gateways/<gateway_id>/test")
@endpoint("Call the gateway's /health with its credentials", body=ConnectionTestIn, response=ConnectionTestOut,
          errors=(401, 404), tags=TAGS)
def test_gateway(gateway_id: str, body: ConnectionTestIn):
    result = gateways.test_connection(gateway_id, admin_actor())
    return jsonify({"ok": result.ok, "detail": result.detail})
