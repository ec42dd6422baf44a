"""The events tenants can subscribe to, and what fires them: a generation that finished, and available
credits that fell below the tenant's threshold. Each is written in the caller's transaction."""
from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.identity.tenants import get_tenant
from app.webhooks.deliveries import emit
from app.webhooks.models import WebhookDelivery

# Result links in a webhook outlive its retries (about a day); later, GET /api/v1/generations/{id}
# signs fresh ones.
LINK_LIFETIME = timedelta(days=7)
MAX_THRESHOLD = 10**12
FINISHED_EVENTS = {"COMPLETED": "generation.completed", "FAILED": "generation.failed"}


def generation_finished(generation) -> list[WebhookDelivery]:
    """generation.completed or generation.failed, with the object the API answers for it (a video's,
    a Midjourney task's, else the generation's; links on PUBLIC_BASE_URL). Call it in the transaction
    that finishes the generation, after storage.confirm, so its results are listed."""
    from app.schemas.generation import generation_out
    from app.schemas.videos import midjourney_out, video_out
    from app.storage import service as storage
    from app.storage import signing

    event_type = FINISHED_EVENTS[generation.status]
    base = current_app.config["PUBLIC_BASE_URL"]

    def data() -> dict:
        if generation.kind == "video":
            return video_out(generation, lambda path: base + path)
        files = storage.files_of([generation.id])[generation.id]

        def sign(stored) -> str:
            return signing.signed_url(stored, expires_in=int(LINK_LIFETIME.total_seconds()), external_base=base)

        if generation.kind == "midjourney":
            return midjourney_out(generation, sign(files[0]) if files else None)
        return generation_out(generation, files, sign)

    return emit(generation.tenant_id, event_type, data)


def set_low_credits_threshold(tenant_id: uuid.UUID, threshold: int | None, actor: Actor) -> Tenant:
    """credits.low fires once each time available credits fall below `threshold` (None: never). A new
    threshold is armed afresh and checked at once."""
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)
                                  or not 0 <= threshold <= MAX_THRESHOLD):
        raise InvalidInput(f"low_credits_threshold must be a whole number of credits from 0 to {MAX_THRESHOLD:,}, "
                           "or null for no alert.", param="low_credits_threshold")
    with atomic():
        tenant = get_tenant(tenant_id, for_update=True)
        changed = audit.diff(tenant, {"low_credits_threshold": threshold})
        if changed:
            tenant.low_credits_notified_at = None
            audit.record(actor, "tenant.update", target_type="tenant", target_id=tenant.id, tenant_id=tenant.id,
                         changes=changed)
            db.session.flush()
            check_low_credits(tenant.id)
    return tenant


_tenants = Tenant.__table__
_available = _tenants.c.balance - _tenants.c.held


def check_low_credits(tenant_id: uuid.UUID) -> bool:
    """After credits moved, in the caller's transaction: fire credits.low if available credits are now
    below the threshold and it has not fired since they were last at or above it; re-arm once they
    are. Both are compare-and-set on low_credits_notified_at. Returns whether it fired."""
    with atomic():
        row = db.session.execute(sa.select(_tenants.c.low_credits_threshold, _tenants.c.low_credits_notified_at)
                                 .where(_tenants.c.id == tenant_id)).first()
        if row is None or (row.low_credits_threshold is None and row.low_credits_notified_at is None):
            return False  # most tenants: no alert, nothing to write
        fired = db.session.execute(
            sa.update(_tenants)
            .where(_tenants.c.id == tenant_id, _tenants.c.low_credits_notified_at.is_(None),
                   _tenants.c.low_credits_threshold.is_not(None), _available < _tenants.c.low_credits_threshold)
            .values(low_credits_notified_at=utcnow())
            .returning(_tenants.c.balance, _tenants.c.held, _tenants.c.low_credits_threshold)).first()
        if fired is not None:
            emit(tenant_id, "credits.low", {"tenant_id": str(tenant_id), "available": fired.balance - fired.held,
                                            "balance": fired.balance, "held": fired.held,
                                            "threshold": fired.low_credits_threshold})
            return True
        db.session.execute(
            sa.update(_tenants)
            .where(_tenants.c.id == tenant_id, _tenants.c.low_credits_notified_at.is_not(None),
                   sa.or_(_tenants.c.low_credits_threshold.is_(None), _available >= _tenants.c.low_credits_threshold))
            .values(low_credits_notified_at=None))
        return False
