"""Webhooks to tenant apps, by the Standard Webhooks specification: endpoints (endpoints.py), deliveries
and their attempts (deliveries.py), and the events that fire them (events.py).

What the rest of the app calls, inside its own transaction:
- `generation_finished(generation)` once a generation is COMPLETED (after storage.confirm) or FAILED;
- `check_low_credits(tenant_id)` after credits moved (settle, recharge, adjustment);
- `emit(tenant_id, event_type, data)` for anything else.
"""
from __future__ import annotations

from app.webhooks.deliveries import emit
from app.webhooks.events import check_low_credits, generation_finished
from app.webhooks.models import EVENT_TYPES

__all__ = ["EVENT_TYPES", "check_low_credits", "emit", "generation_finished"]
