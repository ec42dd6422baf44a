"""Sign-in and who is calling, and the tenant-admin API: a tenant admin (or an `admin`-scoped key)
manages its own tenant's members, devices and keys, never another's."""
from __future__ import annotations

from flask import jsonify

from app.api import bp
from app.api.auth import AUTH, authenticate, client_ip, current_principal, public, tenant_admin_required
from app.api.openapi import endpoint
from app.identity import api_keys, devices, sessions, users
from app.schemas import dump
from app.schemas.identity import (ApiKeyCreatedOut, ApiKeyCreateIn, ApiKeyListOut, ApiKeyOut, DeviceListOut, LoginIn,
                                  LogoutIn, MemberListOut, MeOut, OkOut, RefreshIn, TenantSummaryOut, TokensOut,
                                  UserCreateIn, UserOut, UserUpdateIn)


def _tokens(issued: sessions.IssuedTokens):
    return jsonify(TokensOut(
        access_token=issued.access_token, refresh_token=issued.refresh_token, expires_in=issued.expires_in,
        user=UserOut.model_validate(issued.user), tenant=TenantSummaryOut.model_validate(issued.tenant),
    ).model_dump(mode="json"))


@bp.post("/auth/login")
@public
@endpoint("Log a member or tenant admin in", body=LoginIn, response=TokensOut, errors=(401, 403, 429),
          tags=("auth",))
def login(body: LoginIn):
    return _tokens(sessions.login(api_key=body.api_key, username=body.username, password=body.password,
                                  device_id=body.device_id, device_info=body.device_info, ip=client_ip()))


@bp.post("/auth/refresh")
@public
@endpoint("Exchange a refresh token for new tokens (the old one stops working)", body=RefreshIn,
          response=TokensOut, errors=(401,), tags=("auth",))
def refresh(body: RefreshIn):
    return _tokens(sessions.refresh(body.refresh_token))


@bp.post("/auth/logout")
@public
@endpoint("End a session, named by its refresh token or by the access token sent", body=LogoutIn,
          response=OkOut, errors=(401,), tags=("auth",))
def logout(body: LogoutIn):
    session_id = None
    if not body.refresh_token:
        principal = authenticate()
        session_id = principal.session_id
    sessions.logout(body.refresh_token, session_id)
    return jsonify(OkOut().model_dump())


@bp.get("/me")
@endpoint("Who is calling: member, tenant admin or API key, and their tenant", response=MeOut,
          auth=("api_key", "member"), tags=("auth",))
def me():
    principal = current_principal()
    return jsonify(MeOut(
        kind=principal.kind, mode=principal.mode,
        user=(UserOut.model_validate(users.get_user(principal.tenant_id, principal.user.id))
              if principal.user else None),
        api_key=(ApiKeyOut.model_validate(api_keys.get_key(principal.tenant_id, principal.api_key.id))
                 if principal.api_key else None),
        tenant=TenantSummaryOut.model_validate(principal.tenant),
    ).model_dump(mode="json"))


@bp.get("/tenant/members")
@endpoint("List the tenant's members and admins", response=MemberListOut, auth=AUTH, errors=(403,), tags=("tenant",))
@tenant_admin_required
def list_members():
    tenant = current_principal().tenant
    return jsonify(dump(MemberListOut, {"data": users.list_users(tenant.id), "seats_used": users.seats_used(tenant.id),
                                      "max_seats": tenant.max_seats}))


@bp.post("/tenant/members")
@endpoint("Add a member (or tenant admin)", body=UserCreateIn, response=UserOut, status=201, auth=AUTH,
          errors=(403, 409), tags=("tenant",))
@tenant_admin_required
def create_member(body: UserCreateIn):
    principal = current_principal()
    user = users.create_user(principal.tenant_id, principal.actor(), **body.model_dump())
    return jsonify(dump(UserOut, user)), 201


@bp.patch("/tenant/members/<member_id>")
@endpoint("Change a member's nickname, password or active state", body=UserUpdateIn, response=UserOut,
          auth=AUTH, errors=(403, 404, 409), tags=("tenant",))
@tenant_admin_required
def update_member(member_id: str, body: UserUpdateIn):
    principal = current_principal()
    user = users.update_user(principal.tenant_id, member_id, principal.actor(), body.model_dump(exclude_unset=True))
    return jsonify(dump(UserOut, user))


@bp.get("/tenant/devices")
@endpoint("List bound devices", response=DeviceListOut, auth=AUTH, errors=(403,), tags=("tenant",))
@tenant_admin_required
def list_devices():
    return jsonify(dump(DeviceListOut, {"data": devices.list_devices(current_principal().tenant_id)}))


@bp.delete("/tenant/devices/<device_id>")
@endpoint("Unbind a device so its user can log in from a new one", auth=AUTH, status=204, errors=(403, 404),
          tags=("tenant",))
@tenant_admin_required
def unbind_device(device_id: str):
    principal = current_principal()
    devices.unbind_device(principal.tenant_id, device_id, principal.actor())
    return "", 204


@bp.get("/tenant/keys")
@endpoint("List the tenant's API keys (never the keys themselves)", response=ApiKeyListOut, auth=AUTH,
          errors=(403,), tags=("tenant",))
@tenant_admin_required
def list_keys():
    return jsonify(dump(ApiKeyListOut, {"data": api_keys.list_keys(current_principal().tenant_id)}))


@bp.post("/tenant/keys")
@endpoint("Create an API key; the key is shown once, in this response", body=ApiKeyCreateIn,
          response=ApiKeyCreatedOut, status=201, auth=AUTH, errors=(403,), tags=("tenant",))
@tenant_admin_required
def create_key(body: ApiKeyCreateIn):
    principal = current_principal()
    key, raw = api_keys.create_key(principal.tenant_id, principal.actor(), **body.model_dump())
    return jsonify(dump(ApiKeyCreatedOut, {**dump(ApiKeyOut, key), "key": raw})), 201


@bp.delete("/tenant/keys/<key_id>")
@endpoint("Revoke an API key", response=ApiKeyOut, auth=AUTH, errors=(403, 404), tags=("tenant",))
@tenant_admin_required
def revoke_key(key_id: str):
    principal = current_principal()
    return jsonify(dump(ApiKeyOut, api_keys.revoke_key(principal.tenant_id, key_id, principal.actor())))
