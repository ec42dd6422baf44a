"""A tenant's usage: a chart of credits per day and the per-model table, over a period."""
from __future__ import annotations

from flask import request

from app.admin import bp
from app.admin.rendering import respond, wants_fragment
from app.admin.tenant_sections import tenant_section, usage_section
from app.identity import tenants


@bp.get("/tenants/<tenant_id>/usage")
def tenant_usage(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    context = usage_section(tenant, usage_values=request.args)
    status = 400 if context["usage_form"].has_errors else 200
    if wants_fragment():
        return respond("admin/partials/tenant_usage.html", "admin/tenant_detail.html", status, **context)
    return tenant_section(tenant, "usage", status, usage_values=request.args)
