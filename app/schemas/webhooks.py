"""Webhooks on the wire: endpoints (the secret only when it is created or rotated), deliveries with their
attempts, and the tenant's low-credits threshold. The same shapes for the tenant-admin API and the
platform admin API."""
from __future__ import annotations

import json
import uuid
from typing import Literal

from pydantic import AliasChoices, Field, field_validator

from app.core.db import utcnow
from app.schemas import Body, ListOf, Out, Query, Timestamp
from app.webhooks.events import MAX_THRESHOLD

EventType = Literal["generation.completed", "generation.failed", "credits.low"]


class WebhookEndpointOut(Out):
    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why it is disabled: by whom, or the 410 it answered")
    previous_secret_signs_until: Timestamp | None = Field(
        validation_alias=AliasChoices("previous_until", "previous_secret_signs_until"),
        description="After a rotation, the old secret signs beside the new one until then")
    created_at: Timestamp
    updated_at: Timestamp

    @field_validator("previous_secret_signs_until", mode="after")
    @classmethod
    def _only_while_signing(cls, until):
        return until if until is not None and until > utcnow() else None


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret: str = Field(description="whsec_…: verifies the webhook-signature header. Shown only in this response.")


class WebhookEndpointCreateIn(Body):
    url: str = Field(min_length=1, max_length=2048, description="http(s); its host must resolve to public addresses")
    events: list[EventType] = Field(min_length=1)
    enabled: bool = True


class WebhookEndpointUpdateIn(Body):
    """Only what is sent changes; none of them may be null."""

    url: str = Field(default=None, min_length=1, max_length=2048)
    events: list[EventType] = Field(default=None, min_length=1)
    enabled: bool = None


class NothingIn(Body):
    """An action that takes no fields: send {} or no body at all."""


class WebhookEndpointListOut(ListOf):
    data: list[WebhookEndpointOut]


class WebhookAttemptOut(Out):
    attempted_at: Timestamp
    status_code: int | None = Field(description="null when no answer came (see error)")
    latency_ms: int
    response_excerpt: str | None = Field(description="The first 1 KB of the answer")
    error: str | None


class WebhookDeliveryOut(Out):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    message_id: str = Field(description="The webhook-id header, the same on every attempt")
    event_type: str
    status: Literal["PENDING", "SUCCEEDED", "FAILED", "DISABLED"]
    next_attempt_at: Timestamp | None
    finished_at: Timestamp | None
    created_at: Timestamp
    payload: dict = Field(validation_alias=AliasChoices("body", "payload"), description="The JSON body sent: type, timestamp and data")
    attempts: list[WebhookAttemptOut] = Field(validation_alias=AliasChoices("attempt_log", "attempts"),
                                              description="Oldest first")

    @field_validator("payload", mode="before")
    @classmethod
    def _parsed(cls, body):
        return json.loads(body) if isinstance(body, str) else body


class WebhookDeliveryListOut(ListOf):
    data: list[WebhookDeliveryOut]
    has_more: bool
    next_cursor: str | None


class WebhookDeliveriesQuery(Query):
    status: Literal["PENDING", "SUCCEEDED", "FAILED", "DISABLED"] | None = None
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)


class TenantSettingsOut(Out):
    low_credits_threshold: int | None = Field(
        description="credits.low fires once each time available credits fall below this; null: never")


class TenantSettingsIn(Body):
    low_credits_threshold: int | None = Field(ge=0, le=MAX_THRESHOLD)
