"""Tenants, their keys, members and devices in the JSON admin API."""
from __future__ import annotations

from flask import g, jsonify

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.openapi import endpoint
from app.identity import api_keys, devices, tenants, users
from app.schemas import dump
from app.schemas.identity import (ApiKeyCreatedOut, ApiKeyCreateIn, ApiKeyListOut, ApiKeyOut, DeviceListOut,
                                  MemberListOut, TenantCreatedOut, TenantCreateIn, TenantListQuery, TenantOut,
                                  TenantPageOut, TenantUpdateIn, UserCreateIn, UserOut, UserUpdateIn)


@api_bp.post("/tenants")
@endpoint("Create a tenant with its first live key (shown once)", body=TenantCreateIn,
          response=TenantCreatedOut, status=201, errors=(401, 409), tags=TAGS)
def create_tenant(body: TenantCreateIn):
    created = tenants.create_tenant(admin_actor(), **body.model_dump())
    return jsonify(dump(TenantCreatedOut, {
        "tenant": created.tenant,
        "api_key": {**dump(ApiKeyOut, created.api_key), "key": created.api_key_plaintext},
        "admin": created.admin,
    })), 201


@api_bp.get("/tenants")
@endpoint("List tenants, newest first, with member counts", query=TenantListQuery, response=TenantPageOut,
          errors=(401,), tags=TAGS)
def list_tenants(query: TenantListQuery):
    rows, total = tenants.list_tenants(search=query.search, page=query.page, per_page=query.per_page)
    data = [{**dump(TenantOut, row.tenant), "members": row.members, "active_members": row.active_members}
            for row in rows]
    return jsonify(dump(TenantPageOut, {"data": data, "total": total, "page": query.page,
                                        "per_page": query.per_page}))


@api_bp.get("/tenants/<tenant_id>")
@endpoint("Show a tenant", response=TenantOut, errors=(401, 404), tags=TAGS)
def show_tenant():
    return jsonify(dump(TenantOut, g.tenant))


@api_bp.patch("/tenants/<tenant_id>")
@endpoint("Change a tenant; is_active false locks out its keys and members at once", body=TenantUpdateIn,
          response=TenantOut, errors=(401, 404), tags=TAGS)
def update_tenant(body: TenantUpdateIn):
    tenant = tenants.update_tenant(g.tenant.id, admin_actor(), body.model_dump(exclude_unset=True))
    return jsonify(dump(TenantOut, tenant))


@api_bp.get("/tenants/<tenant_id>/keys")
@endpoint("List a tenant's API keys (never the keys themselves)", response=ApiKeyListOut, errors=(401, 404),
          tags=TAGS)
def list_keys():
    return jsonify(dump(ApiKeyListOut, {"data": api_keys.list_keys(g.tenant.id)}))


@api_bp.post("/tenants/<tenant_id>/keys")
@endpoint("Create an API key for a tenant; the key is shown once, in this response", body=ApiKeyCreateIn,
          response=ApiKeyCreatedOut, status=201, errors=(401, 404), tags=TAGS)
def create_key(body: ApiKeyCreateIn):
    key, raw = api_keys.create_key(g.tenant.id, admin_actor(), **body.model_dump())
    return jsonify(dump(ApiKeyCreatedOut, {**dump(ApiKeyOut, key), "key": raw})), 201


@api_bp.delete("/tenants/<tenant_id>/keys/<key_id>")
@endpoint("Revoke a tenant's API key", response=ApiKeyOut, errors=(401, 404), tags=TAGS)
def revoke_key(key_id: str):
    return jsonify(dump(ApiKeyOut, api_keys.revoke_key(g.tenant.id, key_id, admin_actor())))


@api_bp.get("/tenants/<tenant_id>/members")
@endpoint("List a tenant's members and tenant admins, with seats used", response=MemberListOut,
          errors=(401, 404), tags=TAGS)
def list_members():
    return jsonify(dump(MemberListOut, {"data": users.list_users(g.tenant.id),
                                        "seats_used": users.seats_used(g.tenant.id),
                                        "max_seats": g.tenant.max_seats}))


@api_bp.post("/tenants/<tenant_id>/members")
@endpoint("Add a member (or tenant admin) to a tenant", body=UserCreateIn, response=UserOut, status=201,
          errors=(401, 404, 409), tags=TAGS)
def create_member(body: UserCreateIn):
    user = users.create_user(g.tenant.id, admin_actor(), **body.model_dump())
    return jsonify(dump(UserOut, user)), 201


@api_bp.patch("/tenants/<tenant_id>/members/<member_id>")
@endpoint("Change a member's nickname, password or active state", body=UserUpdateIn, response=UserOut,
          errors=(401, 404, 409), tags=TAGS)
def update_member(member_id: str, body: UserUpdateIn):
    user = users.update_user(g.tenant.id, member_id, admin_actor(), body.model_dump(exclude_unset=True))
    return jsonify(dump(UserOut, user))


@api_bp.get("/tenants/<tenant_id>/devices")
@endpoint("List a tenant's bound devices", response=DeviceListOut, errors=(401, 404), tags=TAGS)
def list_devices():
    return jsonify(dump(DeviceListOut, {"data": devices.list_devices(g.tenant.id)}))


@api_bp.delete("/tenants/<tenant_id>/devices/<device_id>")
@endpoint("Unbind a device so its user can log in from a new one", status=204, errors=(401, 404), tags=TAGS)
def unbind_device(device_id: str):
    devices.unbind_device(g.tenant.id, device_id, admin_actor())
    return "", 204
