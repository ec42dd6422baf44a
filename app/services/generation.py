"""A generation, end to end (DESIGN §6):

validate → model enabled? → estimate → hold (+ idempotency row) → PENDING → gateway (GENERATING)
→ copy results into the tenant's storage (UPLOADING) → settle the actual → COMPLETED → usage record.
Any failure releases the hold, marks the generation FAILED with a clear error, records the failed
usage and forgets the idempotency key (nothing was charged, so a retry may run again).

Test-mode callers (wk_test_ keys and sessions opened with them) always go to the sandbox and never
touch credits; their generations and usage are marked test.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app import jobs
from app.billing import idempotency, ledger
from app.catalog import pricing
from app.catalog import service as catalog
from app.core.errors import DomainError, InvalidInput, NotFound
from app.core.lookup import get_for_tenant
from app.core.paging import newest_first, one_page
from app.extensions import db
from app.gateway import client as gateway
from app.gateway import sandbox as sandbox_link
from app.gateway.fetch import fetch_result
from app.identity.audit import Actor
from app.models import (
    AiModel,
    ApiKey,
    CreditHold,
    Gateway,
    Generation,
    IdempotencyKey,
    PriceRule,
    Tenant,
    TenantUser,
    parse_uuid,
    utcnow,
)
from app.services import usage
from app.storage import service as storage

log = logging.getLogger(__name__)

UPSTREAM_PATHS = {"image": "/images/generations", "audio": "/audio/speech", "chat": "/chat/completions"}
# What we forward to the gateway, per kind; everything else in the body is ours (n, response_format…).
FORWARDED = {
    "image": ("model", "prompt", "size", "image_size", "reference_images", "max_images", "use_intl"),
    "audio": ("model", "input", "voice", "speed"),
    "chat": ("model", "messages", "temperature", "max_tokens", "top_p", "stop"),
}


@dataclass(frozen=True)
class Caller:
    tenant: Tenant
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    is_test: bool
    actor: Actor


@dataclass
class Started:
    generation: Generation
    model: AiModel
    rule: PriceRule
    idempotency_id: uuid.UUID | None
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
    generation.status = status
    generation.timeline = [*generation.timeline, {"status": status, "at": utcnow().isoformat()}]


def _commit_keeping(generation: Generation) -> None:
    """Commit without expiring `generation`: this request wrote every field of it, so reading it
    back would only cost a query (after the last commit, a whole transaction just to answer).
    Everything else in the session expires as usual."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True
    for instance in list(session.identity_map.values()):
        if instance is not generation:
            session.expire(instance)


def start(caller: Caller, kind: str, params: dict, *, idempotency_key: str | None = None,
          generating: bool = False) -> Started | Replay:
    """Everything before the gateway call, committed in one transaction: the hold, the idempotency
    row and the PENDING generation exist together or not at all. `generating`: the caller calls the
    gateway right away, so the generation is GENERATING in the same commit (one transaction less)."""
    model, rule = catalog.model_for_tenant(caller.tenant, params.get("model"))
    if model.kind != kind:
        raise InvalidInput(f"{model.model_id} is a {model.kind} model, not {kind}.", param="model",
                           code="model_kind_mismatch")
    quote = pricing.estimate(rule.billing_type, rule.prices, params)
    key = idempotency.check_key(idempotency_key)
    try:
        record = None
        if key is not None:
            claimed = idempotency.claim(caller.tenant.id, f"generation.{kind}", key, params)
            if isinstance(claimed, idempotency.Remembered):
                db.session.rollback()
                replayed = get_for_tenant(Generation, caller.tenant.id, claimed.result["generation_id"],
                                          what="generation")
                return Replay(replayed)
            record = claimed
        # The id is ours before the INSERT, so the hold can name it and the row is written once.
        generation = Generation(id=uuid.uuid4(), tenant_id=caller.tenant.id, user_id=caller.user_id,
                                api_key_id=caller.api_key_id,
                                model=model.model_id, kind=kind, is_test=caller.is_test, params=params,
                                credits_held=0 if caller.is_test else quote.credits, timeline=[],
                                deadline_at=utcnow() + timedelta(seconds=gateway.read_timeout(kind) + 120))
        _mark(generation, "PENDING")
        if generating:
            _mark(generation, "GENERATING")
        if not caller.is_test:
            hold = ledger.hold(caller.tenant.id, quote.credits, reference=f"generation:{generation.id}",
                               description=f"{kind} {model.model_id}",
                               ttl=timedelta(seconds=current_app.config["HOLD_TTL_SECONDS"]))
            generation.hold_id = hold.id
        db.session.add(generation)
        started = Started(generation, model, rule, record.id if record else None)
        _commit_keeping(generation)
    except BaseException:
        db.session.rollback()
        raise
    return started


def execute(started: Started) -> Generation:
    """The gateway call and everything after it. Raises the domain error after recording a failure."""
    generation = started.generation
    try:
        if generation.status != "GENERATING":
            _mark(generation, "GENERATING")
            db.session.commit()
        targets = [gateway.sandbox_target()] if generation.is_test else gateway.targets_for(started.gateway_id)
        payload = {k: v for k, v in generation.params.items() if k in FORWARDED[generation.kind] and v is not None}
        began = time.monotonic()
        answer = gateway.call(targets, "POST", UPSTREAM_PATHS[generation.kind], kind=generation.kind, payload=payload)
        generation.upstream_ms = int((time.monotonic() - began) * 1000)
        generation.gateway_id = answer.target.gateway_id
        measured = _collect(generation, answer)
        charge = pricing.actual(started.billing_type, started.prices, generation.params, measured)
        credits = 0 if generation.is_test else charge.credits
        # Finished before the ledger's statements flush it, so the generation is written in one UPDATE.
        generation.credits_charged = credits
        generation.completed_at = utcnow()
        _mark(generation, "COMPLETED")
        if generation.hold_id is not None:
            ledger.settle(generation.hold_id, credits, _system_actor(generation),
                          description=f"{generation.kind} {generation.model}")
        if generation.results:
            storage.confirm(generation.tenant_id, generation.id)
        usage.record(generation, status="success", credits=credits, input_tokens=measured.input_tokens,
                     output_tokens=measured.output_tokens, seconds=measured.seconds,
                     quantity=measured.images or measured.characters, latency_ms=generation.upstream_ms)
        if started.idempotency_id is not None:
            record = db.session.get(IdempotencyKey, started.idempotency_id)
            idempotency.finish(record, {"generation_id": str(generation.id)})
        _commit_keeping(generation)
        return generation
    except DomainError as error:
        fail(started, error.code, error.message)
        raise
    except Exception:
        log.exception("generation %s failed unexpectedly", generation.id)
        fail(started, "internal_error", "The generation failed on our side; nothing was charged.")
        raise


def run(caller: Caller, kind: str, params: dict, *, idempotency_key: str | None = None) -> Generation:
    """Start and finish a generation in this request; a replayed key returns the earlier one."""
    started = start(caller, kind, params, idempotency_key=idempotency_key, generating=True)
    if isinstance(started, Replay):
        return started.generation
    return execute(started)


def run_in_background(caller: Caller, kind: str, params: dict, *, idempotency_key: str | None = None) -> Generation:
    """Hold and record now, generate on the job queue; the client polls GET /generations/{id}."""
    started = start(caller, kind, params, idempotency_key=idempotency_key)
    if isinstance(started, Replay):
        return started.generation
    jobs.enqueue("generation.execute", generation_id=str(started.generation.id),
                 idempotency_id=str(started.idempotency_id) if started.idempotency_id else None)
    return started.generation


def execute_queued(generation_id: str, idempotency_id: str | None = None) -> None:
    """The `generation.execute` job: run a generation that start() recorded."""
    generation = db.session.get(Generation, uuid.UUID(generation_id))
    if generation is None or generation.status != "PENDING":
        return  # already run, or failed by a sweep
    model, rule = catalog.model_for_tenant(db.session.get(Tenant, generation.tenant_id), generation.model)
    try:
        execute(Started(generation, model, rule, uuid.UUID(idempotency_id) if idempotency_id else None))
    except DomainError:
        pass  # recorded on the generation by execute()


def fail(started: Started, code: str, message: str) -> None:
    """Release the hold and record the failure, in a fresh transaction."""
    db.session.rollback()
    generation = db.session.get(Generation, started.generation.id, populate_existing=True)
    if generation is None or generation.status in ("COMPLETED", "FAILED"):
        return
    if generation.hold_id is not None:
        ledger.release(generation.hold_id)
    storage.discard_pending(generation.id)
    generation.error_code, generation.error_message = code, message[:1000]
    generation.completed_at = utcnow()
    _mark(generation, "FAILED")
    usage.record(generation, status="failure", credits=0, latency_ms=generation.upstream_ms)
    if started.idempotency_id is not None:
        db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == started.idempotency_id))
    db.session.commit()


def _system_actor(generation: Generation) -> Actor:
    if generation.user_id:
        return Actor("member", str(generation.user_id), None, generation.tenant_id)
    return Actor("api_key", str(generation.api_key_id) if generation.api_key_id else None, None, generation.tenant_id)


# --- results ----------------------------------------------------------------------------------------

def _store(generation: Generation, items: list[dict], kind: str, target: gateway.Target) -> list[dict]:
    _mark(generation, "UPLOADING")
    # Results of the in-process sandbox are fetched through it; no other gateway's are.
    session = sandbox_link.fetch_session() if target.in_process else None
    stored = []
    for index, item in enumerate(items):
        fetched = fetch_result(item["url"], kind=kind, session=session)
        # Recorded (and committed) before it is written: a crash from here on leaves a row to sweep.
        row = storage.record_pending(tenant_id=generation.tenant_id, generation_id=generation.id,
                                     caller=generation.caller, index=index, content_type=fetched.content_type,
                                     original_url=item["url"])
        storage.write(row, fetched.data)
        stored.append({"file_id": str(row.id), "content_type": row.content_type, "size_bytes": row.size_bytes,
                       "original_url": item["url"][:2000], "revised_prompt": item.get("revised_prompt"),
                       **({"duration": item["duration"]} if item.get("duration") is not None else {})})
    return stored


def _collect(generation: Generation, answer: gateway.Answer) -> pricing.Usage:
    """Store what came back and say what it amounts to for billing."""
    body = answer.body
    if generation.kind == "chat":
        return _collect_chat(generation, body)
    items = gateway.result_urls(body)
    if not items:
        raise gateway.UpstreamFailed("The AI gateway answered without a result.", code="upstream_bad_response")
    generation.results = _store(generation, items, generation.kind, answer.target)
    if generation.kind == "image":
        return pricing.Usage(images=len(items))
    characters = len(str(generation.params.get("input") or ""))
    return pricing.Usage(characters=characters)


def _collect_chat(generation: Generation, body: dict) -> pricing.Usage:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise gateway.UpstreamFailed("The AI gateway answered without a completion.", code="upstream_bad_response")
    message = choices[0].get("message") or {}
    content = message.get("content") if isinstance(message.get("content"), str) else ""
    reported = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    # Upstream usage when given; else our own count (pricing.count_tokens: CJK one token per character).
    input_tokens = _int(reported.get("prompt_tokens"))
    output_tokens = _int(reported.get("completion_tokens"))
    if input_tokens is None:
        input_tokens = pricing.message_tokens(generation.params.get("messages"))
    if output_tokens is None:
        output_tokens = pricing.count_tokens(content)
    generation.output = {"content": content, "finish_reason": choices[0].get("finish_reason") or "stop",
                         "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                                   "total_tokens": input_tokens + output_tokens,
                                   "source": "upstream" if reported else "counted"}}
    return pricing.Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# --- reading ----------------------------------------------------------------------------------------

def get_generation(tenant_id: uuid.UUID, generation_id, *, user_id: uuid.UUID | None = None) -> Generation:
    """A member sees only their own generations; admins and keys see the tenant's."""
    generation = get_for_tenant(Generation, tenant_id, generation_id, what="generation")
    if user_id is not None and generation.user_id != user_id:
        raise NotFound("No such generation.", code="generation_not_found")
    return generation


@dataclass
class GenerationPage:
    generations: list[Generation]
    next_cursor: str | None


def list_generations(tenant_id: uuid.UUID, *, user_id: uuid.UUID | None = None, kind: str | None = None,
                     status: str | None = None, model: str | None = None, date_from=None, date_to=None,
                     cursor: str | None = None, limit: int = 20) -> GenerationPage:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = sa.select(Generation).where(Generation.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(Generation.user_id == user_id)
    query = _filtered(query, kind=kind, status=status, model=model, date_from=date_from, date_to=date_to,
                      cursor=cursor)
    limit = min(max(1, limit), 100)
    return GenerationPage(*one_page(list(db.session.scalars(query.limit(limit + 1))), limit))


def _filtered(query, *, kind=None, status=None, model=None, date_from=None, date_to=None, cursor=None):
    if kind:
        query = query.where(Generation.kind == kind)
    if status:
        query = query.where(Generation.status == status)
    if model:
        query = query.where(Generation.model == model)
    return newest_first(query, Generation, date_from=date_from, date_to=date_to, cursor=cursor)


# --- the platform admin's view: every tenant ---------------------------------------------------------

@dataclass
class PlatformGenerationPage:
    rows: list[tuple[Generation, str]]  # each generation with its tenant's name
    next_cursor: str | None


def list_all_generations(*, tenant: str | None = None, generation_id: str | None = None, kind: str | None = None,
                         status: str | None = None, model: str | None = None, date_from=None, date_to=None,
                         cursor: str | None = None, limit: int = 50) -> PlatformGenerationPage:
    """Across tenants, newest first, keyset-paginated. `tenant` is a tenant id or part of its name;
    `generation_id` finds one generation by its full id."""
    query = sa.select(Generation, Tenant.name).join(Tenant, Tenant.id == Generation.tenant_id)
    if generation_id and generation_id.strip():
        wanted = parse_uuid(generation_id.strip())
        if wanted is None:
            raise InvalidInput("Search by a generation's full id (a UUID).", param="q")
        query = query.where(Generation.id == wanted)
    if tenant and tenant.strip():
        tenant_uuid = parse_uuid(tenant.strip())
        query = query.where(Generation.tenant_id == tenant_uuid if tenant_uuid is not None
                            else sa.func.lower(Tenant.name).contains(tenant.strip().lower(), autoescape=True))
    query = _filtered(query, kind=kind, status=status, model=model, date_from=date_from, date_to=date_to,
                      cursor=cursor)
    limit = min(max(1, limit), 100)
    rows = [tuple(row) for row in db.session.execute(query.limit(limit + 1))]
    return PlatformGenerationPage(*one_page(rows, limit, row_of=lambda row: row[0]))


@dataclass
class GenerationDetail:
    generation: Generation
    tenant: Tenant
    hold: CreditHold | None
    username: str | None
    api_key_prefix: str | None
    gateway_name: str | None


def generation_detail(generation_id) -> GenerationDetail:
    """One generation of any tenant, with who asked, its hold and which gateway answered."""
    wanted = parse_uuid(generation_id)
    generation = db.session.get(Generation, wanted) if wanted else None
    if generation is None:
        raise NotFound("No such generation.", code="generation_not_found")
    user = db.session.get(TenantUser, generation.user_id) if generation.user_id else None
    key = db.session.get(ApiKey, generation.api_key_id) if generation.api_key_id else None
    row = db.session.get(Gateway, generation.gateway_id) if generation.gateway_id else None
    return GenerationDetail(generation, db.session.get(Tenant, generation.tenant_id),
                            db.session.get(CreditHold, generation.hold_id) if generation.hold_id else None,
                            user.username if user else None, key.prefix if key else None, row.name if row else None)
