"""Tenant API keys: issue (shown once), authenticate, revoke, and count use without locking rows."""
from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager

from app.core import cache
from app.core.counters import BufferedCounter
from app.core.crypto import digest, random_token
from app.core.db import utcnow
from app.core.errors import InvalidInput, Unauthenticated
from app.core.lookup import get_for_tenant, get_or_404
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import KEY_MODES, KEY_SCOPES, ApiKey, Tenant

KEY_PATTERN = re.compile(r"^wk_(live|test)_[A-Za-z0-9]{32}$")
DEFAULT_SCOPES = ("generate",)


def issue_key(tenant: Tenant, actor: Actor, *, name: str = "default", mode: str = "live",
              scopes=DEFAULT_SCOPES, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Add a key to the session (the caller commits). Returns the row and the key, shown once."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput("Key name must be 1 to 80 characters.", param="name")
    if mode not in KEY_MODES:
        raise InvalidInput("Key mode must be 'live' or 'test'.", param="mode")
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(KEY_SCOPES)
    if unknown:
        raise InvalidInput(f"Unknown scope(s): {', '.join(sorted(unknown))}; known: {', '.join(KEY_SCOPES)}.",
                           param="scopes")
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)  # a time without an offset means UTC
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at must be in the future.", param="expires_at")
    raw = f"wk_{mode}_{random_token(32)}"
    key = ApiKey(tenant_id=tenant.id, name=name, mode=mode, prefix=raw[:16], digest=digest(raw),
                 scopes=scopes, expires_at=expires_at)
    db.session.add(key)
    db.session.flush()
    audit.record(actor, "api_key.create", target_type="api_key", target_id=key.id, tenant_id=tenant.id,
                 changes={"name": name, "mode": mode, "scopes": scopes, "prefix": key.prefix})
    return key, raw


@atomic()
def create_key(tenant_id: uuid.UUID, actor: Actor, **options) -> tuple[ApiKey, str]:
    key, raw = issue_key(get_or_404(Tenant, tenant_id, what="tenant"), actor, **options)
    return key, raw


@atomic()
def revoke_key(tenant_id: uuid.UUID, key_id, actor: Actor) -> ApiKey:
    key = get_for_tenant(ApiKey, tenant_id, key_id, what="api key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        cache.changed("api_keys")
        audit.record(actor, "api_key.revoke", target_type="api_key", target_id=key.id, tenant_id=tenant_id,
                     changes={"prefix": key.prefix})
    return key


def get_key(tenant_id: uuid.UUID, key_id) -> ApiKey:
    return get_for_tenant(ApiKey, tenant_id, key_id, what="api key")


def list_keys(tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(db.session.scalars(
        sa.select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at.desc())
    ))


@dataclass(frozen=True)
class TenantAccess:
    """What authenticating and starting a generation need from a tenant, cached with its keys: what
    an admin, a bill or a recharge changes, never what changes with each generation (balance, held,
    storage used), which is read fresh where it is used."""

    id: uuid.UUID
    is_active: bool
    enabled_models: tuple[str, ...]
    require_device: bool
    storage_quota_bytes: int | None
    storage_fees_owed: int


@dataclass(frozen=True)
class KeyAccess:
    """An API key as authentication sees it: cached per process by digest (app/core/cache.py)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    mode: str
    scopes: tuple[str, ...]
    prefix: str
    expires_at: datetime | None
    revoked: bool
    tenant: TenantAccess

    def is_usable(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > now) and self.tenant.is_active


def tenant_access(tenant: Tenant) -> TenantAccess:
    return TenantAccess(tenant.id, tenant.is_active, tuple(tenant.enabled_models or ()), tenant.require_device,
                        tenant.storage_quota_bytes, tenant.storage_fees_owed)


# Built once: a cache miss runs it.
_KEY_BY_DIGEST = (sa.select(ApiKey).join(ApiKey.tenant).options(contains_eager(ApiKey.tenant))
                  .where(ApiKey.digest == sa.bindparam("digest")))


def _read_key(key_digest: str) -> KeyAccess | None:
    key = db.session.scalar(_KEY_BY_DIGEST, {"digest": key_digest})
    if key is None:
        return None
    return KeyAccess(key.id, key.tenant_id, key.mode, tuple(key.scopes or ()), key.prefix, key.expires_at,
                     key.revoked_at is not None, tenant_access(key.tenant))


def find_usable_key(raw: str) -> KeyAccess:
    """The live key for `raw` with its tenant's access, or Unauthenticated (one message for every cause).
    Expiry is checked against the clock on every use, so a cached key is never served past it."""
    raw = (raw or "").strip()
    key = None
    if KEY_PATTERN.match(raw):
        key_digest = digest(raw)
        key = cache.cached("api_keys", key_digest, functools.partial(_read_key, key_digest))
    if key is None or not key.is_usable(utcnow()):
        raise Unauthenticated("Invalid API key.", code="invalid_api_key")
    return key


_uses = BufferedCounter(ApiKey.__table__)


def note_key_use(key_id: uuid.UUID) -> None:
    _uses.add(key_id, {"request_count": 1}, {"last_used_at": utcnow()})


def flush_key_usage(force: bool = False) -> int:
    """Write the gathered use counts now; returns how many keys were updated."""
    return _uses.flush(force)
