"""The one way to load an object by id. A malformed, missing or (for tenant-owned objects) foreign
id is the same 404, so one tenant cannot probe for another's objects."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.core.db import parse_uuid
from app.core.errors import NotFound
from app.extensions import db


def _not_found(what: str) -> NotFound:
    return NotFound(f"No such {what}.", code=f"{what.replace(' ', '_')}_not_found")


def get_or_404(model, object_id, *, what: str, for_update: bool = False):
    """By id alone: for what is not tenant-owned (tenants themselves, gateways, models)."""
    object_uuid = parse_uuid(object_id)
    obj = None
    if object_uuid is not None:
        query = sa.select(model).where(model.id == object_uuid)
        if for_update:
            # populate_existing: a row already in the session must show the values read under the lock.
            query = query.with_for_update().execution_options(populate_existing=True)
        obj = db.session.scalar(query)
    if obj is None:
        raise _not_found(what)
    return obj


def get_for_tenant(model, tenant_id: uuid.UUID, object_id, *, what: str, for_update: bool = False):
    """By id *and* tenant: every tenant-owned object is loaded through here."""
    object_uuid = parse_uuid(object_id)
    if object_uuid is None:
        raise _not_found(what)
    query = sa.select(model).where(model.id == object_uuid, model.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    obj = db.session.scalar(query)
    if obj is None:
        raise _not_found(what)
    return obj
