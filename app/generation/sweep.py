"""The sweeps: they end, or hand back to a worker, what a dead process left behind.

`sweep` (`flask holds expire`, the worker every minute):

A process killed mid-generation leaves its generation active, its hold HELD and its Idempotency-Key
IN_PROGRESS, so a retry would answer 409 for a day. The sweep fails such generations with the flow's
own `record_failure` (the hold resolved, unconfirmed objects discarded, a failed usage row, the key
forgotten so a retry runs again), each in its own transaction and by the same compare-and-set on the
status, so a worker finishing at the same moment and the sweep never both win:

- a generation past its deadline, test-mode ones (which have no hold) too: `deadline_exceeded`;
- a hold past its expiry: it expires, and its generation fails in the same transaction.

A hold outlives its generation's deadline by HOLD_TTL_SECONDS, so the first rule normally acts first.
`older_than` is for an operator cleaning up after a crash: whatever started before then is treated as
dead, whatever its deadline or expiry (`generation_abandoned`). A Midjourney task past its deadline is
asked for its real final state first: one that succeeded late is completed and charged, not refunded.

`reconcile` (`flask generations reconcile`, the worker every minute) looks at the queue's work from
the database, which is the source of truth:

- a PENDING generation was never sent to the gateway: its job is enqueued again (a job lost with a
  flushed queue runs; a duplicate finds it claimed and does nothing);
- a running generation whose worker's lease lapsed (the worker was killed) was sent, and sending it
  again would be a second vendor charge: it fails and its hold is released — except a Midjourney task,
  which was submitted and can be polled again, so a worker resumes polling it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm.exc import StaleDataError

from flask import current_app

from app import jobs
from app.billing import ledger
from app.catalog import service as catalog
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.transaction import atomic
from app.extensions import db
from app.gateway import client as gateway
from app.generation import flow
from app.generation.kinds import midjourney
from app.generation.models import ACTIVE_STATUSES, Generation

DEADLINE_EXCEEDED = ("deadline_exceeded", "The generation did not finish before its deadline and was stopped; "
                                          "nothing was charged.")
ABANDONED = ("generation_abandoned", "The generation was abandoned: the server running it stopped before it "
                                     "finished. Nothing was charged.")
QUEUE_TIMEOUT = ("queue_timeout", "The generation waited in the queue longer than its limit and was not started; "
                                  "nothing was charged.")
WORKER_LOST = ("worker_lost", "The worker running this generation stopped after the request reached the AI gateway; "
                              "it is not sent twice. Nothing was charged.")
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
    if generation.deadline_at is None or generation.deadline_at > now:
        return ABANDONED
    return QUEUE_TIMEOUT if generation.status == "PENDING" else DEADLINE_EXCEEDED


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
            if _finished_late(generation_id):
                progress += 1
                continue
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


def _finished_late(generation_id) -> bool:
    """A Midjourney task past its deadline may still have succeeded at the gateway: ask once. A success
    is completed and charged as usual; anything else is left to fail."""
    generation = db.session.get(Generation, generation_id)
    if generation is None or generation.kind != "midjourney" or not generation.upstream_task_id:
        return False
    target = _target_of(generation)
    try:
        answer = midjourney.poll(generation.upstream_task_id, target, once=True)
    except DomainError:
        return False
    if answer.body.get("status") != "SUCCESS":
        return False
    model, rule = catalog.priced_model(generation.model)
    try:
        flow.finish(flow.Started(generation, model, rule), answer, time.monotonic())
    except DomainError:
        return False
    except StaleDataError:
        db.session.rollback()
    return True


def _target_of(generation: Generation) -> gateway.Target:
    if generation.is_test:
        return gateway.sandbox_target()
    targets = gateway.targets_for(generation.gateway_id)
    return next((t for t in targets if t.gateway_id == generation.gateway_id), targets[0])


@dataclass(frozen=True)
class Reconciled:
    requeued: int  # PENDING, enqueued again
    failed: int    # lapsed leases, sent work: failed and released
    resumed: int   # lapsed leases, Midjourney tasks: polling again


def reconcile(now: datetime | None = None) -> Reconciled:
    now = now or utcnow()
    grace = timedelta(seconds=current_app.config["RECONCILE_PENDING_SECONDS"])
    waiting = db.session.scalars(sa.select(Generation.id).where(
        Generation.status == "PENDING", Generation.created_at <= now - grace).limit(BATCH)).all()
    for generation_id in waiting:
        jobs.enqueue("generation.execute", generation_id=str(generation_id))
    lapsed = db.session.execute(sa.select(Generation.id, Generation.kind, Generation.upstream_task_id).where(
        Generation.status.in_(ACTIVE_STATUSES[1:]), Generation.lease_until < now).limit(BATCH)).all()
    failed = resumed = 0
    for generation_id, kind, task_id in lapsed:
        if kind == "midjourney" and task_id:
            jobs.enqueue("generation.resume", generation_id=str(generation_id))
            resumed += 1
            continue
        try:
            with atomic():
                generation = flow.locked(sa.and_(Generation.id == generation_id, Generation.lease_until < now))
                failed += generation is not None and flow.record_failure(generation, *WORKER_LOST)
        except StaleDataError:
            continue
    db.session.commit()
    return Reconciled(len(waiting), failed, resumed)
