"""A tenant's own bucket on its dashboard page: set it (the keys are never shown again), verify it, switch
where new results go, forget it. The same services as the APIs."""
from __future__ import annotations

from flask import request

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, optional_text, text, typed_back
from app.admin.rendering import FIXABLE
from app.admin.tenant_sections import tenant_section
from app.identity import tenants
from app.storage import buckets

BUCKET_FIELDS = ("provider", "endpoint", "region", "bucket", "access_key_id", "secret", "custom_domain",
                 "path_prefix")


@bp.get("/tenants/<tenant_id>/bucket")
def bucket_show(tenant_id):
    return tenant_section(tenants.find_tenant(tenant_id), "bucket")


@bp.post("/tenants/<tenant_id>/bucket")
def bucket_save(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        settings = buckets.BucketSettings(
            provider=text(values, "provider"), bucket=text(values, "bucket"), endpoint=text(values, "endpoint"),
            region=text(values, "region"), access_key_id=optional_text(values, "access_key_id"),
            secret=optional_text(values, "secret"), custom_domain=optional_text(values, "custom_domain"),
            path_prefix=text(values, "path_prefix"))
        buckets.save_config(tenant.id, acting_admin(), settings)
    except FIXABLE as error:
        return tenant_section(tenant, "bucket", error.status,
                              bucket_form=Form.failed(typed_back(values), error, BUCKET_FIELDS))
    return tenant_section(tenant, "bucket", bucket_notice="Bucket saved; verify it before results go there.")


@bp.post("/tenants/<tenant_id>/bucket/verify")
def bucket_verify(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    try:
        row = buckets.verify(tenant.id, acting_admin())
    except FIXABLE as error:
        return tenant_section(tenant, "bucket", error.status, bucket_error=error.message)
    return tenant_section(tenant, "bucket", bucket_notice=f"Verified {row.bucket}: written, read, listed, deleted.")


@bp.post("/tenants/<tenant_id>/bucket/mode")
def bucket_mode(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    try:
        tenant = buckets.set_mode(tenant.id, acting_admin(), text(request.form, "mode"))
    except FIXABLE as error:
        return tenant_section(tenant, "bucket", error.status, bucket_error=error.message)
    where = "the tenant's own bucket" if tenant.oss_mode == "CUSTOM" else "the platform's storage"
    return tenant_section(tenant, "bucket",
                          bucket_notice=f"New results go to {where}; stored ones stay where they are.")


@bp.post("/tenants/<tenant_id>/bucket/delete")
def bucket_delete(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    try:
        buckets.delete_config(tenant.id, acting_admin())
    except FIXABLE as error:
        return tenant_section(tenant, "bucket", error.status, bucket_error=error.message)
    return tenant_section(tenant, "bucket", bucket_notice="Bucket forgotten.")
