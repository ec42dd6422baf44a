"""Webhook deliveries, by the Standard Webhooks specification (standardwebhooks.com).

`emit` writes one delivery per enabled endpoint subscribed to the event, in the caller's transaction,
and enqueues each (`webhooks.deliver`) once that transaction commits. The database says what is due;
the queue only carries ids: `webhooks.retry` (every minute, and `flask webhooks retry`) enqueues every
PENDING delivery whose time has come, so a lost job or a worker that died mid-attempt only delays one.

Every attempt is signed afresh (`webhook-id` stays, `webhook-timestamp` is now, receivers refuse one
older than five minutes) with the `standardwebhooks` library, goes through the SSRF guard's connections,
follows no redirect, and is logged. 2xx: SUCCEEDED. 410: the endpoint is disabled. Anything else is
retried RETRY_SCHEDULE after the first attempt, never sooner than a 429/503's Retry-After, and FAILED
after the last.
"""
from __future__ import annotations

import email.utils
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload
from standardwebhooks import Webhook
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from app import jobs
from app.core import cache
from app.core.crypto import random_token
from app.core.db import parse_uuid, utcnow
from app.core.errors import Conflict, NotFound
from app.core.paging import newest_first, one_page
from app.core.transaction import atomic, on_commit
from app.extensions import db
from app.gateway import fetch
from app.identity import audit
from app.identity.audit import Actor
from app.webhooks import endpoints
from app.webhooks.models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

# When each retry is due, counted from the first attempt: about a day in all, the first within seconds.
RETRY_SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                  timedelta(hours=5), timedelta(hours=10), timedelta(hours=14), timedelta(hours=20),
                  timedelta(hours=24))
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
RETRY_AFTER_CAP = timedelta(hours=24)
# Retries due sooner than the next retry sweep are also scheduled on the queue itself.
SWEEP_INTERVAL = timedelta(minutes=1)
SWEEP_BATCH = 500
EXCERPT_CHARS = 1024
USER_AGENT = "waule-server-webhooks"

_session = fetch.guarded_session()


def _read_subscribed_events(tenant_id: uuid.UUID) -> frozenset[str]:
    return frozenset(event for events in db.session.scalars(sa.select(WebhookEndpoint.events).where(
        WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True))) for event in events)


def subscribed_endpoints(tenant_id: uuid.UUID, event_type: str) -> list[WebhookEndpoint]:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event {event_type!r}")
    # Every finished generation asks, and most tenants subscribe to nothing: whether any endpoint wants
    # the event is cached per process (app/core/cache.py). When one does, the endpoints are read fresh, so
    # a delivery never names an endpoint deleted a moment ago in another process.
    wanted = cache.cached("webhook_events", tenant_id, functools.partial(_read_subscribed_events, tenant_id))
    if event_type not in wanted:
        return []
    enabled = db.session.scalars(sa.select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id,
                                                                  WebhookEndpoint.enabled.is_(True)))
    return [endpoint for endpoint in enabled if event_type in endpoint.events]


def emit(tenant_id: uuid.UUID, event_type: str, data: dict | Callable[[], dict]) -> list[WebhookDelivery]:
    """Send `event_type` with `data` to every enabled endpoint of the tenant that wants it. Written in
    the caller's transaction (commits or rolls back with it), enqueued after it commits. `data` may be
    a function, called only when some endpoint is subscribed."""
    with atomic():
        subscribed = subscribed_endpoints(tenant_id, event_type)
        if not subscribed:
            return []
        now = utcnow()
        payload = data() if callable(data) else data
        body = json.dumps({"type": event_type, "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "data": payload},
                          separators=(",", ":"), ensure_ascii=False)
        deliveries = [WebhookDelivery(tenant_id=tenant_id, endpoint_id=endpoint.id, event_type=event_type,
                                      message_id=f"msg_{random_token(27)}", body=body, status="PENDING", attempts=0,
                                      schedule_started_at=now, next_attempt_at=now, created_at=now)
                      for endpoint in subscribed]
        db.session.add_all(deliveries)
        db.session.flush()
        ids = [str(delivery.id) for delivery in deliveries]
        on_commit(lambda: _enqueue(ids))
    return deliveries


def _enqueue(delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        jobs.enqueue("webhooks.deliver", delivery_id=delivery_id)


@dataclass
class _Claimed:
    """What one attempt needs, read in the claiming transaction so none stays open over the HTTP call."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt: int
    schedule_started_at: datetime
    message_id: str
    body: str
    url: str
    enabled: bool
    secrets: list[str]


@dataclass
class Outcome:
    status_code: int | None
    latency_ms: int
    excerpt: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def deliver(delivery_id: str) -> None:
    """The `webhooks.deliver` job: one attempt at one delivery, if it is PENDING and due."""
    claimed = _claim(uuid.UUID(delivery_id), utcnow())
    if claimed is None:
        return  # delivered, given up, not yet due, or another worker has it now
    if not claimed.enabled:
        with atomic():
            _transition(claimed, "DISABLED")
        return
    outcome = send(claimed.url, claimed.message_id, claimed.body, claimed.secrets)
    retry_in = _record(claimed, outcome)
    if retry_in is not None and retry_in < SWEEP_INTERVAL:
        jobs.enqueue_in(retry_in.total_seconds(), "webhooks.deliver", delivery_id=delivery_id)


def _lease() -> timedelta:
    """How long a claimed attempt keeps others off: longer than the attempt can take."""
    return timedelta(seconds=2 * current_app.config["WEBHOOK_TIMEOUT_SECONDS"] + 60)


def _claim(delivery_id: uuid.UUID, now: datetime) -> _Claimed | None:
    """Count the attempt and push next_attempt_at past the lease in one compare-and-set, so two
    workers given the same id never both send; a worker that dies mid-attempt is retried after it."""
    with atomic():
        attempt = db.session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "PENDING",
                   WebhookDelivery.next_attempt_at <= now)
            .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + _lease())
            .returning(WebhookDelivery.attempts)
            .execution_options(synchronize_session=False)).scalar()
        if attempt is None:
            return None
        delivery = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
        endpoint = delivery.endpoint
        return _Claimed(delivery.id, delivery.tenant_id, endpoint.id, attempt, delivery.schedule_started_at,
                        delivery.message_id, delivery.body, endpoint.url, endpoint.enabled,
                        endpoints.signing_secrets(endpoint, now) if endpoint.enabled else [])


def signature(message_id: str, timestamp: datetime, body: str, secrets: list[str]) -> str:
    """The webhook-signature header: `v1,<base64>` per secret, space-separated (two during a rotation)."""
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets)


def send(url: str, message_id: str, body: str, secrets: list[str]) -> Outcome:
    """One signed POST through the SSRF guard. Never raises for what the receiver or network did."""
    timestamp = datetime.fromtimestamp(int(time.time()), timezone.utc)  # whole seconds, as the header carries
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": message_id,
               "webhook-timestamp": str(int(timestamp.timestamp())),
               "webhook-signature": signature(message_id, timestamp, body, secrets)}
    allowed, timeout = fetch.configured_origins(), current_app.config["WEBHOOK_TIMEOUT_SECONDS"]
    began = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - began) * 1000)

    try:
        fetch.check_url(url, allowed)
        with fetch.allowing(allowed):
            response = _session.post(url, data=body.encode(), headers=headers, timeout=(timeout, timeout),
                                      allow_redirects=False, stream=True)
            try:
                excerpt = response.raw.read(EXCERPT_CHARS, decode_content=True).decode("utf-8", "replace")
            finally:
                response.close()
    except fetch.ResultRefused:
        return Outcome(None, took(), error="Refused by the SSRF guard: the host does not resolve to a public "
                                           "address.")
    except (requests.Timeout, ReadTimeoutError, TimeoutError):
        return Outcome(None, took(), error=f"No answer within {timeout} s.")
    except (requests.RequestException, Urllib3Error, OSError) as error:
        return Outcome(None, took(), error=f"Could not connect ({type(error).__name__}).")
    return Outcome(response.status_code, took(), excerpt[:EXCERPT_CHARS] or None,
                   retry_after=_retry_after(response) if response.status_code in (429, 503) else None)


def _retry_after(response: requests.Response) -> timedelta | None:
    """Retry-After in seconds or as an HTTP date, capped at a day."""
    raw = (response.headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    if raw.isdigit():
        wait = timedelta(seconds=min(int(raw), RETRY_AFTER_CAP.total_seconds()))
    else:
        try:
            wait = email.utils.parsedate_to_datetime(raw) - utcnow()
        except (TypeError, ValueError):
            return None
    return min(max(wait, timedelta(0)), RETRY_AFTER_CAP)


def _record(claimed: _Claimed, outcome: Outcome) -> timedelta | None:
    """Log the attempt and move the delivery on. Returns how long until the next attempt, if any."""
    now = utcnow()
    with atomic():
        db.session.add(WebhookAttempt(tenant_id=claimed.tenant_id, delivery_id=claimed.id, attempted_at=now,
                                      status_code=outcome.status_code, latency_ms=outcome.latency_ms,
                                      response_excerpt=outcome.excerpt, error=outcome.error))
        if outcome.succeeded:
            _transition(claimed, "SUCCEEDED")
            return None
        if outcome.status_code == 410:
            _transition(claimed, "DISABLED")
            endpoints.disable_endpoint(claimed.endpoint_id, "The endpoint answered 410 Gone.")
            return None
        if claimed.attempt >= MAX_ATTEMPTS:
            _transition(claimed, "FAILED")
            return None
        due = _next_attempt(claimed, outcome, now)
        return due - now if _transition(claimed, "PENDING", next_attempt_at=due) else None


def _next_attempt(claimed: _Claimed, outcome: Outcome, now: datetime) -> datetime:
    """On the schedule, counted from the first attempt. When attempts run late (the worker was down), the
    missed ones are not sent in a burst but a minute apart. Never sooner than the receiver's Retry-After."""
    offset = RETRY_SCHEDULE[claimed.attempt - 1]
    due = max(claimed.schedule_started_at + offset, now + min(offset, SWEEP_INTERVAL))
    if outcome.retry_after is not None:
        due = max(due, now + outcome.retry_after)
    return due


def _transition(claimed: _Claimed, status: str, *, next_attempt_at: datetime | None = None) -> bool:
    """PENDING → status, only if nobody moved this delivery since this attempt claimed it."""
    values = {"status": status, "next_attempt_at": next_attempt_at}
    if status != "PENDING":
        values["finished_at"] = utcnow()
    return bool(db.session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.id == claimed.id, WebhookDelivery.status == "PENDING",
               WebhookDelivery.attempts == claimed.attempt)
        .values(**values).execution_options(synchronize_session=False)).rowcount)


def retry_due(now: datetime | None = None) -> int:
    """The `webhooks.retry` job: enqueue every PENDING delivery that is due (a batch a minute)."""
    now = now or utcnow()
    due = db.session.scalars(
        sa.select(WebhookDelivery.id)
        .where(WebhookDelivery.status == "PENDING", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at).limit(SWEEP_BATCH)).all()
    _enqueue([str(delivery_id) for delivery_id in due])
    return len(due)


def get_delivery(tenant_id: uuid.UUID, endpoint_id, delivery_id) -> WebhookDelivery:
    """A delivery of this tenant's endpoint; another endpoint's or tenant's is the same 404."""
    endpoint = endpoints.get_endpoint(tenant_id, endpoint_id)
    delivery_uuid = parse_uuid(delivery_id)
    delivery = None
    if delivery_uuid is not None:
        delivery = db.session.scalar(sa.select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_uuid, WebhookDelivery.tenant_id == tenant_id,
            WebhookDelivery.endpoint_id == endpoint.id))
    if delivery is None:
        raise NotFound("No such webhook delivery.", code="webhook_delivery_not_found")
    return delivery


@dataclass
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    next_cursor: str | None


def list_deliveries(tenant_id: uuid.UUID, *, endpoint_id=None, status: str | None = None,
                    cursor: str | None = None, limit: int = 20) -> DeliveryPage:
    """Newest first, keyset-paginated, with their attempts: one endpoint's, or (endpoint_id None)
    every endpoint's of the tenant."""
    query = sa.select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoints.get_endpoint(tenant_id, endpoint_id).id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    query = newest_first(query, WebhookDelivery, cursor=cursor).options(selectinload(WebhookDelivery.attempt_log))
    limit = min(max(1, limit), 100)
    return DeliveryPage(*one_page(list(db.session.scalars(query.limit(limit + 1))), limit))


def redeliver(tenant_id: uuid.UUID, endpoint_id, delivery_id, actor: Actor) -> WebhookDelivery:
    """Send a finished delivery again, with the same webhook-id (receivers dedupe on it) and a fresh
    retry schedule."""
    with atomic():
        delivery = get_delivery(tenant_id, endpoint_id, delivery_id)
        if not delivery.endpoint.enabled:
            raise Conflict("The endpoint is disabled; enable it, then redeliver.", code="webhook_endpoint_disabled")
        now = utcnow()
        restarted = db.session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.status != "PENDING")
            .values(status="PENDING", attempts=0, schedule_started_at=now, next_attempt_at=now, finished_at=None)
            .execution_options(synchronize_session=False)).rowcount
        if not restarted:
            raise Conflict("This delivery is already waiting for its next attempt.", code="webhook_delivery_pending")
        audit.record(actor, "webhook.redeliver", target_type="webhook_delivery", target_id=delivery.id,
                     tenant_id=tenant_id, changes={"message_id": delivery.message_id})
        ids = [str(delivery.id)]
        on_commit(lambda: _enqueue(ids))
    db.session.expire(delivery)
    return delivery
