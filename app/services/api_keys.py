"""Tenant API keys: issue (shown once), authenticate, revoke, and count use without locking rows."""
from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import contains_eager

from app.errors import InvalidInput, Unauthenticated
from app.extensions import db
from app.models import KEY_MODES, KEY_SCOPES, ApiKey, Tenant, utcnow
from app.services import audit
from app.services.audit import Actor
from app.services.crypto import digest, random_token
from app.services.tenancy import get_for_tenant, get_tenant

log = logging.getLogger(__name__)
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


def create_key(tenant_id: uuid.UUID, actor: Actor, **options) -> tuple[ApiKey, str]:
    key, raw = issue_key(get_tenant(tenant_id), actor, **options)
    db.session.commit()
    return key, raw


def revoke_key(tenant_id: uuid.UUID, key_id, actor: Actor) -> ApiKey:
    key = get_for_tenant(ApiKey, tenant_id, key_id, what="api key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(actor, "api_key.revoke", target_type="api_key", target_id=key.id, tenant_id=tenant_id,
                     changes={"prefix": key.prefix})
    db.session.commit()
    return key


def list_keys(tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(db.session.scalars(
        sa.select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at.desc())
    ))


# Built once: this runs on every API request.
_KEY_BY_DIGEST = (sa.select(ApiKey).join(ApiKey.tenant).options(contains_eager(ApiKey.tenant))
                  .where(ApiKey.digest == sa.bindparam("digest")))


def find_usable_key(raw: str) -> ApiKey:
    """The live key for `raw` with its tenant loaded, or Unauthenticated (one message for every cause)."""
    raw = (raw or "").strip()
    key = None
    if KEY_PATTERN.match(raw):
        key = db.session.scalar(_KEY_BY_DIGEST, {"digest": digest(raw)})
    if key is None or not key.is_usable(utcnow()) or not key.tenant.is_active:
        raise Unauthenticated("Invalid API key.", code="invalid_api_key")
    return key


# Use counts are gathered in memory and written in one UPDATE per key every KEY_USAGE_FLUSH_SECONDS,
# so a busy key costs one short row write per interval per process instead of one per request.
_pending: dict[uuid.UUID, list] = defaultdict(lambda: [0, None])
_pending_lock = threading.Lock()
_last_flush = [time.monotonic()]


def note_key_use(key_id: uuid.UUID) -> None:
    with _pending_lock:
        entry = _pending[key_id]
        entry[0] += 1
        entry[1] = utcnow()


def flush_key_usage(force: bool = False) -> int:
    """Write the gathered counts; returns how many keys were updated."""
    interval = current_app.config["KEY_USAGE_FLUSH_SECONDS"]
    with _pending_lock:
        if not _pending or (not force and time.monotonic() - _last_flush[0] < interval):
            return 0
        batch = dict(_pending)
        _pending.clear()
        _last_flush[0] = time.monotonic()
    # Its own connection and transaction: never commits whatever the caller's session holds.
    # Rows in id order: every process locks them in the same order, so two flushes cannot deadlock.
    try:
        with db.engine.begin() as connection:
            for key_id, (count, last_used) in sorted(batch.items()):
                connection.execute(
                    sa.update(ApiKey).where(ApiKey.id == key_id)
                    .values(request_count=ApiKey.request_count + count, last_used_at=last_used)
                )
    except sa.exc.SQLAlchemyError:
        # Bookkeeping must never fail the response it rides on: keep the counts for the next flush.
        log.exception("could not write API key use counts; keeping them for the next flush")
        with _pending_lock:
            for key_id, (count, last_used) in batch.items():
                entry = _pending[key_id]
                entry[0] += count
                entry[1] = max(filter(None, (entry[1], last_used)))
        return 0
    return len(batch)
