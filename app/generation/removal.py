"""Stopping and deleting a generation. Cancel (the API's DELETE of a running one, a platform admin's
Jobs page) fails it and releases its hold; DELETE /api/v1/generations/{id} and a video's DELETE cancel
a running one and soft-delete a finished one with its objects."""
from __future__ import annotations

from sqlalchemy.orm.exc import StaleDataError

from app.core.db import utcnow
from app.core.errors import Conflict
from app.core.transaction import atomic
from app.generation import flow
from app.generation.models import Generation
from app.identity import audit
from app.identity.audit import Actor
from app.storage import service as storage

CANCELLED = ("cancelled", "Cancelled by the client; nothing was charged. The AI gateway may still finish it: "
                          "its result is discarded.")
CANCELLED_BY_ADMIN = ("cancelled", "Cancelled by a platform admin; nothing was charged. The AI gateway may still "
                                   "finish it: its result is discarded.")


class GenerationNotActive(Conflict):
    code = "generation_not_active"


def cancel(generation: Generation, actor: Actor | None = None, *, reason: tuple[str, str] = CANCELLED) -> Generation:
    """Stop a queued or running generation: it fails with `cancelled`, its hold is released and nothing is
    charged. The row is locked (on PostgreSQL) and failed by a compare-and-set on its status, so of a worker
    finishing it and this cancel exactly one wins; a worker that loses discards what it stored. An admin's
    cancel (`actor`) is audited in the same transaction. Raises GenerationNotActive when it is already over."""
    for _attempt in range(3):
        try:
            with atomic():
                current = flow.locked(Generation.id == generation.id)
                was = current.status
                if not flow.record_failure(current, *reason):
                    raise GenerationNotActive(f"This generation is already {was.lower()}; there is nothing to cancel.")
                if actor is not None:
                    audit.record(actor, "generation.cancel", target_type="generation", target_id=current.id,
                                 tenant_id=current.tenant_id,
                                 changes={"status": [was, "FAILED"], "credits_released": current.credits_held})
            return current
        except StaleDataError:
            continue  # SQLite cannot lock the row: its worker moved it on meanwhile; look again
    raise Conflict("The generation kept changing while it was being cancelled; try again.",
                   code="generation_in_progress")


def remove(generation: Generation) -> Generation:
    """A running generation is cancelled (its hold released; a worker still waiting on the gateway
    discards what it gets); a finished one is deleted: its row stays for the ledger, its objects stop
    being served and metered at once (their bytes go back to the tenant's meter) and are removed from
    their bucket after the commit; one that cannot be removed now stays DELETING for the storage sweep."""
    try:
        return cancel(generation)
    except GenerationNotActive:
        pass
    with atomic():
        current = flow.locked(Generation.id == generation.id)
        current.deleted_at = utcnow()
        storage.delete_objects(current.tenant_id, current.id)
    storage.remove_deleting(generation.id)
    return current
