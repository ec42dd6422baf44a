"""Reading generations: a tenant's (a member sees their own), and every tenant's for the platform admin."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from app.billing.models import CreditHold
from app.core.db import parse_uuid
from app.core.errors import InvalidInput, NotFound
from app.core.lookup import get_for_tenant
from app.core.paging import newest_first, one_page
from app.extensions import db
from app.gateway.models import Gateway
from app.generation.models import Generation
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
