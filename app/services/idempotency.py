"""Idempotency keys (DESIGN §4) for any POST that must happen once.

The key row is written in the same transaction as the effect, so "done" and "remembered" commit
together. A retry with the same body replays the stored response; the same key with a different
body is refused (422); a retry while the first request is still running (its row committed as
IN_PROGRESS, as long generations do) gets 409.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.core.errors import Conflict, DomainError, InvalidInput
from app.extensions import db
from app.models import IdempotencyKey, utcnow

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class KeyReused(DomainError):
    status = 422
    type = "invalid_request_error"
    code = "idempotency_key_reused"


@dataclass
class Outcome:
    status: int
    body: dict
    replayed: bool = False


def fingerprint(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
                           code="invalid_idempotency_key")
    return key


def claim(tenant_id: uuid.UUID, scope: str, key: str, payload) -> IdempotencyKey | Outcome:
    """In the caller's transaction: a new IN_PROGRESS row to fill with `finish`, or the stored
    Outcome to replay. Raises KeyReused (422) or Conflict (409, still running)."""
    request_hash = fingerprint(payload)
    for _attempt in range(2):
        existing = db.session.scalar(sa.select(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key))
        if existing is not None and existing.expires_at <= utcnow():
            db.session.delete(existing)
            db.session.flush()
            existing = None
        if existing is not None:
            if existing.request_hash != request_hash:
                raise KeyReused("This Idempotency-Key was already used with a different request body.")
            if existing.status != "COMPLETED":
                raise Conflict("A request with this Idempotency-Key is still in progress.",
                               code="idempotency_request_in_progress")
            return Outcome(existing.response_status, existing.response_body, replayed=True)
        record = IdempotencyKey(tenant_id=tenant_id, scope=scope, key=key, request_hash=request_hash,
                                expires_at=utcnow() + KEY_LIFETIME)
        try:
            with db.session.begin_nested():
                db.session.add(record)
            return record
        except IntegrityError:
            # A concurrent request with the same key committed first: read what it stored.
            continue
    raise Conflict("A request with this Idempotency-Key is still in progress.",
                   code="idempotency_request_in_progress")


def finish(record: IdempotencyKey, status: int, body: dict) -> None:
    record.status = "COMPLETED"
    record.response_status = status
    record.response_body = body


def run_once(tenant_id: uuid.UUID, scope: str, key: str | None, payload,
             operation: Callable[[], tuple[int, dict]]) -> Outcome:
    """Run `operation` (database work, uncommitted) and commit it together with the key row."""
    try:
        if key is None:
            status, body = operation()
            db.session.commit()
            return Outcome(status, body)
        claimed = claim(tenant_id, scope, key, payload)
        if isinstance(claimed, Outcome):
            db.session.rollback()
            return claimed
        status, body = operation()
        finish(claimed, status, body)
        db.session.commit()
        return Outcome(status, body)
    except BaseException:
        db.session.rollback()
        raise


def purge_expired() -> int:
    deleted = db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow())).rowcount
    db.session.commit()
    return deleted
