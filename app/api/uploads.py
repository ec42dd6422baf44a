"""Uploads: declare a file (POST /uploads), send it where the answer says (the bucket itself, or our own
signed route for the local disk), complete it (the object is checked and metered), then name its URL in
a generation request. GET /uploads/{id}/content is that stable URL."""
from __future__ import annotations

from flask import current_app, jsonify, request

from app.api import bp
from app.api.auth import AUTH, current_principal, generation_caller
from app.api.files import serve_stored
from app.api.openapi import endpoint
from app.core.errors import NotFound
from app.schemas.uploads import UploadIn, UploadOut
from app.schemas.webhooks import NothingIn
from app.storage import uploads

TAGS = ("uploads",)


def with_uploads_resolved(tenant_id, params: dict) -> dict:
    """Our own upload URLs in a generation request, as URLs the gateway can fetch (by tenant: another
    tenant's upload is 404)."""
    return uploads.resolve_references(tenant_id, params, (request.host_url, current_app.config["PUBLIC_BASE_URL"]))


def upload_out(stored, *, filename: str | None = None, target=None) -> dict:
    done = stored.status == "STORED"
    return UploadOut(id=str(stored.id), status="completed" if done else "pending", filename=filename,
                     content_type=stored.content_type, size=stored.size_bytes, created_at=stored.created_at,
                     url=request.host_url.rstrip("/") + uploads.content_path(stored) if done else None,
                     upload=target.__dict__ if target is not None else None).model_dump(mode="json")


@bp.post("/uploads")
@endpoint("Declare a file to upload: answers where to send it (a presigned POST the bucket checks, or our own "
          "signed PUT); it counts against the storage quota", body=UploadIn, response=UploadOut, status=201,
          auth=AUTH, errors=(403, 413), tags=TAGS)
def create_upload(body: UploadIn):
    caller = generation_caller()
    created = uploads.create_upload(caller.tenant, str(caller.user_id or "api"), filename=body.filename,
                                    content_type=body.content_type, size=body.size, base_url=request.host_url)
    return jsonify(upload_out(created.stored, filename=body.filename, target=created.target)), 201


@bp.post("/uploads/<upload_id>/complete")
@endpoint("Complete an upload: the file is checked (size, content type, first bytes) and its URL answered",
          body=NothingIn, response=UploadOut, auth=AUTH, errors=(404,), tags=TAGS)
def complete_upload(upload_id: str, body: NothingIn):
    return jsonify(upload_out(uploads.complete(current_principal().tenant_id, upload_id)))


@bp.get("/uploads/<upload_id>/content")
@endpoint("A completed upload's bytes (from a cloud bucket, a 302 to a short-lived presigned URL)",
          media=tuple(uploads.MAGIC), auth=AUTH, errors=(404,), tags=TAGS)
def upload_content(upload_id: str):
    stored = uploads.get_upload(current_principal().tenant_id, upload_id)
    if stored.status != "STORED":
        raise NotFound("This upload is not complete.", code="upload_not_found")
    return serve_stored(stored)
