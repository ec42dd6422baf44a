"""A tenant's webhooks and low-credits threshold in the JSON admin API: the same services and shapes as
the tenant-admin API, under /admin/api/tenants/<tenant_id>."""
from __future__ import annotations

from flask import g, jsonify

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.openapi import endpoint
from app.api.webhooks import delivery_page, with_secret
from app.schemas import dump
from app.schemas.webhooks import (NothingIn, TenantSettingsIn, TenantSettingsOut, WebhookDeliveriesQuery,
                                  WebhookDeliveryListOut, WebhookDeliveryOut, WebhookEndpointCreatedOut,
                                  WebhookEndpointCreateIn, WebhookEndpointListOut, WebhookEndpointOut,
                                  WebhookEndpointUpdateIn)
from app.webhooks import deliveries, endpoints, events


@api_bp.get("/tenants/<tenant_id>/webhooks")
@endpoint("List a tenant's webhook endpoints (never their secrets)", response=WebhookEndpointListOut,
          errors=(401, 404), tags=TAGS)
def list_webhooks():
    return jsonify(dump(WebhookEndpointListOut, {"data": endpoints.list_endpoints(g.tenant.id)}))


@api_bp.post("/tenants/<tenant_id>/webhooks")
@endpoint("Register a webhook endpoint for a tenant; its secret is shown once, in this response",
          body=WebhookEndpointCreateIn, response=WebhookEndpointCreatedOut, status=201, errors=(401, 404, 409),
          tags=TAGS)
def create_webhook(body: WebhookEndpointCreateIn):
    return jsonify(with_secret(endpoints.create_endpoint(g.tenant.id, admin_actor(), **body.model_dump()))), 201


@api_bp.get("/tenants/<tenant_id>/webhooks/<endpoint_id>")
@endpoint("Show a tenant's webhook endpoint", response=WebhookEndpointOut, errors=(401, 404), tags=TAGS)
def show_webhook(endpoint_id: str):
    return jsonify(dump(WebhookEndpointOut, endpoints.get_endpoint(g.tenant.id, endpoint_id)))


@api_bp.patch("/tenants/<tenant_id>/webhooks/<endpoint_id>")
@endpoint("Change a tenant's webhook endpoint: url, events or enabled", body=WebhookEndpointUpdateIn,
          response=WebhookEndpointOut, errors=(401, 404), tags=TAGS)
def update_webhook(endpoint_id: str, body: WebhookEndpointUpdateIn):
    changed = endpoints.update_endpoint(g.tenant.id, endpoint_id, admin_actor(), body.model_dump(exclude_unset=True))
    return jsonify(dump(WebhookEndpointOut, changed))


@api_bp.delete("/tenants/<tenant_id>/webhooks/<endpoint_id>")
@endpoint("Delete a tenant's webhook endpoint with its deliveries", status=204, errors=(401, 404), tags=TAGS)
def delete_webhook(endpoint_id: str):
    endpoints.delete_endpoint(g.tenant.id, endpoint_id, admin_actor())
    return "", 204


@api_bp.post("/tenants/<tenant_id>/webhooks/<endpoint_id>/rotate-secret")
@endpoint("Rotate a webhook endpoint's secret: the new one is shown once; the old one also signs for 24 hours",
          body=NothingIn, response=WebhookEndpointCreatedOut, errors=(401, 404), tags=TAGS)
def rotate_webhook_secret(endpoint_id: str, body: NothingIn):
    return jsonify(with_secret(endpoints.rotate_secret(g.tenant.id, endpoint_id, admin_actor())))


@api_bp.get("/tenants/<tenant_id>/webhooks/<endpoint_id>/deliveries")
@endpoint("A webhook endpoint's deliveries, newest first, with every attempt", query=WebhookDeliveriesQuery,
          response=WebhookDeliveryListOut, errors=(401, 404), tags=TAGS)
def list_webhook_deliveries(endpoint_id: str, query: WebhookDeliveriesQuery):
    return jsonify(delivery_page(deliveries.list_deliveries(g.tenant.id, endpoint_id=endpoint_id, status=query.status,
                                                            cursor=query.cursor, limit=query.limit)))


@api_bp.post("/tenants/<tenant_id>/webhooks/<endpoint_id>/deliveries/<delivery_id>/redeliver")
@endpoint("Send a delivery again (same webhook-id, fresh retry schedule)", body=NothingIn,
          response=WebhookDeliveryOut, status=202,
          errors=(401, 404, 409), tags=TAGS)
def redeliver_webhook(endpoint_id: str, delivery_id: str, body: NothingIn):
    delivery = deliveries.redeliver(g.tenant.id, endpoint_id, delivery_id, admin_actor())
    return jsonify(dump(WebhookDeliveryOut, delivery)), 202


@api_bp.get("/tenants/<tenant_id>/settings")
@endpoint("A tenant's settings: the low-credits threshold", response=TenantSettingsOut, errors=(401, 404), tags=TAGS)
def show_tenant_settings():
    return jsonify(dump(TenantSettingsOut, g.tenant))


@api_bp.patch("/tenants/<tenant_id>/settings")
@endpoint("Set a tenant's low-credits threshold (null: no credits.low)", body=TenantSettingsIn,
          response=TenantSettingsOut, errors=(401, 404), tags=TAGS)
def update_tenant_settings(body: TenantSettingsIn):
    tenant = events.set_low_credits_threshold(g.tenant.id, body.low_credits_threshold, admin_actor())
    return jsonify(dump(TenantSettingsOut, tenant))
