"""The tenant-admin API for webhooks: endpoints (the signing secret shown once, at creation and at each
rotation), their deliveries with every attempt, redelivery, and the low-credits threshold that fires
credits.low."""
from __future__ import annotations

from flask import jsonify

from app.api import bp
from app.api.auth import AUTH, current_principal, tenant_admin_required
from app.api.openapi import endpoint
from app.schemas import dump
from app.schemas.webhooks import (NothingIn, TenantSettingsIn, TenantSettingsOut, WebhookDeliveriesQuery,
                                  WebhookDeliveryListOut, WebhookDeliveryOut, WebhookEndpointCreatedOut,
                                  WebhookEndpointCreateIn, WebhookEndpointListOut, WebhookEndpointOut,
                                  WebhookEndpointUpdateIn)
from app.webhooks import deliveries, endpoints, events

TAGS = ("webhooks",)


def with_secret(shown: endpoints.EndpointWithSecret) -> dict:
    return dump(WebhookEndpointCreatedOut, {**dump(WebhookEndpointOut, shown.endpoint), "secret": shown.secret})


def delivery_page(page: deliveries.DeliveryPage) -> dict:
    return dump(WebhookDeliveryListOut, {"data": page.deliveries, "has_more": page.next_cursor is not None,
                                         "next_cursor": page.next_cursor})


@bp.get("/tenant/webhooks")
@endpoint("List the tenant's webhook endpoints (never their secrets)", response=WebhookEndpointListOut, auth=AUTH,
          errors=(403,), tags=TAGS)
@tenant_admin_required
def list_webhooks():
    return jsonify(dump(WebhookEndpointListOut, {"data": endpoints.list_endpoints(current_principal().tenant_id)}))


@bp.post("/tenant/webhooks")
@endpoint("Register a webhook endpoint; its signing secret is shown once, in this response",
          body=WebhookEndpointCreateIn, response=WebhookEndpointCreatedOut, status=201, auth=AUTH, errors=(403, 409),
          tags=TAGS)
@tenant_admin_required
def create_webhook(body: WebhookEndpointCreateIn):
    principal = current_principal()
    return jsonify(with_secret(endpoints.create_endpoint(principal.tenant_id, principal.actor(),
                                                         **body.model_dump()))), 201


@bp.get("/tenant/webhooks/<endpoint_id>")
@endpoint("Show a webhook endpoint", response=WebhookEndpointOut, auth=AUTH, errors=(403, 404), tags=TAGS)
@tenant_admin_required
def show_webhook(endpoint_id: str):
    return jsonify(dump(WebhookEndpointOut, endpoints.get_endpoint(current_principal().tenant_id, endpoint_id)))


@bp.patch("/tenant/webhooks/<endpoint_id>")
@endpoint("Change a webhook endpoint's url, events or enabled (disabling stops its waiting deliveries)",
          body=WebhookEndpointUpdateIn, response=WebhookEndpointOut, auth=AUTH, errors=(403, 404), tags=TAGS)
@tenant_admin_required
def update_webhook(endpoint_id: str, body: WebhookEndpointUpdateIn):
    principal = current_principal()
    changed = endpoints.update_endpoint(principal.tenant_id, endpoint_id, principal.actor(),
                                        body.model_dump(exclude_unset=True))
    return jsonify(dump(WebhookEndpointOut, changed))


@bp.delete("/tenant/webhooks/<endpoint_id>")
@endpoint("Delete a webhook endpoint with its deliveries", status=204, auth=AUTH, errors=(403, 404), tags=TAGS)
@tenant_admin_required
def delete_webhook(endpoint_id: str):
    principal = current_principal()
    endpoints.delete_endpoint(principal.tenant_id, endpoint_id, principal.actor())
    return "", 204


@bp.post("/tenant/webhooks/<endpoint_id>/rotate-secret")
@endpoint("Rotate the signing secret: the new one is shown once; the old one also signs for 24 hours",
          body=NothingIn, response=WebhookEndpointCreatedOut, auth=AUTH, errors=(403, 404), tags=TAGS)
@tenant_admin_required
def rotate_webhook_secret(endpoint_id: str, body: NothingIn):
    principal = current_principal()
    return jsonify(with_secret(endpoints.rotate_secret(principal.tenant_id, endpoint_id, principal.actor())))


@bp.get("/tenant/webhooks/<endpoint_id>/deliveries")
@endpoint("An endpoint's deliveries, newest first, with every attempt", query=WebhookDeliveriesQuery,
          response=WebhookDeliveryListOut, auth=AUTH, errors=(403, 404), tags=TAGS)
@tenant_admin_required
def list_webhook_deliveries(endpoint_id: str, query: WebhookDeliveriesQuery):
    return jsonify(delivery_page(deliveries.list_deliveries(
        current_principal().tenant_id, endpoint_id=endpoint_id, status=query.status, cursor=query.cursor,
        limit=query.limit)))


@bp.post("/tenant/webhooks/<endpoint_id>/deliveries/<delivery_id>/redeliver")
@endpoint("Send a delivery again (same webhook-id, fresh retry schedule)", body=NothingIn,
          response=WebhookDeliveryOut, status=202,
          auth=AUTH, errors=(403, 404, 409), tags=TAGS)
@tenant_admin_required
def redeliver_webhook(endpoint_id: str, delivery_id: str, body: NothingIn):
    principal = current_principal()
    delivery = deliveries.redeliver(principal.tenant_id, endpoint_id, delivery_id, principal.actor())
    return jsonify(dump(WebhookDeliveryOut, delivery)), 202


@bp.get("/tenant/settings")
@endpoint("The tenant's settings: the low-credits threshold", response=TenantSettingsOut, auth=AUTH, errors=(403,),
          tags=("tenant",))
@tenant_admin_required
def show_tenant_settings():
    return jsonify(dump(TenantSettingsOut, current_principal().tenant))


@bp.patch("/tenant/settings")
@endpoint("Set the low-credits threshold (null: no credits.low); a new one is checked at once",
          body=TenantSettingsIn, response=TenantSettingsOut, auth=AUTH, errors=(403,), tags=("tenant",))
@tenant_admin_required
def update_tenant_settings(body: TenantSettingsIn):
    principal = current_principal()
    tenant = events.set_low_credits_threshold(principal.tenant_id, body.low_credits_threshold, principal.actor())
    return jsonify(dump(TenantSettingsOut, tenant))
