"""How each gateway is doing, from the outcomes of real calls: success and error counts, the last
error. Buffered like API-key use, so a generation costs no row lock on its gateway."""
from __future__ import annotations

import uuid

from app.core.counters import BufferedCounter
from app.core.db import utcnow
from app.gateway.models import Gateway

_counts = BufferedCounter(Gateway.__table__)


def note_health(gateway_id: uuid.UUID | None, *, ok: bool, error: str | None = None) -> None:
    """Count one call's outcome against its Gateway row (the default gateway has none)."""
    if gateway_id is None:
        return
    if ok:
        _counts.add(gateway_id, {"success_count": 1}, {"last_success_at": utcnow()})
    else:
        _counts.add(gateway_id, {"error_count": 1},
                    {"last_error": (error or "error")[:500], "last_error_at": utcnow()})


def flush_health(force: bool = False) -> int:
    return _counts.flush(force)
