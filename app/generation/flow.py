"""A generation, end to end (docs/architecture.md, "A generation, end to end"):

validate → model enabled? → estimate → hold (+ idempotency row) → PENDING → gateway (GENERATING)
→ copy results into the tenant's storage (UPLOADING) → settle the actual → COMPLETED → usage record.
Any failure releases the hold, marks the generation FAILED with a clear error, records the failed
usage and forgets the idempotency key (nothing was charged, so a retry may run again). A generation
whose process died is failed the same way by the sweep (sweep.py). Every status change is a
compare-and-set (see Generation), so a finishing worker and the sweep never both win. What differs
between kinds (the gateway route, what is forwarded, how the answer is read) is in kinds/.

A chat the client streams (run_streamed) is held the same way; if the gateway streams too, its chunks
are relayed as they arrive and the settle comes when the stream ends, or when the client leaves.

Test-mode callers (wk_test_ keys and sessions opened with them) always go to the sandbox and never
touch credits; their generations and usage are marked test.
"""
from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from app import jobs, webhooks
from app.billing import idempotency, ledger
from app.billing.models import CreditHold, IdempotencyKey
from app.catalog import pricing
from app.catalog import service as catalog
from app.catalog.models import AiModel, PriceRule
from app.core.db import rfc3339, utcnow
from app.core.errors import Conflict, DomainError, InvalidInput, Throttled
from app.core.lookup import get_for_tenant
from app.core.transaction import atomic
from app.extensions import db
from app.gateway import client as gateway
from app.gateway import sandbox as sandbox_link
from app.gateway.fetch import fetch_result
from app.generation import kinds, phases, usage
from app.generation.models import ACTIVE_STATUSES, FINAL_STATUSES, LONG_KINDS, Generation
from app.identity.api_keys import TenantAccess
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.storage import backends as storage_backends
from app.storage import quota
from app.storage import service as storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    # Its id and enabled models: the cached access of an authenticated request, or the row itself.
    tenant: TenantAccess | Tenant
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    is_test: bool
    actor: Actor


class TooManyJobs(Throttled):
    code = "too_many_jobs"


class GenerationStopped(DomainError):
    """The generation was failed by a sweep while this request still ran (past its deadline, or its
    hold expired); the sweep's failure stands and nothing was charged."""

    status = 504
    type = "api_error"
    code = "deadline_exceeded"


@dataclass
class Started:
    generation: Generation
    model: AiModel
    rule: PriceRule
    # Read while the rows are loaded: start()'s commit expires them, and reloading costs two queries.
    gateway_id: uuid.UUID | None = field(init=False)
    route: str = field(init=False)
    billing_type: str = field(init=False)
    prices: dict = field(init=False)

    def __post_init__(self) -> None:
        self.gateway_id, self.route = self.model.gateway_id, self.model.route
        self.billing_type, self.prices = self.rule.billing_type, self.rule.prices


@dataclass
class Replay:
    generation: Generation


def _mark(generation: Generation, status: str) -> None:
    if generation.status in FINAL_STATUSES:  # read afresh after a commit: a sweep ended it meanwhile
        raise StaleDataError(f"generation {generation.id} is already {generation.status}")
    generation.status = status
    generation.timeline = [*generation.timeline, {"status": status, "at": rfc3339(utcnow())}]


def start(caller: Caller, kind: str, params: dict, *, idempotency_key: str | None = None,
          generating: bool = False, parent_id: uuid.UUID | None = None,
          routes: Collection[str] = ()) -> Started | Replay:
    """Everything before the gateway call, committed in one transaction: the hold, the idempotency
    row and the PENDING generation exist together or not at all. `generating`: the caller calls the
    gateway right away, so the generation is GENERATING in the same commit (one transaction less).
    `routes`: the gateway routes the endpoint's parameters are for (an upscale model on /videos/upscale)."""
    model, rule = catalog.model_for_tenant(caller.tenant, params.get("model"))
    if model.kind != kind:
        raise InvalidInput(f"{model.model_id} is a {model.kind} model, not {kind}.", param="model",
                           code="model_kind_mismatch")
    if routes and model.route not in routes:
        raise InvalidInput(f"{model.model_id} is not made on this endpoint: use "
                           f"{kinds.video.ENDPOINTS.get(model.route, model.route)}.", param="model",
                           code="model_endpoint_mismatch")
    # Priced, recorded and forwarded as prepared; the idempotency key compares the request as sent.
    sent, params = params, kinds.prepare(model, params)
    quote = pricing.estimate(rule.billing_type, rule.prices, params)
    if not caller.is_test and kind not in LONG_KINDS and phases.available():
        # PostgreSQL: the storage checks, the hold, the key's row and the generation in one statement
        # (phases.py). Test-mode callers hold nothing and long kinds count the job cap under the hold's
        # lock: those keep the portable path below, as does a key that already has a row.
        key = idempotency.check_key(idempotency_key)
        claim = None if key is None else IdempotencyKey(
            id=uuid.uuid4(), tenant_id=caller.tenant.id, scope=f"generation.{kind}", key=key,
            request_hash=idempotency.fingerprint(sent), expires_at=utcnow() + idempotency.KEY_LIFETIME)
        try:
            return _start(caller, kind, params, model, rule, quote, claim.id if claim else None, generating,
                          parent_id, one_statement=True, claim=claim)
        except phases.KeyTaken:
            pass
    quota.ensure_can_start(caller.tenant, kind, params, is_test=caller.is_test)
    key = idempotency.check_key(idempotency_key)
    if key is not None:
        with atomic():
            claimed = idempotency.claim(caller.tenant.id, f"generation.{kind}", key, sent)
            if isinstance(claimed, idempotency.Remembered):
                return Replay(get_for_tenant(Generation, caller.tenant.id, claimed.result["generation_id"],
                                             what="generation"))
            return _start(caller, kind, params, model, rule, quote, claimed.id, generating, parent_id)
    return _start(caller, kind, params, model, rule, quote, None, generating, parent_id)


def estimate(tenant: Tenant, params: dict) -> tuple[AiModel, pricing.Quote]:
    """What start() would hold for this request (priced as the gateway would be asked), holding nothing."""
    model, rule = catalog.model_for_tenant(tenant, params.get("model"))
    return model, pricing.estimate(rule.billing_type, rule.prices, kinds.prepare(model, params))


def _start(caller: Caller, kind: str, params: dict, model, rule, quote, idempotency_key_id,
           generating: bool, parent_id: uuid.UUID | None, *, one_statement: bool = False,
           claim: IdempotencyKey | None = None) -> Started:
    # The id is ours before the INSERT, so the hold can name it and the row is written once. A queued
    # generation's first deadline is its queue limit; once a worker claims it, it gets the kind's deadline.
    now, deadline = utcnow(), kind_deadline(kind)
    waits = timedelta(0) if generating else queue_limit(kind)
    generation = Generation(id=uuid.uuid4(), tenant_id=caller.tenant.id, user_id=caller.user_id,
                            api_key_id=caller.api_key_id, model=model.model_id, kind=kind, is_test=caller.is_test,
                            params=params, credits_held=0 if caller.is_test else quote.credits, timeline=[],
                            deadline_at=now + (deadline if generating else waits),
                            idempotency_key_id=idempotency_key_id, parent_id=parent_id, progress=0)
    _mark(generation, "PENDING")
    if generating:
        _mark(generation, "GENERATING")
        generation.started_at = now
    # The hold outlives the generation's deadline by a margin: the sweep that fails an overdue
    # generation (and releases its hold) always acts before the hold's blind expiry.
    hold_ttl = waits + deadline + timedelta(seconds=current_app.config["HOLD_TTL_SECONDS"])
    if one_statement:
        credit_hold = CreditHold(id=uuid.uuid4(), tenant_id=caller.tenant.id, amount=quote.credits, status="HELD",
                                 reference=f"generation:{generation.id}", description=f"{kind} {model.model_id}",
                                 expires_at=now + hold_ttl, created_at=now)
        generation.hold_id = credit_hold.id
        started = Started(generation, model, rule)  # before the statement: a commit in it would expire them
        phases.hold(generation, credit_hold, needs_bytes=quota.estimate(kind, params), claim=claim)
        return started
    with atomic(keep=(generation,)):
        if not caller.is_test:
            hold = ledger.hold(caller.tenant.id, quote.credits, reference=f"generation:{generation.id}",
                               description=f"{kind} {model.model_id}", ttl=hold_ttl)
            generation.hold_id = hold.id
        if kind in LONG_KINDS:
            _within_job_cap(caller.tenant.id)  # after the hold: on PostgreSQL its row lock serializes the count
        db.session.add(generation)
        started = Started(generation, model, rule)
    return started


def _within_job_cap(tenant_id: uuid.UUID) -> None:
    cap = current_app.config["MAX_ACTIVE_LONG_JOBS"]
    active = db.session.scalar(sa.select(sa.func.count()).select_from(Generation).where(
        Generation.tenant_id == tenant_id, Generation.kind.in_(LONG_KINDS), Generation.status.in_(ACTIVE_STATUSES)))
    if active >= cap:
        raise TooManyJobs(f"This tenant already has {active} videos or Midjourney tasks queued or running (at most "
                          f"{cap}); try again when one finishes.", retry_after=30)


def kind_deadline(kind: str) -> timedelta:
    """How long a generation of this kind may run once its gateway call starts (GENERATION_DEADLINE_*)."""
    return timedelta(seconds=current_app.config["GENERATION_DEADLINES"][kind])


def queue_limit(kind: str) -> timedelta:
    """How long a generation of this kind may wait in the queue before a worker takes it."""
    return timedelta(seconds=current_app.config["GENERATION_QUEUE_LIMITS"][kind])


@contextmanager
def _failing(started: Started):
    """Any failure in the block releases the hold and records it (fail()), then goes on up; a lost
    compare-and-set (a sweep or a cancel ended it meanwhile) answers with that outcome instead."""
    generation_id = started.generation.id
    try:
        yield
    except StaleDataError:
        raise _stopped(generation_id) from None
    except DomainError as error:
        fail(generation_id, error.code, error.message)
        raise
    except Exception:
        log.exception("generation %s failed unexpectedly", generation_id)
        fail(generation_id, "internal_error", "The generation failed on our side; nothing was charged.")
        raise


def execute(started: Started, *, lease: bool = False) -> Generation:
    """The gateway call and everything after it. Raises the domain error after recording a failure.
    `lease`: a worker runs it, claiming it with a lease its heartbeat renews (a lapsed lease tells the
    reconcile sweep the worker died)."""
    generation = started.generation
    with _failing(started):
        if generation.status != "GENERATING":
            _claim(generation, lease)
        with _heartbeat(generation.id, lease):
            began = time.monotonic()
            answer = _call(started, stream=False, progress=Progress(generation, lease))
            return finish(started, answer, began)


def _claim(generation: Generation, lease: bool) -> None:
    """PENDING → GENERATING, compare-and-set: of two workers given the same job, one runs it."""
    now = utcnow()
    with atomic(keep=(generation,)):
        _mark(generation, "GENERATING")
        generation.started_at = now
        generation.deadline_at = now + kind_deadline(generation.kind)
        if lease:
            generation.lease_until = now + timedelta(seconds=current_app.config["GENERATION_LEASE_SECONDS"])


def _call(started: Started, *, stream: bool, progress: Progress | None = None) -> gateway.Answer | gateway.Stream:
    generation = started.generation
    kind = kinds.kind_of(generation.kind)
    targets = [gateway.sandbox_target()] if generation.is_test else gateway.targets_for(started.gateway_id)
    if generation.upstream_task_id and generation.gateway_id is not None:  # a polled task resumes where it runs
        targets = [target for target in targets if target.gateway_id == generation.gateway_id] or targets
    payload = kinds.payload(kind, generation.params, started.route)
    if hasattr(kind, "call"):
        return kind.call(generation, targets, started.route, payload, progress)
    if stream:
        return gateway.call_streaming(targets, "POST", started.route, kind=generation.kind,
                                      payload={**payload, **kind.STREAM})
    return gateway.call(targets, "POST", started.route, kind=generation.kind, payload=payload)


def finish(started: Started, answer: gateway.Answer, began: float) -> Generation:
    """Read the answer, copy its results, settle the actual and complete, in one transaction."""
    generation = started.generation
    kind = kinds.kind_of(generation.kind)
    generation.upstream_ms = int((time.monotonic() - began) * 1000)
    generation.gateway_id = answer.target.gateway_id
    # Rows of results recorded outside the session, when the settle is expected to be one statement.
    results = Results(generation, answer.target, started.route,
                      one_statement=generation.hold_id is not None and generation.kind not in LONG_KINDS
                      and phases.available())
    try:
        measured = kind.collect(generation, answer, results)
    finally:
        results.close()
    charge = pricing.actual(started.billing_type, started.prices, generation.params, measured)
    credits = 0 if generation.is_test else charge.credits
    # Finished before the ledger's statements flush it, so the generation is written in one UPDATE.
    generation.credits_charged = credits
    generation.completed_at = utcnow()
    generation.progress, generation.lease_until = 100, None
    _mark(generation, "COMPLETED")
    if generation.hold_id is not None and credits <= generation.credits_held and phases.available():
        try:
            settled = phases.settle(generation, credits, _system_actor(generation), event="generation.completed",
                                    description=f"{generation.kind} {generation.model}", files=results.stored,
                                    usage={"input_tokens": measured.input_tokens, "output_tokens": measured.output_tokens,
                                           "seconds": measured.seconds, "latency_ms": generation.upstream_ms,
                                           "quantity": measured.images or measured.characters})
        except phases.Unsettled:
            pass  # the tenant has an endpoint for it: settled below, its delivery in the same transaction
        else:
            for row in results.detached:
                set_committed_value(row, "status", "STORED")
            generation.confirmed_files = [row for row in results.detached if row.variant == "result"]
            if credits and settled.low_credits_armed:
                # After the commit, in its own transaction: a crash in between skips this one check, and
                # the next charge makes it (available credits are still below the threshold).
                webhooks.check_low_credits(generation.tenant_id)
            return generation
    with atomic(keep=(generation,)):
        db.session.add_all(results.detached)  # their sizes are written with the generation
        db.session.flush()  # the compare-and-set on the status first: it decides before credits move
        if generation.hold_id is not None:
            ledger.settle(generation.hold_id, credits, _system_actor(generation),
                          description=f"{generation.kind} {generation.model}")
        if generation.results:
            storage.confirm(generation.tenant_id, generation.id)
        usage.record(generation, status="success", credits=credits, input_tokens=measured.input_tokens,
                     output_tokens=measured.output_tokens, seconds=measured.seconds,
                     quantity=measured.images or measured.characters, latency_ms=generation.upstream_ms)
        key_id = generation.idempotency_key_id
        record = db.session.get(IdempotencyKey, key_id) if key_id else None
        if record is not None:
            idempotency.finish(record, {"generation_id": str(generation.id)})
        webhooks.generation_finished(generation)
        if credits:
            webhooks.check_low_credits(generation.tenant_id)
    return generation


@contextmanager
def _heartbeat(generation_id: uuid.UUID, enabled: bool):
    """While a worker runs a generation, renew its lease every third of the lease, on a connection of
    its own (the worker's session may be waiting on the gateway for twenty minutes)."""
    if not enabled:
        yield
        return
    app, stop = current_app._get_current_object(), threading.Event()
    seconds = current_app.config["GENERATION_LEASE_SECONDS"]

    def beat():
        with app.app_context():
            while not stop.wait(seconds / 3):
                try:
                    with db.engine.begin() as connection:
                        connection.execute(_RENEW, {"generation": generation_id,
                                                    "until": utcnow() + timedelta(seconds=seconds)})
                except sa.exc.SQLAlchemyError:
                    log.warning("could not renew the lease of generation %s; retrying", generation_id)

    thread = threading.Thread(target=beat, name=f"lease-{generation_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


_generations = Generation.__table__
_RENEW = (sa.update(_generations)
          .where(_generations.c.id == sa.bindparam("generation"), _generations.c.status.in_(ACTIVE_STATUSES[1:]))
          .values(lease_until=sa.bindparam("until", type_=_generations.c.lease_until.type)))


class Progress:
    """What a polled call (Midjourney) reports while it runs, committed as it comes: each write is a
    compare-and-set on the status, so a cancelled or swept generation stops its worker at the next one."""

    def __init__(self, generation: Generation, lease: bool):
        self.generation, self.lease = generation, lease

    def task_started(self, task_id: str, target: gateway.Target) -> None:
        with atomic(keep=(self.generation,)):
            self.generation.upstream_task_id = task_id
            self.generation.gateway_id = target.gateway_id
            self.generation.progress = max(self.generation.progress, 1)
            self._renew()

    def advanced(self, percent: int) -> None:
        with atomic(keep=(self.generation,)):
            self.generation.progress = max(self.generation.progress, percent)
            self._renew()

    def _renew(self) -> None:
        if self.lease:
            self.generation.lease_until = utcnow() + timedelta(seconds=current_app.config["GENERATION_LEASE_SECONDS"])


def run(caller: Caller, kind: str, params: dict, *, idempotency_key: str | None = None) -> Generation:
    """Start and finish a generation in this request; a replayed key returns the earlier one."""
    started = start(caller, kind, params, idempotency_key=idempotency_key, generating=True)
    if isinstance(started, Replay):
        return started.generation
    return execute(started)


def run_streamed(caller: Caller, kind: str, params: dict, *,
                 idempotency_key: str | None = None) -> Generation | Streaming:
    """Like run(), for a client that streams. A gateway that streams answers a Streaming, whose
    chunks the caller relays as they arrive; one that answers whole (the deployed gateway) finishes here.
    A refusal or failure before the first chunk raises, as run() does."""
    started = start(caller, kind, params, idempotency_key=idempotency_key, generating=True)
    if isinstance(started, Replay):
        return started.generation
    with _failing(started):
        began = time.monotonic()
        opened = _call(started, stream=True)
        if isinstance(opened, gateway.Answer):
            return finish(started, opened, began)
    return Streaming(started, opened, began)


class Streaming:
    """A generation whose gateway streams. Relay `chunks()`, then `finish()` settles for what was
    generated; `close()` must follow in every case (a `finally`): if the relay stopped early (the client
    left), it hangs up on the gateway and settles for what had arrived. The hold is resolved exactly once."""

    def __init__(self, started: Started, stream: gateway.Stream, began: float) -> None:
        self.started, self.stream, self.began = started, stream, began
        self.generation = started.generation
        self.assembly = kinds.kind_of(self.generation.kind).Assembly()
        self.resolved = False

    def chunks(self) -> Iterator[dict]:
        try:
            with _failing(self.started):
                for chunk in self.stream.chunks():
                    self.assembly.add(chunk)
                    yield chunk
                if not self.assembly.finished:
                    raise gateway.UpstreamFailed("The AI gateway's stream ended before the answer did.")
        except Exception:
            self.resolved = True  # fail() released the hold
            raise

    def finish(self) -> Generation:
        self.resolved = True
        with _failing(self.started):
            return finish(self._reloaded(), self._answer(), self.began)

    def close(self) -> None:
        if self.resolved:
            return
        self.resolved = True
        self.stream.close()
        try:
            with _failing(self.started):
                finish(self._reloaded(), self._answer(), self.began)
        except Exception:  # recorded by fail(); the client who would see it has gone
            log.warning("generation %s: settling after the client left failed", self.generation.id)

    def _reloaded(self) -> Started:
        """The chunks are relayed after the request's session was closed (the view returned), so the
        generation is read again into the session the relay runs in before it is settled."""
        self.started.generation = self.generation = db.session.get(Generation, self.generation.id,
                                                                   populate_existing=True)
        return self.started

    def _answer(self) -> gateway.Answer:
        return gateway.Answer(self.stream.target, self.assembly.body(), int((time.monotonic() - self.began) * 1000))


def run_in_background(caller: Caller, kind: str, params: dict, *, idempotency_key: str | None = None,
                      parent_id: uuid.UUID | None = None, routes: Collection[str] = ()) -> Generation:
    """Hold and record now, generate on the job queue; the client polls (or gets a webhook)."""
    started = start(caller, kind, params, idempotency_key=idempotency_key, parent_id=parent_id, routes=routes)
    if isinstance(started, Replay):
        return started.generation
    jobs.enqueue("generation.execute", generation_id=str(started.generation.id))
    return started.generation


def execute_queued(generation_id: str, idempotency_id: str | None = None) -> None:
    """The `generation.execute` job: run a generation that start() recorded. `idempotency_id` is what
    jobs enqueued before generations linked their key carried; it is used only for a row without a link."""
    generation = db.session.get(Generation, uuid.UUID(generation_id))
    if generation is None or generation.status != "PENDING":
        return  # already run, or failed by a sweep
    if generation.idempotency_key_id is None and idempotency_id:
        generation.idempotency_key_id = uuid.UUID(idempotency_id)  # written with the GENERATING mark
    _run_queued(generation)


def resume_queued(generation_id: str) -> None:
    """The `generation.resume` job: a polled task (Midjourney) whose worker died goes on polling. The
    lapsed lease is claimed by compare-and-set, so of two resumers one polls; the task is never resubmitted."""
    now = utcnow()
    until = now + timedelta(seconds=current_app.config["GENERATION_LEASE_SECONDS"])
    with atomic():
        claimed = db.session.execute(
            sa.update(_generations).where(_generations.c.id == uuid.UUID(generation_id),
                                          _generations.c.status == "GENERATING",
                                          _generations.c.upstream_task_id.is_not(None),
                                          _generations.c.lease_until < now)
            .values(lease_until=until)).rowcount
    if claimed:
        _run_queued(db.session.get(Generation, uuid.UUID(generation_id), populate_existing=True))


def _run_queued(generation: Generation) -> None:
    model, rule = catalog.priced_model(generation.model)  # it runs as accepted, even if disabled since
    try:
        execute(Started(generation, model, rule), lease=True)
    except DomainError:
        pass  # recorded on the generation by execute() or the sweep


def fail(generation_id: uuid.UUID, code: str, message: str) -> None:
    """Record a failure in a fresh transaction; a generation already over (a sweep failed it) keeps
    that outcome."""
    db.session.rollback()
    try:
        with atomic():
            generation = locked(Generation.id == generation_id)
            if generation is not None:
                record_failure(generation, code, message)
    except StaleDataError:
        pass  # on SQLite, which cannot lock the row: the other transaction's outcome stands


def locked(where) -> Generation | None:
    """The generation matching `where`, read afresh and (on PostgreSQL) locked for this transaction:
    a worker's write waits for the failure being recorded, then loses its compare-and-set."""
    return db.session.scalar(sa.select(Generation).where(where).with_for_update()
                             .execution_options(populate_existing=True))


def record_failure(generation: Generation, code: str, message: str, *, expire_hold: bool = False) -> bool:
    """In the caller's transaction: fail an active generation (compare-and-set on its status), release
    its hold (or expire it, for the sweep of expired holds), discard its unconfirmed objects, record
    the failed usage and forget its idempotency key, so a retry runs again. False when it was over."""
    if generation.status not in ACTIVE_STATUSES:
        return False
    key_id = generation.idempotency_key_id
    generation.error_code, generation.error_message = code, message[:1000]
    generation.completed_at = utcnow()
    generation.idempotency_key_id, generation.lease_until = None, None
    _mark(generation, "FAILED")
    db.session.flush()  # the compare-and-set: raises StaleDataError if the status changed since it was read
    if generation.hold_id is not None:
        (ledger.expire if expire_hold else ledger.release)(generation.hold_id)
    storage.discard_pending(generation.id)
    usage.record(generation, status="failure", credits=0, latency_ms=generation.upstream_ms)
    if key_id is not None:
        db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == key_id))
    webhooks.generation_finished(generation)
    return True


def _stopped(generation_id: uuid.UUID) -> DomainError:
    """This worker lost its compare-and-set. When a sweep failed the generation, drop what the worker
    stored for nothing and answer with the sweep's failure; else another worker runs it (a job run twice)."""
    db.session.rollback()
    with atomic():
        generation = db.session.get(Generation, generation_id, populate_existing=True)
        if generation is not None and generation.status == "FAILED":
            storage.discard_pending(generation_id)
            return GenerationStopped(generation.error_message, code=generation.error_code)
    return Conflict("Another worker is running this generation.", code="generation_in_progress")


def _system_actor(generation: Generation) -> Actor:
    if generation.user_id:
        return Actor("member", str(generation.user_id), None, generation.tenant_id)
    return Actor("api_key", str(generation.api_key_id) if generation.api_key_id else None, None, generation.tenant_id)


class Results:
    """Copies a generation's results into the tenant's storage: call it with the gateway's result items
    ({url, …}); it returns what the generation records of them (`data` keeps each one's bytes, or for a
    video the file it was spooled to, for a kind that reads them: a video's duration and thumbnail).
    Each object is recorded (and committed) before it is written, so a crash from there on leaves a row
    for the sweep; the settle confirms and meters it. `convert(data, content_type) -> (data,
    content_type)` turns a result into what is kept (speech in the asked format). Videos stream: the
    download goes to a file under STORAGE_TEMP_DIR and up to the bucket from there, never whole in
    memory; close() removes the spooled files."""

    # Kinds whose results can be gigabytes: spooled to disk as they arrive.
    SPOOLED = ("video",)

    def __init__(self, generation: Generation, target: gateway.Target, route: str, *, one_statement: bool = False):
        self.generation, self.route, self.one_statement = generation, route, one_statement
        self.detached: list = []  # rows recorded outside the session (one_statement)
        self.data: list[bytes | Path] = []
        self.sizes: list[int] = []
        self.stored: list[tuple[uuid.UUID, int]] = []  # (file id, size) of every object written, to confirm
        # Results of the in-process sandbox are fetched through it; no other gateway's are.
        self._session = sandbox_link.fetch_session() if target.in_process else None
        self._count = 0
        self._spool: tempfile.TemporaryDirectory | None = None

    def _fetch(self, url: str) -> tuple[bytes | Path, str]:
        kind = self.generation.kind
        if kind not in self.SPOOLED:
            fetched = fetch_result(url, kind=kind, session=self._session)
            return fetched.data, fetched.content_type
        if self._spool is None:
            self._spool = tempfile.TemporaryDirectory(prefix="results-", dir=storage_backends.temp_dir())
        path = Path(self._spool.name) / f"{self._count}.part"
        with open(path, "wb") as file:
            fetched = fetch_result(url, kind=kind, session=self._session, into=file)
        return path, fetched.content_type

    def close(self) -> None:
        if self._spool is not None:
            self._spool.cleanup()
            self._spool = None

    def __call__(self, items: list[dict], convert=None) -> list[dict]:
        _mark(self.generation, "UPLOADING")
        stored = []
        for item in items:
            data, content_type = self._fetch(item["url"])
            if convert is not None:
                data, content_type = convert(data, content_type)
            row = self._record(content_type, item["url"], "result")
            storage.write(row, data)
            self.stored.append((row.id, row.size_bytes))
            self.data.append(data)
            self.sizes.append(row.size_bytes)
            stored.append({"file_id": str(row.id), "content_type": row.content_type, "size_bytes": row.size_bytes,
                           "original_url": item["url"][:2000], "revised_prompt": item.get("revised_prompt"),
                           **({"duration": item["duration"]} if item.get("duration") is not None else {})})
        return stored

    def keep(self, data: bytes, content_type: str, *, variant: str) -> None:
        """An object made from a result (a video's thumbnail), kept beside it."""
        row = self._record(content_type, None, variant)
        storage.write(row, data)
        self.stored.append((row.id, row.size_bytes))

    def _record(self, content_type: str, original_url: str | None, variant: str):
        generation, index = self.generation, self._count
        self._count += 1
        fields = dict(tenant_id=generation.tenant_id, generation_id=generation.id, caller=generation.caller,
                      index=index, content_type=content_type, original_url=original_url, variant=variant)
        if not self.one_statement:
            return storage.record_pending(**fields)  # commits the session: the UPLOADING mark shows
        # PostgreSQL, a paid image, speech or chat: the row alone, autocommitted. The generation stays
        # as it was loaded (UPLOADING is written with its final state), so the settle is one statement.
        row = storage.pending_row(**fields)
        phases.record_file(row)
        self.detached.append(row)
        return row
