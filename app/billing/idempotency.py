"""Idempotency keys (docs/architecture.md, "Credits ledger") for any POST that must happen once.

The key row is written in the same transaction as the effect, so "done" and "remembered" commit
together. What is remembered is the operation's result (ids and figures, never an HTTP answer). A
retry with the same body gets that result back, marked replayed; the same key with a different
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

from app.billing.models import IdempotencyKey
from app.core.db import utcnow
from app.core.errors import Conflict, DomainError, InvalidInput
from app.core.transaction import atomic
from app.extensions import db

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class KeyReused(DomainError):
    status = 422
    type = "invalid_request_error"
    code = "idempotency_key_reused"


@dataclass
class Remembered:
    """The result the first request with this key stored."""

    result: dict


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


def claim(tenant_id: uuid.UUID, scope: str, key: str, payload) -> IdempotencyKey | Remembered:
    """In the caller's transaction: a new IN_PROGRESS row to fill with `finish`, or the stored
    result to replay. Raises KeyReused (422) or Conflict (409, still running)."""
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
            return Remembered(existing.result)
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


def finish(record: IdempotencyKey, result: dict) -> None:
    record.status = "COMPLETED"
    record.result = result


def run_once(tenant_id: uuid.UUID, scope: str, key: str | None, payload,
             operation: Callable[[], dict]) -> tuple[dict, bool]:
    """Run `operation` (database work, uncommitted) and commit its result together with the key row.
    Returns (result, replayed)."""
    with atomic():
        if key is None:
            return operation(), False
        claimed = claim(tenant_id, scope, key, payload)
        if isinstance(claimed, Remembered):
            return claimed.result, True
        result = operation()
        finish(claimed, result)
    return result, False


@atomic()
def purge_expired() -> int:
    return db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow())).rowcount
