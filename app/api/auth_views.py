from __future__ import annotations

from flask import jsonify

from app.api import bp
from app.api.auth import authenticate, client_ip, current_principal, public
from app.api.openapi import endpoint
from app.identity import sessions
from app.schemas.identity import (ApiKeyOut, LoginIn, LogoutIn, MeOut, OkOut, RefreshIn, TenantSummaryOut, TokensOut,
                                  UserOut)


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
        session_id = principal.session.id if principal.session else None
    sessions.logout(body.refresh_token, session_id)
    return jsonify(OkOut().model_dump())


@bp.get("/me")
@endpoint("Who is calling: member, tenant admin or API key, and their tenant", response=MeOut,
          auth=("api_key", "member"), tags=("auth",))
def me():
    principal = current_principal()
    return jsonify(MeOut(
        kind=principal.kind, mode=principal.mode,
        user=UserOut.model_validate(principal.user) if principal.user else None,
        api_key=ApiKeyOut.model_validate(principal.api_key) if principal.api_key else None,
        tenant=TenantSummaryOut.model_validate(principal.tenant),
    ).model_dump(mode="json"))
