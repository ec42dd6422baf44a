"""Tenants: create (with first key and optional admin), change, list."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from app.core import cache
from app.core.errors import InvalidInput
from app.core.lookup import get_or_404
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.api_keys import issue_key
from app.identity.audit import Actor
from app.identity.models import ApiKey, Tenant, TenantUser
from app.identity.users import add_user, end_tenant_sessions

EDITABLE = ("name", "contact_name", "contact_phone", "contact_email", "is_active", "max_seats",
            "enabled_models", "storage_quota_bytes", "require_device")
# oss_mode is not here: a tenant moves to its own bucket only once that bucket is verified (storage.buckets).
MAX_SEATS_LIMIT = 100_000


@dataclass
class CreatedTenant:
    tenant: Tenant
    api_key: ApiKey
    api_key_plaintext: str  # shown once
    admin: TenantUser | None


def _clean(fields: dict) -> dict:
    fields = dict(fields)
    for name in ("name", "contact_name", "contact_phone", "contact_email"):
        if name in fields:
            fields[name] = (fields[name] or "").strip() or None
    if "name" in fields and not fields["name"]:
        raise InvalidInput("Tenant name is required.", param="name")
    if "name" in fields and len(fields["name"]) > 120:
        raise InvalidInput("Tenant name must be at most 120 characters.", param="name")
    if "max_seats" in fields and not 0 <= int(fields["max_seats"]) <= MAX_SEATS_LIMIT:
        raise InvalidInput(f"max_seats must be between 0 and {MAX_SEATS_LIMIT}.", param="max_seats")
    if fields.get("storage_quota_bytes") is not None and fields["storage_quota_bytes"] < 0:
        raise InvalidInput("storage_quota_bytes must not be negative.", param="storage_quota_bytes")
    if "enabled_models" in fields:
        fields["enabled_models"] = sorted({m.strip() for m in fields["enabled_models"] or [] if m.strip()})
    return fields


@atomic()
def create_tenant(actor: Actor, *, name: str, contact_name: str | None = None, contact_phone: str | None = None,
                  contact_email: str | None = None, max_seats: int = 5, require_device: bool = True,
                  admin_username: str | None = None, admin_password: str | None = None) -> CreatedTenant:
    fields = _clean({"name": name, "contact_name": contact_name, "contact_phone": contact_phone,
                     "contact_email": contact_email, "max_seats": max_seats})
    if bool(admin_username) != bool(admin_password):
        raise InvalidInput("Give both admin_username and admin_password, or neither.", param="admin_username")
    tenant = Tenant(**fields, require_device=require_device)
    db.session.add(tenant)
    db.session.flush()
    audit.record(actor, "tenant.create", target_type="tenant", target_id=tenant.id, tenant_id=tenant.id,
                 changes={k: v for k, v in fields.items() if v is not None})
    key, raw_key = issue_key(tenant, actor, name="default", mode="live")
    admin = None
    if admin_username:
        admin = add_user(tenant, actor, username=admin_username, password=admin_password, role="admin")
    return CreatedTenant(tenant, key, raw_key, admin)


@atomic()
def update_tenant(tenant_id, actor: Actor, changes: dict) -> Tenant:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    tenant = get_tenant(tenant_id, for_update=True)
    changed = audit.diff(tenant, _clean(changes))
    if changed:
        cache.changed("tenants")  # its access (active, enabled models, quota) is cached with its keys
        action = "tenant.deactivate" if changed.get("is_active") == [True, False] else "tenant.update"
        if action == "tenant.deactivate":
            end_tenant_sessions(tenant.id, reason="tenant_deactivated")
        audit.record(actor, action, target_type="tenant", target_id=tenant.id, tenant_id=tenant.id,
                     changes=changed)
    return tenant



@dataclass
class TenantRow:
    tenant: Tenant
    members: int
    active_members: int


def list_tenants(*, search: str | None = None, page: int = 1, per_page: int = 20) -> tuple[list[TenantRow], int]:
    """One page of tenants, newest first, with member counts, and the total matching."""
    page, per_page = max(1, page), min(max(1, per_page), 100)
    where = []
    if search and search.strip():
        term = f"%{search.strip().lower()}%"
        where.append(sa.or_(sa.func.lower(Tenant.name).like(term),
                            sa.func.lower(sa.func.coalesce(Tenant.contact_email, "")).like(term),
                            sa.func.lower(sa.func.coalesce(Tenant.contact_name, "")).like(term)))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Tenant).where(*where))
    is_member = TenantUser.role == "member"
    counts = (
        sa.select(TenantUser.tenant_id,
                  sa.func.count().label("members"),
                  sa.func.count().filter(TenantUser.is_active.is_(True)).label("active_members"))
        .where(is_member).group_by(TenantUser.tenant_id).subquery()
    )
    rows = db.session.execute(
        sa.select(Tenant, sa.func.coalesce(counts.c.members, 0), sa.func.coalesce(counts.c.active_members, 0))
        .outerjoin(counts, counts.c.tenant_id == Tenant.id)
        .where(*where).order_by(Tenant.created_at.desc(), Tenant.id)
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    return [TenantRow(t, m, a) for t, m, a in rows], total


def counts() -> dict[str, int]:
    """Headline numbers for the dashboard: tenants (all, active) and members (all, active)."""
    tenants_row = db.session.execute(sa.select(
        sa.func.count(), sa.func.count().filter(Tenant.is_active.is_(True))).select_from(Tenant)).one()
    members_row = db.session.execute(sa.select(
        sa.func.count(), sa.func.count().filter(TenantUser.is_active.is_(True)))
        .select_from(TenantUser).where(TenantUser.role == "member")).one()
    return {"tenants": tenants_row[0], "active_tenants": tenants_row[1],
            "members": members_row[0], "active_members": members_row[1]}


def get_tenant(tenant_id, *, for_update: bool = False) -> Tenant:
    return get_or_404(Tenant, tenant_id, what="tenant", for_update=for_update)


find_tenant = get_tenant  # the name views use: a tenant the admin picked, or 404

