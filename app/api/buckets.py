"""The tenant-admin API for the tenant's own bucket: set it (PUT), see it (never its keys), verify it
(a probe object written, read, listed and deleted), delete it, and switch where new results go."""
from __future__ import annotations

from flask import jsonify

from app.api import bp
from app.api.auth import AUTH, current_principal, tenant_admin_required
from app.api.openapi import endpoint
from app.schemas import dump
from app.schemas.buckets import StorageModeIn, StorageModeOut, TenantBucketIn, TenantBucketOut
from app.schemas.webhooks import NothingIn
from app.storage import buckets

TAGS = ("storage",)


def settings(body: TenantBucketIn) -> buckets.BucketSettings:
    return buckets.BucketSettings(**body.model_dump())


def mode_out(tenant) -> dict:
    row = buckets.find_config(tenant.id)
    return dump(StorageModeOut, {"mode": tenant.oss_mode, "bucket": row})


@bp.get("/tenant/storage/bucket")
@endpoint("The tenant's own bucket (its keys never shown)", response=TenantBucketOut, auth=AUTH, errors=(403, 404),
          tags=TAGS)
@tenant_admin_required
def show_bucket():
    return jsonify(dump(TenantBucketOut, buckets.get_config(current_principal().tenant_id)))


@bp.put("/tenant/storage/bucket")
@endpoint("Set the tenant's own bucket; a new endpoint, bucket or key unverifies it", body=TenantBucketIn,
          response=TenantBucketOut, auth=AUTH, errors=(403, 409), tags=TAGS)
@tenant_admin_required
def save_bucket(body: TenantBucketIn):
    principal = current_principal()
    return jsonify(dump(TenantBucketOut, buckets.save_config(principal.tenant_id, principal.actor(), settings(body))))


@bp.delete("/tenant/storage/bucket")
@endpoint("Forget the tenant's own bucket (not while results go there or files are kept there)", status=204,
          auth=AUTH, errors=(403, 404, 409), tags=TAGS)
@tenant_admin_required
def delete_bucket():
    principal = current_principal()
    buckets.delete_config(principal.tenant_id, principal.actor())
    return "", 204


@bp.post("/tenant/storage/bucket/verify")
@endpoint("Verify the bucket: write, read, list and delete a probe object (400 bucket_verification_failed says why)",
          body=NothingIn, response=TenantBucketOut, auth=AUTH, errors=(403, 404), tags=TAGS)
@tenant_admin_required
def verify_bucket(body: NothingIn):
    principal = current_principal()
    return jsonify(dump(TenantBucketOut, buckets.verify(principal.tenant_id, principal.actor())))


@bp.get("/tenant/storage/mode")
@endpoint("Where new results go: PLATFORM or CUSTOM (the tenant's bucket)", response=StorageModeOut, auth=AUTH,
          errors=(403,), tags=TAGS)
@tenant_admin_required
def show_storage_mode():
    return jsonify(mode_out(current_principal().tenant))


@bp.put("/tenant/storage/mode")
@endpoint("Switch where new results go; CUSTOM needs a verified bucket (409 bucket_not_verified)",
          body=StorageModeIn, response=StorageModeOut, auth=AUTH, errors=(403, 409), tags=TAGS)
@tenant_admin_required
def set_storage_mode(body: StorageModeIn):
    principal = current_principal()
    return jsonify(mode_out(buckets.set_mode(principal.tenant_id, principal.actor(), body.mode)))
