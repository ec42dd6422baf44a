"""Reading generations: a tenant's (a member sees their own), and every tenant's for the platform admin."""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.billing.models import CreditHold
from app.core.db import parse_uuid
from app.core.errors import InvalidInput, NotFound
from app.core.lookup import get_for_tenant
from app.core.paging import newest_first, one_page
from app.extensions import db
from app.gateway.models import Gateway
from app.generation.models import ACTIVE_STATUSES, LONG_KINDS, Generation
from app.identity.models import ApiKey, Tenant, TenantUser


def get_generation(tenant_id: uuid.UUID, generation_id, *, user_id: uuid.UUID | None = None) -> Generation:
    """A member sees only their own generations; admins and keys see the tenant's. A deleted one is gone."""
    generation = get_for_tenant(Generation, tenant_id, generation_id, what="generation")
    if generation.deleted_at is not None or (user_id is not None and generation.user_id != user_id):
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
    query = sa.select(Generation).where(Generation.tenant_id == tenant_id, Generation.deleted_at.is_(None))
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


def any_generation(generation_id) -> Generation:
    """One generation of any tenant (the platform admin's lookup); missing or malformed is a 404."""
    wanted = parse_uuid(generation_id)
    generation = db.session.get(Generation, wanted) if wanted else None
    if generation is None:
        raise NotFound("No such generation.", code="generation_not_found")
    return generation


def platform_row(generation_id) -> tuple[Generation, str]:
    """A generation with its tenant's name, as a row of the platform list shows it."""
    generation = any_generation(generation_id)
    return generation, db.session.scalar(sa.select(Tenant.name).where(Tenant.id == generation.tenant_id))


@dataclass
class GenerationDetail:
    generation: Generation
    tenant: Tenant
    hold: CreditHold | None
    username: str | None
    api_key_prefix: str | None
    gateway_name: str | None
    parent: Generation | None = None
    children: list[Generation] = field(default_factory=list)  # its retries, or the actions taken on its grid


def generation_detail(generation_id) -> GenerationDetail:
    """One generation of any tenant, with who asked, its hold, which gateway answered, and its family."""
    generation = any_generation(generation_id)
    user = db.session.get(TenantUser, generation.user_id) if generation.user_id else None
    key = db.session.get(ApiKey, generation.api_key_id) if generation.api_key_id else None
    row = db.session.get(Gateway, generation.gateway_id) if generation.gateway_id else None
    children = list(db.session.scalars(sa.select(Generation).where(Generation.parent_id == generation.id)
                                       .order_by(Generation.created_at, Generation.id)))
    return GenerationDetail(generation, db.session.get(Tenant, generation.tenant_id),
                            db.session.get(CreditHold, generation.hold_id) if generation.hold_id else None,
                            user.username if user else None, key.prefix if key else None, row.name if row else None,
                            db.session.get(Generation, generation.parent_id) if generation.parent_id else None,
                            children)


JOB_ROWS = 100  # per list on the Jobs page; the counts are exact


@dataclass
class JobList:
    rows: list[tuple[Generation, str]]  # each generation with its tenant's name
    total: int


@dataclass
class FailureGroup:
    code: str
    count: int
    last_at: datetime | None
    rows: list[tuple[Generation, str]]  # the latest of them


@dataclass
class JobsOverview:
    stuck: JobList    # a lapsed lease (its worker died), or queued longer than the reconcile grace
    running: JobList  # GENERATING or UPLOADING under a live lease
    queued: JobList   # PENDING, not yet overdue
    failures: list[FailureGroup]  # since `failed_since`, largest group first
    failed_total: int
    retries: dict[uuid.UUID, Generation]  # a failed generation's id -> its retry that has not failed


def jobs_overview(now: datetime, *, pending_grace: timedelta, failed_since: datetime) -> JobsOverview:
    """What the worker has in hand, read from the database (the queue only says "look at this row"):
    stuck, running and queued long generations, oldest first, and the failures since `failed_since`
    grouped by error code."""
    running = Generation.status.in_(ACTIVE_STATUSES[1:])
    lapsed = sa.and_(running, Generation.lease_until < now)
    overdue = sa.and_(Generation.status == "PENDING", Generation.created_at <= now - pending_grace)
    stuck = _jobs(sa.or_(lapsed, overdue))
    live = _jobs(sa.and_(running, sa.or_(Generation.lease_until.is_(None), Generation.lease_until >= now)),
                 Generation.started_at)
    queued = _jobs(sa.and_(Generation.status == "PENDING", Generation.created_at > now - pending_grace))

    failed = sa.and_(Generation.kind.in_(LONG_KINDS), Generation.status == "FAILED",
                     Generation.completed_at >= failed_since)
    code = sa.func.coalesce(Generation.error_code, "unknown")
    groups = db.session.execute(sa.select(code, sa.func.count(), sa.func.max(Generation.completed_at))
                                .where(failed).group_by(code).order_by(sa.func.count().desc(), code)).all()
    latest = [tuple(row) for row in db.session.execute(
        sa.select(Generation, Tenant.name).join(Tenant, Tenant.id == Generation.tenant_id).where(failed)
        .order_by(Generation.completed_at.desc(), Generation.id).limit(JOB_ROWS))]
    by_code = defaultdict(list)
    for generation, tenant_name in latest:
        by_code[generation.error_code or "unknown"].append((generation, tenant_name))
    retries = {}
    if latest:
        for child in db.session.scalars(sa.select(Generation).where(
                Generation.parent_id.in_([generation.id for generation, _ in latest]), Generation.status != "FAILED")):
            retries[child.parent_id] = child
    return JobsOverview(stuck, live, queued,
                        [FailureGroup(name, count, last_at, by_code[name]) for name, count, last_at in groups],
                        sum(count for _, count, _ in groups), retries)


def _jobs(where, oldest=Generation.created_at) -> JobList:
    where = sa.and_(Generation.kind.in_(LONG_KINDS), where)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Generation).where(where))
    rows = [tuple(row) for row in db.session.execute(
        sa.select(Generation, Tenant.name).join(Tenant, Tenant.id == Generation.tenant_id).where(where)
        .order_by(oldest, Generation.id).limit(JOB_ROWS))]
    return JobList(rows, total)
