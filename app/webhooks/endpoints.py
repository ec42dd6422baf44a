"""Webhook endpoints: register, change, rotate the signing secret, delete, list.

Each endpoint has its own secret, `whsec_` + base64 of 32 random bytes (the Standard Webhooks form),
kept encrypted and shown once. A rotation keeps the previous secret signing beside the new one for a
day, so a receiver can switch without dropping a delivery. The URL passes the SSRF guard when it is
registered or changed, and again at every delivery.
"""
from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa

from app.core import cache
from app.core.crypto import decrypt, encrypt
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidInput
from app.core.lookup import get_for_tenant
from app.core.transaction import atomic
from app.extensions import db
from app.gateway import fetch
from app.identity import audit
from app.identity.audit import Actor
from app.identity.tenants import get_tenant
from app.webhooks.models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint

SECRET_CONTEXT = "webhook_endpoint.secret"
PREVIOUS_SECRET_CONTEXT = "webhook_endpoint.previous_secret"
ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 20
MAX_URL_LENGTH = 2048
EDITABLE = ("url", "events", "enabled")


@dataclass
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str  # shown once: at creation and at each rotation


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url) -> str:
    """A URL we may deliver to: http(s), a host, no credentials, and only public addresses unless the
    origin is in FETCH_ALLOWLIST (the gateways' own origins are not allowed here, as they are for results)."""
    url = (url or "").strip() if isinstance(url, str) else ""
    if not url:
        raise InvalidInput("url is required.", param="url")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url must be at most {MAX_URL_LENGTH} characters.", param="url")
    try:
        split = urlsplit(url)
        split.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        raise InvalidInput("url is not a valid URL.", param="url") from None
    if split.scheme.lower() not in ("http", "https") or not split.hostname:
        raise InvalidInput("url must be an http:// or https:// URL with a host.", param="url")
    if split.username is not None or split.password is not None:
        raise InvalidInput("url must not carry credentials; verify the webhook-signature header instead.",
                           param="url")
    try:
        fetch.check_url(url, fetch.configured_origins())
    except fetch.ResultRefused:
        raise InvalidInput(f"Refused: {split.hostname} does not resolve to a public address (private, loopback "
                           "and internal addresses are not delivered to).", code="webhook_url_refused",
                           param="url") from None
    return url


def _events(events) -> list[str]:
    if not isinstance(events, (list, tuple)) or not events:
        raise InvalidInput(f"events must list at least one of {', '.join(EVENT_TYPES)}.", param="events")
    unknown = sorted({str(e) for e in events} - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(f"Unknown event type(s): {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}.",
                           param="events")
    return [event for event in EVENT_TYPES if event in events]


def _enabled(value) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("enabled must be true or false.", param="enabled")
    return value


@atomic()
def create_endpoint(tenant_id: uuid.UUID, actor: Actor, *, url: str, events, enabled: bool = True
                    ) -> EndpointWithSecret:
    tenant = get_tenant(tenant_id, for_update=True)  # the lock makes the count below exact
    url, events, enabled = check_url(url), _events(events), _enabled(enabled)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)
                              .where(WebhookEndpoint.tenant_id == tenant.id))
    if count >= MAX_ENDPOINTS:
        raise Conflict(f"A tenant can have at most {MAX_ENDPOINTS} webhook endpoints.",
                       code="webhook_endpoint_limit_reached")
    secret = new_secret()
    endpoint = WebhookEndpoint(tenant_id=tenant.id, url=url, events=events, enabled=enabled,
                               secret_encrypted=encrypt(secret, context=SECRET_CONTEXT))
    db.session.add(endpoint)
    db.session.flush()
    # Which events the tenant's endpoints want is cached (deliveries.subscribed_endpoints); the
    # endpoints themselves are read fresh, so only a change that adds a wanted event needs telling.
    cache.changed("webhook_endpoints")
    audit.record(actor, "webhook.create", target_type="webhook_endpoint", target_id=endpoint.id, tenant_id=tenant.id,
                 changes={"url": url, "events": events, "enabled": enabled})
    return EndpointWithSecret(endpoint, secret)


def get_endpoint(tenant_id: uuid.UUID, endpoint_id, *, for_update: bool = False) -> WebhookEndpoint:
    return get_for_tenant(WebhookEndpoint, tenant_id, endpoint_id, what="webhook endpoint", for_update=for_update)


def list_endpoints(tenant_id: uuid.UUID) -> list[WebhookEndpoint]:
    return list(db.session.scalars(sa.select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
                                   .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


@atomic()
def update_endpoint(tenant_id: uuid.UUID, endpoint_id, actor: Actor, changes: dict) -> WebhookEndpoint:
    """Change url, events or enabled. Disabling stops the endpoint's waiting deliveries (DISABLED);
    enabling clears why it was disabled. Redeliver what it missed from its deliveries."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    endpoint = get_endpoint(tenant_id, endpoint_id, for_update=True)
    cleaned = {}
    if "url" in changes:
        cleaned["url"] = check_url(changes["url"])
    if "events" in changes:
        cleaned["events"] = _events(changes["events"])
    if "enabled" in changes:
        cleaned["enabled"] = _enabled(changes["enabled"])
    changed = audit.diff(endpoint, cleaned)
    if "enabled" in changed:
        if endpoint.enabled:
            endpoint.disabled_reason = None
        else:
            endpoint.disabled_reason = f"Disabled by {actor.name or actor.kind}."
            stop_waiting_deliveries(endpoint.id)
    if changed:
        cache.changed("webhook_endpoints")
        audit.record(actor, "webhook.update", target_type="webhook_endpoint", target_id=endpoint.id,
                     tenant_id=tenant_id, changes=changed)
    return endpoint


@atomic()
def rotate_secret(tenant_id: uuid.UUID, endpoint_id, actor: Actor) -> EndpointWithSecret:
    """A new secret signs from now on; the one it replaces signs beside it for ROTATION_OVERLAP (a
    second rotation within that time drops the oldest)."""
    endpoint = get_endpoint(tenant_id, endpoint_id, for_update=True)
    current = decrypt(endpoint.secret_encrypted, context=SECRET_CONTEXT)
    secret = new_secret()
    endpoint.previous_secret_encrypted = encrypt(current, context=PREVIOUS_SECRET_CONTEXT)
    endpoint.previous_until = utcnow() + ROTATION_OVERLAP
    endpoint.secret_encrypted = encrypt(secret, context=SECRET_CONTEXT)
    endpoint.updated_at = utcnow()
    audit.record(actor, "webhook.rotate_secret", target_type="webhook_endpoint", target_id=endpoint.id,
                 tenant_id=tenant_id, changes={"previous_secret_signs_until": endpoint.previous_until.isoformat()})
    return EndpointWithSecret(endpoint, secret)


@atomic()
def delete_endpoint(tenant_id: uuid.UUID, endpoint_id, actor: Actor) -> None:
    """The endpoint, its deliveries and their attempts."""
    endpoint = get_endpoint(tenant_id, endpoint_id, for_update=True)
    deliveries = sa.select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    db.session.execute(sa.delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries))
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
                       .execution_options(synchronize_session=False))
    audit.record(actor, "webhook.delete", target_type="webhook_endpoint", target_id=endpoint.id, tenant_id=tenant_id,
                 changes={"url": endpoint.url})
    db.session.delete(endpoint)


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one during an overlap."""
    found = [decrypt(endpoint.secret_encrypted, context=SECRET_CONTEXT)]
    if endpoint.previous_secret_encrypted is not None and endpoint.previous_until and endpoint.previous_until > now:
        found.append(decrypt(endpoint.previous_secret_encrypted, context=PREVIOUS_SECRET_CONTEXT))
    return found


def stop_waiting_deliveries(endpoint_id: uuid.UUID) -> int:
    """In the caller's transaction: the endpoint's PENDING deliveries become DISABLED (compare-and-set)."""
    return db.session.execute(
        sa.update(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id,
                                         WebhookDelivery.status == "PENDING")
        .values(status="DISABLED", next_attempt_at=None, finished_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount


def disable_endpoint(endpoint_id: uuid.UUID, reason: str) -> bool:
    """In the caller's transaction: enabled → disabled (compare-and-set), stopping its waiting deliveries."""
    disabled = db.session.execute(
        sa.update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason[:200], updated_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    if disabled:
        stop_waiting_deliveries(endpoint_id)
    return bool(disabled)
