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
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.exc import StaleDataError

from app import jobs
from app.billing import idempotency, ledger
from app.billing.models import IdempotencyKey
from app.catalog import pricing
from app.catalog import service as catalog
from app.catalog.models import AiModel, PriceRule
from app.core.db import rfc3339, utcnow
from app.core.errors import Conflict, DomainError, InvalidInput
from app.core.lookup import get_for_tenant
from app.core.transaction import atomic
from app.extensions import db
from app.gateway import client as gateway
from app.gateway import sandbox as sandbox_link
from app.gateway.fetch import fetch_result
from app.generation import kinds, usage
from app.generation.models import ACTIVE_STATUSES, FINAL_STATUSES, Generation
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.storage import service as storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    tenant: Tenant
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    is_test: bool
    actor: Actor


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
    billing_type: str = field(init=False)
    prices: dict = field(init=False)

    def __post_init__(self) -> None:
        self.gateway_id = self.model.gateway_id
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
          generating: bool = False) -> Started | Replay:
    """Everything before the gateway call, committed in one transaction: the hold, the idempotency
    row and the PENDING generation exist together or not at all. `generating`: the caller calls the
    gateway right away, so the generation is GENERATING in the same commit (one transaction less)."""
    model, rule = catalog.model_for_tenant(caller.tenant, params.get("model"))
    if model.kind != kind:
        raise InvalidInput(f"{model.model_id} is a {model.kind} model, not {kind}.", param="model",
                           code="model_kind_mismatch")
    # Priced, recorded and forwarded as prepared; the idempotency key compares the request as sent.
    sent, params = params, kinds.prepare(model, params)
    quote = pricing.estimate(rule.billing_type, rule.prices, params)
    key = idempotency.check_key(idempotency_key)
    if key is not None:
        with atomic():
            claimed = idempotency.claim(caller.tenant.id, f"generation.{kind}", key, sent)
            if isinstance(claimed, idempotency.Remembered):
                return Replay(get_for_tenant(Generation, caller.tenant.id, claimed.result["generation_id"],
                                             what="generation"))
            return _start(caller, kind, params, model, rule, quote, claimed.id, generating)
    return _start(caller, kind, params, model, rule, quote, None, generating)


def estimate(tenant: Tenant, params: dict) -> tuple[AiModel, pricing.Quote]:
    """What start() would hold for this request (priced as the gateway would be asked), holding nothing."""
    model, rule = catalog.model_for_tenant(tenant, params.get("model"))
    return model, pricing.estimate(rule.billing_type, rule.prices, kinds.prepare(model, params))


def _start(caller: Caller, kind: str, params: dict, model, rule, quote, idempotency_key_id,
           generating: bool) -> Started:
    # The id is ours before the INSERT, so the hold can name it and the row is written once.
    deadline = kind_deadline(kind)
    generation = Generation(id=uuid.uuid4(), tenant_id=caller.tenant.id, user_id=caller.user_id,
                            api_key_id=caller.api_key_id, model=model.model_id, kind=kind, is_test=caller.is_test,
                            params=params, credits_held=0 if caller.is_test else quote.credits, timeline=[],
                            deadline_at=utcnow() + deadline, idempotency_key_id=idempotency_key_id)
    _mark(generation, "PENDING")
    if generating:
        _mark(generation, "GENERATING")
    with atomic(keep=(generation,)):
        if not caller.is_test:
            # The hold outlives the generation's deadline by a margin: the sweep that fails an overdue
            # generation (and releases its hold) always acts before the hold's blind expiry.
            hold = ledger.hold(caller.tenant.id, quote.credits, reference=f"generation:{generation.id}",
                               description=f"{kind} {model.model_id}",
                               ttl=deadline + timedelta(seconds=current_app.config["HOLD_TTL_SECONDS"]))
            generation.hold_id = hold.id
        db.session.add(generation)
        started = Started(generation, model, rule)
    return started


def kind_deadline(kind: str) -> timedelta:
    """The longest a generation of this kind may legitimately take: its gateway call, then copying
    its results."""
    return timedelta(seconds=gateway.read_timeout(kind) + current_app.config["FETCH_TIMEOUT_SECONDS"])


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


def execute(started: Started) -> Generation:
    """The gateway call and everything after it. Raises the domain error after recording a failure."""
    generation = started.generation
    with _failing(started):
        if generation.status != "GENERATING":
            with atomic(keep=(generation,)):
                _mark(generation, "GENERATING")
        began = time.monotonic()
        answer = _call(started, stream=False)
        return _finish(started, answer, began)


def _call(started: Started, *, stream: bool) -> gateway.Answer | gateway.Stream:
    generation = started.generation
    kind = kinds.kind_of(generation.kind)
    targets = [gateway.sandbox_target()] if generation.is_test else gateway.targets_for(started.gateway_id)
    payload = kinds.payload(kind, generation.params)
    if stream:
        return gateway.call_streaming(targets, "POST", kind.UPSTREAM_PATH, kind=generation.kind,
                                      payload={**payload, **kind.STREAM})
    return gateway.call(targets, "POST", kind.UPSTREAM_PATH, kind=generation.kind, payload=payload)


def _finish(started: Started, answer: gateway.Answer, began: float) -> Generation:
    """Read the answer, copy its results, settle the actual and complete, in one transaction."""
    generation = started.generation
    kind = kinds.kind_of(generation.kind)
    generation.upstream_ms = int((time.monotonic() - began) * 1000)
    generation.gateway_id = answer.target.gateway_id
    measured = kind.collect(generation, answer,
                            lambda items, convert=None: _store(generation, items, answer.target, convert))
    charge = pricing.actual(started.billing_type, started.prices, generation.params, measured)
    credits = 0 if generation.is_test else charge.credits
    # Finished before the ledger's statements flush it, so the generation is written in one UPDATE.
    generation.credits_charged = credits
    generation.completed_at = utcnow()
    _mark(generation, "COMPLETED")
    with atomic(keep=(generation,)):
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
    return generation


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
            return _finish(started, opened, began)
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
            return _finish(self._reloaded(), self._answer(), self.began)

    def close(self) -> None:
        if self.resolved:
            return
        self.resolved = True
        self.stream.close()
        try:
            with _failing(self.started):
                _finish(self._reloaded(), self._answer(), self.began)
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


def run_in_background(caller: Caller, kind: str, params: dict, *, idempotency_key: str | None = None) -> Generation:
    """Hold and record now, generate on the job queue; the client polls GET /generations/{id}."""
    started = start(caller, kind, params, idempotency_key=idempotency_key)
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
    model, rule = catalog.model_for_tenant(db.session.get(Tenant, generation.tenant_id), generation.model)
    try:
        execute(Started(generation, model, rule))
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
    generation.idempotency_key_id = None
    _mark(generation, "FAILED")
    db.session.flush()  # the compare-and-set: raises StaleDataError if the status changed since it was read
    if generation.hold_id is not None:
        (ledger.expire if expire_hold else ledger.release)(generation.hold_id)
    storage.discard_pending(generation.id)
    usage.record(generation, status="failure", credits=0, latency_ms=generation.upstream_ms)
    if key_id is not None:
        db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == key_id))
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


# --- results ----------------------------------------------------------------------------------------

def _store(generation: Generation, items: list[dict], target: gateway.Target, convert=None) -> list[dict]:
    """Copy each result into the tenant's storage; returns what the generation records of them.
    `convert(data, content_type) -> (data, content_type)` turns a result into what is kept (speech in
    the asked format)."""
    _mark(generation, "UPLOADING")
    # Results of the in-process sandbox are fetched through it; no other gateway's are.
    session = sandbox_link.fetch_session() if target.in_process else None
    stored = []
    for index, item in enumerate(items):
        fetched = fetch_result(item["url"], kind=generation.kind, session=session)
        data, content_type = fetched.data, fetched.content_type
        if convert is not None:
            data, content_type = convert(data, content_type)
        # Recorded (and committed) before it is written: a crash from here on leaves a row to sweep.
        row = storage.record_pending(tenant_id=generation.tenant_id, generation_id=generation.id,
                                     caller=generation.caller, index=index, content_type=content_type,
                                     original_url=item["url"])
        storage.write(row, data)
        stored.append({"file_id": str(row.id), "content_type": row.content_type, "size_bytes": row.size_bytes,
                       "original_url": item["url"][:2000], "revised_prompt": item.get("revised_prompt"),
                       **({"duration": item["duration"]} if item.get("duration") is not None else {})})
    return stored
