"""A tenant's webhooks: endpoints (add, enable or disable, rotate the secret, delete), recent deliveries
with their attempts and a redeliver button, and the low-credits threshold that fires credits.low."""
from __future__ import annotations

from flask import request

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, checkbox, text, typed_back, whole_number
from app.admin.rendering import FIXABLE
from app.admin.tenant_sections import tenant_section
from app.identity import tenants
from app.webhooks import deliveries, endpoints, events

WEBHOOK_FIELDS = ("url", "events")
NO_STORE = {"Cache-Control": "no-store"}  # a secret is on the page


@bp.get("/tenants/<tenant_id>/webhooks")
def webhook_list(tenant_id):
    return tenant_section(tenants.find_tenant(tenant_id), "webhooks")


@bp.post("/tenants/<tenant_id>/webhooks")
def webhook_create(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        shown = endpoints.create_endpoint(tenant.id, acting_admin(), url=text(values, "url"),
                                          events=values.getlist("events"))
    except FIXABLE as error:
        return tenant_section(tenant, "webhooks", error.status,
                              webhook_form=Form.failed(typed_back(values), error, WEBHOOK_FIELDS))
    return tenant_section(tenant, "webhooks", headers=NO_STORE,
                          new_secret=(shown.endpoint, shown.secret, "Endpoint added."))


@bp.post("/tenants/<tenant_id>/webhooks/<endpoint_id>/enabled")
def webhook_set_enabled(tenant_id, endpoint_id):
    tenant = tenants.find_tenant(tenant_id)
    enabled = checkbox(request.form, "active")
    endpoint = endpoints.update_endpoint(tenant.id, endpoint_id, acting_admin(), {"enabled": enabled})
    notice = (f"Enabled {endpoint.url}." if enabled
              else f"Disabled {endpoint.url}; its waiting deliveries were stopped.")
    return tenant_section(tenant, "webhooks", webhook_notice=notice)


@bp.post("/tenants/<tenant_id>/webhooks/<endpoint_id>/rotate")
def webhook_rotate(tenant_id, endpoint_id):
    tenant = tenants.find_tenant(tenant_id)
    shown = endpoints.rotate_secret(tenant.id, endpoint_id, acting_admin())
    return tenant_section(tenant, "webhooks", headers=NO_STORE,
                          new_secret=(shown.endpoint, shown.secret, "Secret rotated; the old one also signs for "
                                                                    "24 hours."))


@bp.post("/tenants/<tenant_id>/webhooks/<endpoint_id>/delete")
def webhook_delete(tenant_id, endpoint_id):
    tenant = tenants.find_tenant(tenant_id)
    url = endpoints.get_endpoint(tenant.id, endpoint_id).url
    endpoints.delete_endpoint(tenant.id, endpoint_id, acting_admin())
    return tenant_section(tenant, "webhooks", webhook_notice=f"Deleted {url} and its deliveries.")


@bp.post("/tenants/<tenant_id>/webhooks/<endpoint_id>/deliveries/<delivery_id>/redeliver")
def webhook_redeliver(tenant_id, endpoint_id, delivery_id):
    tenant = tenants.find_tenant(tenant_id)
    try:
        delivery = deliveries.redeliver(tenant.id, endpoint_id, delivery_id, acting_admin())
    except FIXABLE as error:
        return tenant_section(tenant, "webhooks", error.status, webhook_error=error.message)
    return tenant_section(tenant, "webhooks", webhook_notice=f"Redelivering {delivery.message_id}.")


@bp.post("/tenants/<tenant_id>/low-credits")
def low_credits_threshold(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        raw = text(values, "low_credits_threshold")
        threshold = whole_number(values, "low_credits_threshold", "Threshold") if raw else None
        events.set_low_credits_threshold(tenant.id, threshold, acting_admin())
    except FIXABLE as error:
        return tenant_section(tenant, "webhooks", error.status,
                              threshold_form=Form.failed(typed_back(values), error, ("low_credits_threshold",)))
    notice = (f"credits.low fires when available credits fall below {threshold:,}." if threshold is not None
              else "No low-credits alert.")
    return tenant_section(tenant, "webhooks", webhook_notice=notice)
