"""The sweep (`flask holds expire`, every minute from cron): it ends what a dead process left behind.

A process killed mid-generation leaves its generation active, its hold HELD and its Idempotency-Key
IN_PROGRESS, so a retry would answer 409 for a day. The sweep fails such generations with the flow's
own `record_failure` (the hold resolved, unconfirmed objects discarded, a failed usage row, the key
forgotten so a retry runs again), each in its own transaction and by the same compare-and-set on the
status, so a worker finishing at the same moment and the sweep never both win:

- a generation past its deadline, test-mode ones (which have no hold) too: `deadline_exceeded`;
- a hold past its expiry: it expires, and its generation fails in the same transaction.

A hold outlives its generation's deadline by HOLD_TTL_SECONDS, so the first rule normally acts first.
`older_than` is for an operator cleaning up after a crash: whatever started before then is treated as
dead, whatever its deadline or expiry (`generation_abandoned`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm.exc import StaleDataError

from app.billing import ledger
from app.core.db import utcnow
from app.core.transaction import atomic
from app.extensions import db
from app.generation import flow
from app.generation.models import ACTIVE_STATUSES, Generation

DEADLINE_EXCEEDED = ("deadline_exceeded", "The generation did not finish before its deadline and was stopped; "
                                          "nothing was charged.")
ABANDONED = ("generation_abandoned", "The generation was abandoned: the server running it stopped before it "
                                     "finished. Nothing was charged.")
BATCH = 500


@dataclass(frozen=True)
class Swept:
    generations: int  # failed
    holds: int  # expired


def sweep(now: datetime | None = None, *, older_than: timedelta | None = None) -> Swept:
    now = now or utcnow()
    started_before = now - older_than if older_than is not None else None
    holds, failed = _expire_holds(now, started_before)
    return Swept(failed + _fail_overdue(now, started_before), holds)


def _reason(generation: Generation, now: datetime) -> tuple[str, str]:
    return DEADLINE_EXCEEDED if generation.deadline_at is not None and generation.deadline_at <= now else ABANDONED


def _expire_holds(now: datetime, started_before: datetime | None) -> tuple[int, int]:
    holds = failed = 0
    while True:  # in batches, until one changes nothing: a backlog must not wait for the next sweep
        progress = 0
        for hold_id in ledger.due_holds(now, BATCH, created_before=started_before):
            try:
                with atomic():
                    # The generation's row first, as the flow takes it: a finishing worker waits or wins.
                    generation = flow.locked(Generation.hold_id == hold_id)
                    if generation is not None and flow.record_failure(generation, *_reason(generation, now),
                                                                      expire_hold=True):
                        failed += 1
                        expired = True
                    else:
                        expired = ledger.expire(hold_id)
            except StaleDataError:
                continue  # SQLite cannot lock the row: its worker moved on; the next batch looks again
            holds += expired
            progress += 1
        if not progress:
            return holds, failed


def _fail_overdue(now: datetime, started_before: datetime | None) -> int:
    overdue = Generation.deadline_at <= now
    if started_before is not None:
        overdue = sa.or_(overdue, Generation.created_at <= started_before)
    failed = 0
    while True:
        progress = 0
        batch = db.session.scalars(sa.select(Generation.id).where(Generation.status.in_(ACTIVE_STATUSES), overdue)
                                   .order_by(Generation.deadline_at).limit(BATCH)).all()
        for generation_id in batch:
            try:
                with atomic():
                    generation = flow.locked(Generation.id == generation_id)
                    ended = generation is not None and flow.record_failure(generation, *_reason(generation, now))
            except StaleDataError:
                continue
            failed += ended
            progress += 1
        if not progress:
            return failed
