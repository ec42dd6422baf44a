"""Emptying a tenant's storage in our bucket: for a tenant that is gone (deactivated, and later deleted).

Its objects leave the meter and are marked DELETING in one transaction, exactly as a deleted result's are;
then `remove_deleting` removes them, and the storage sweep retries whatever it could not remove. Objects in
a tenant's own bucket (CUSTOM mode) are the tenant's: they are never touched here.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from app.core.db import utcnow
from app.core.errors import Conflict
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.identity.tenants import get_tenant
from app.storage import service as storage
from app.storage.backends import platform_places
from app.storage.models import StoredFile


@dataclass(frozen=True)
class Purged:
    objects: int  # unmetered and marked for removal by this call
    size_bytes: int
    removed: int  # objects removed now (every DELETING one, this tenant's and any left from before)


def purge_tenant(tenant_id, actor: Actor) -> Purged:
    """Remove a deactivated tenant's objects from our bucket. Running it again removes what is left."""
    files = StoredFile.__table__
    with atomic():
        tenant = get_tenant(tenant_id, for_update=True)
        if tenant.is_active:
            raise Conflict("Deactivate the tenant first: its objects are removed only once it cannot use them.",
                           code="tenant_active")
        sizes = db.session.execute(
            sa.update(files).where(files.c.tenant_id == tenant.id, files.c.status == "STORED", _in_our_storage(files))
            .values(status="DELETING", deleted_at=utcnow()).returning(files.c.size_bytes)).scalars().all()
        if sizes:
            tenants = Tenant.__table__
            db.session.execute(sa.update(tenants).where(tenants.c.id == tenant.id)
                               .values(storage_used_bytes=tenants.c.storage_used_bytes - sum(sizes)))
        audit.record(actor, "tenant.purge_storage", target_type="tenant", target_id=tenant.id, tenant_id=tenant.id,
                     changes={"objects": len(sizes), "size_bytes": sum(sizes)})
    return Purged(len(sizes), sum(sizes), storage.remove_deleting())


def _in_our_storage(files):
    """Objects on our local disk or in the platform's bucket; a tenant's own bucket is never ours."""
    return sa.or_(*(sa.and_(files.c.backend == backend, files.c.bucket == bucket)
                    for backend, bucket in platform_places()))
