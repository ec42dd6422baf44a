"""The JSON admin API at /admin/api, for the platform operator's scripts.

Every route needs `Authorization: Bearer <admin token>` (from `flask admins token`). The admin and,
for routes under /tenants/<tenant_id>, the tenant are resolved once per request, before the view runs:
an unknown or malformed tenant id is a 404 for every route below it, and objects under it are looked
up by that tenant, so another tenant's member, key or device is the same 404."""
from __future__ import annotations

from flask import Blueprint, g, request

from app.api.auth import client_ip
from app.core.errors import Unauthenticated
from app.identity import admins
from app.identity.audit import Actor
from app.identity.tenants import find_tenant

api_bp = Blueprint("admin_api", __name__, url_prefix="/admin/api")
TAGS = ("admin",)


@api_bp.url_value_preprocessor
def pull_tenant_id(endpoint, values):
    # Kept aside until the admin is known: an unauthenticated caller must not learn which tenants exist.
    g.admin_api_tenant_id = (values or {}).pop("tenant_id", None)


@api_bp.before_request
def authenticate_admin():
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer " or not header[7:].strip():
        raise Unauthenticated("Missing credentials: send 'Authorization: Bearer <admin token>'.",
                              code="missing_credentials")
    g.admin = admins.authenticate_token(header[7:])
    if g.admin_api_tenant_id is not None:
        g.tenant = find_tenant(g.admin_api_tenant_id)


def admin_actor() -> Actor:
    return Actor("platform_admin", str(g.admin.id), g.admin.username, None, client_ip())


# The routes register themselves.
from app.admin.api import (billing, buckets, catalog, docs, gateways, generations, storage, tenants,  # noqa: E402,F401
                           usage, webhooks)
