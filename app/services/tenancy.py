"""The one way to load a tenant-owned object: by id *and* tenant. A foreign id and a missing id
are the same 404, so one tenant cannot probe for another's objects."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.errors import NotFound
from app.extensions import db
from app.models import Tenant, parse_uuid


def get_for_tenant(model, tenant_id: uuid.UUID, object_id, *, what: str, for_update: bool = False):
    object_uuid = parse_uuid(object_id)
    if object_uuid is None:
        raise NotFound(f"No such {what}.", code=f"{what.replace(' ', '_')}_not_found")
    query = sa.select(model).where(model.id == object_uuid, model.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    obj = db.session.scalar(query)
    if obj is None:
        raise NotFound(f"No such {what}.", code=f"{what.replace(' ', '_')}_not_found")
    return obj


def get_tenant(tenant_id, *, for_update: bool = False) -> Tenant:
    tenant_uuid = parse_uuid(tenant_id)
    tenant = None
    if tenant_uuid is not None:
        query = sa.select(Tenant).where(Tenant.id == tenant_uuid)
        if for_update:
            # populate_existing: a row already in the session must show the values read under the lock.
            query = query.with_for_update().execution_options(populate_existing=True)
        tenant = db.session.scalar(query)
    if tenant is None:
        raise NotFound("No such tenant.", code="tenant_not_found")
    return tenant
