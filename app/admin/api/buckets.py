"""A tenant's own bucket in the JSON admin API: the same services and shapes as the tenant-admin API,
under /admin/api/tenants/<tenant_id>/storage."""
from __future__ import annotations

from flask import g, jsonify

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.buckets import mode_out, settings
from app.api.openapi import endpoint
from app.schemas import dump
from app.schemas.buckets import StorageModeIn, StorageModeOut, TenantBucketIn, TenantBucketOut
from app.schemas.webhooks import NothingIn
from app.storage import buckets


@api_bp.get("/tenants/<tenant_id>/storage/bucket")
@endpoint("A tenant's own bucket (its keys never shown)", response=TenantBucketOut, errors=(401, 404), tags=TAGS)
def show_tenant_bucket():
    return jsonify(dump(TenantBucketOut, buckets.get_config(g.tenant.id)))


@api_bp.put("/tenants/<tenant_id>/storage/bucket")
@endpoint("Set a tenant's own bucket; a new endpoint, bucket or key unverifies it", body=TenantBucketIn,
          response=TenantBucketOut, errors=(401, 404, 409), tags=TAGS)
def save_tenant_bucket(body: TenantBucketIn):
    return jsonify(dump(TenantBucketOut, buckets.save_config(g.tenant.id, admin_actor(), settings(body))))


@api_bp.delete("/tenants/<tenant_id>/storage/bucket")
@endpoint("Forget a tenant's own bucket (not while results go there or files are kept there)", status=204,
          errors=(401, 404, 409), tags=TAGS)
def delete_tenant_bucket():
    buckets.delete_config(g.tenant.id, admin_actor())
    return "", 204


@api_bp.post("/tenants/<tenant_id>/storage/bucket/verify")
@endpoint("Verify a tenant's bucket: write, read, list and delete a probe object", body=NothingIn,
          response=TenantBucketOut, errors=(401, 404), tags=TAGS)
def verify_tenant_bucket(body: NothingIn):
    return jsonify(dump(TenantBucketOut, buckets.verify(g.tenant.id, admin_actor())))


@api_bp.put("/tenants/<tenant_id>/storage/mode")
@endpoint("Switch where a tenant's new results go; CUSTOM needs a verified bucket", body=StorageModeIn,
          response=StorageModeOut, errors=(401, 404, 409), tags=TAGS)
def set_tenant_storage_mode(body: StorageModeIn):
    return jsonify(mode_out(buckets.set_mode(g.tenant.id, admin_actor(), body.mode)))
