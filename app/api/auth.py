"""Who is calling /api/v1: an API key, a member, or a tenant admin. Resolved once per request
into `g.principal`; every view is authenticated unless marked `@public` (deny by default)."""
from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

from flask import current_app, g, request
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import ExpiredSignatureError, InvalidTokenError

from app.core.errors import Forbidden, Unauthenticated
from app.generation.flow import Caller
from app.extensions import db
from app.identity.api_keys import KeyAccess, TenantAccess, find_usable_key, note_key_use
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.identity.sessions import Member, resolve_access

# Who may call most tenant endpoints: an API key or a member's (or tenant admin's) access token.
AUTH = ("api_key", "member")


@dataclass
class Principal:
    """`access` is the tenant's cached access state, enough for the generation path; `tenant`, the
    tenant's row, is read on first use by the views that show or change it (so none reads a stale
    balance or writes through a shared object)."""

    kind: str  # api_key | member | tenant_admin
    access: TenantAccess
    mode: str  # live | test
    user: Member | None = None
    session_id: uuid.UUID | None = None
    api_key: KeyAccess | None = None

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.access.id

    @functools.cached_property
    def tenant(self) -> Tenant:
        return db.session.get(Tenant, self.access.id)

    @property
    def is_tenant_admin(self) -> bool:
        if self.api_key is not None:
            return "admin" in self.api_key.scopes
        return self.kind == "tenant_admin"

    @property
    def can_generate(self) -> bool:
        return self.api_key is None or "generate" in self.api_key.scopes

    def actor(self) -> Actor:
        if self.api_key is not None:
            return Actor("api_key", str(self.api_key.id), self.api_key.prefix, self.tenant_id, client_ip())
        return Actor("tenant_admin" if self.kind == "tenant_admin" else "member", str(self.user.id),
                     self.user.username, self.tenant_id, client_ip())


def client_ip() -> str | None:
    # ProxyFix (configured by TRUST_PROXY_HOPS) has already put the client's address here.
    return request.remote_addr


def public(view):
    view.public = True
    return view


def _credential() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("X-API-Key", "").strip() or None


def authenticate() -> Principal:
    credential = _credential()
    if not credential:
        raise Unauthenticated("Missing credentials: send 'Authorization: Bearer <api key or access token>'.",
                              code="missing_credentials")
    if credential.startswith("wk_"):
        key = find_usable_key(credential)
        note_key_use(key.id)
        return Principal("api_key", key.tenant, key.mode, api_key=key)
    try:
        claims = decode_token(credential)
    except ExpiredSignatureError:
        raise Unauthenticated("Access token has expired; refresh it.", code="token_expired") from None
    except (InvalidTokenError, JWTExtendedException):  # the latter: well-signed but missing claims
        raise Unauthenticated("Invalid access token.", code="invalid_token") from None
    if claims.get("type") != "access":
        raise Unauthenticated("Invalid access token.", code="invalid_token")
    resolved = resolve_access(claims)
    if resolved is None:
        raise Unauthenticated("This session has ended; log in again.", code="session_ended")
    return Principal("tenant_admin" if resolved.user.role == "admin" else "member", resolved.tenant,
                     resolved.key_mode, user=resolved.user, session_id=resolved.session_id)


def load_principal() -> None:
    """before_request for the API blueprint."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None or getattr(view, "public", False):
        return
    g.principal = authenticate()


def current_principal() -> Principal:
    return g.principal


def generation_caller():
    """The caller of a paid generation: refused without the `generate` scope."""

    principal = current_principal()
    if not principal.can_generate:
        raise Forbidden("This API key has no 'generate' scope.", code="scope_required")
    return Caller(principal.access, principal.user.id if principal.user else None,
                  principal.api_key.id if principal.api_key else None, principal.mode == "test", principal.actor())


def own_only() -> uuid.UUID | None:
    """Whose generations the caller may see: a member only their own (their id); others the tenant's."""
    principal = current_principal()
    return principal.user.id if principal.kind == "member" else None


def tenant_admin_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not g.principal.is_tenant_admin:
            raise Forbidden("This needs a tenant admin (or an API key with the 'admin' scope).",
                            code="tenant_admin_required")
        return view(*args, **kwargs)

    return wrapper
