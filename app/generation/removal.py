"""Deleting a generation (DELETE /api/v1/generations/{id}, and a video's DELETE): a running one is
cancelled, a finished one soft-deleted with its objects."""
from __future__ import annotations

from app.core.db import utcnow
from app.core.transaction import atomic
from app.generation import flow
from app.generation.models import ACTIVE_STATUSES, Generation
from app.storage import service as storage

CANCELLED = ("cancelled", "Cancelled by the client; nothing was charged. The AI gateway may still finish it: "
                          "its result is discarded.")


def remove(generation: Generation) -> Generation:
    """A running generation is cancelled (its hold released; a worker still waiting on the gateway
    discards what it gets); a finished one is deleted: its row stays for the ledger, its objects stop
    being served and metered at once (their bytes go back to the tenant's meter) and are removed from
    their bucket after the commit; one that cannot be removed now stays DELETING for the storage sweep."""
    with atomic():
        current = flow.locked(Generation.id == generation.id)
        if current.status in ACTIVE_STATUSES:
            flow.record_failure(current, *CANCELLED)
        else:
            current.deleted_at = utcnow()
            storage.delete_objects(current.tenant_id, current.id)
    storage.remove_deleting(generation.id)
    return current
