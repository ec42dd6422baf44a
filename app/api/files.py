"""GET /files/<key>: stored results at signed, expiring URLs (app/storage/signing.py signs them).

Its own blueprint, outside /api/v1 and its JSON envelope: these URLs end up in <img> and <audio> tags.
A bad or expired signature is 403, a missing object 404 (both raised by the service as domain errors).
An object in a cloud bucket is answered with a 302 to a freshly presigned URL of it."""
from __future__ import annotations

import os
from typing import BinaryIO

from flask import Blueprint, current_app, redirect, request, send_file

from app.storage import service as storage
from app.storage import metering, signing, uploads
from app.storage.metering import CountedBody
from app.storage.models import StoredFile

bp = Blueprint("files", __name__)


@bp.get("/files/<path:key>")
def serve(key: str):
    signed = signing.open_signed(key, request.args.get("expires", ""), request.args.get("sig", ""))
    if signed.redirect is not None:
        return redirect_to(signed.redirect, signed.stored)
    return send_stored(signed.stored, signed.file, size=signed.size,
                       cache_control=f"private, max-age={signed.expires_in}")


@bp.put("/files/uploads/<upload_id>")
def receive_upload(upload_id: str):
    """The local disk's upload target (POST /api/v1/uploads answers it, signed): the body streams to disk,
    past MAX_BODY_BYTES, up to the size the upload declared."""
    request.max_content_length = current_app.config["UPLOAD_MAX_BYTES"]
    uploads.receive(upload_id, request.args.get("expires", ""), request.args.get("sig", ""), request.stream,
                    request.content_length)
    return "", 204


def redirect_to(presigned: str, stored: StoredFile, *, metered: bool = True):
    """302 to an object's presigned URL: made for this request, short-lived, so never cached. The bucket
    serves the bytes, so the traffic counted is the object's size."""
    if metered:
        metering.count_download(stored.tenant_id, stored.size_bytes)
    response = redirect(presigned, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


def serve_stored(stored: StoredFile, *, metered: bool = True):
    """A stored object for a stable URL (a video's content): its bytes from the local disk, else a 302 to
    a freshly presigned URL in its bucket. `metered`: counted as the tenant's download traffic (not when
    a platform admin looks at it)."""
    presigned = storage.presigned_url(stored)
    if presigned is not None:
        return redirect_to(presigned, stored, metered=metered)
    return send_stored(stored, storage.open_file(stored), metered=metered)


def send_stored(stored: StoredFile, file: BinaryIO, *, size: int | None = None, cache_control: str = "private",
                metered: bool = True):
    """An object's bytes, with Range (206, so a <video> can seek) and revalidation support. The bytes
    actually sent are counted against the tenant's download traffic."""
    if size is None:
        try:
            size = os.fstat(file.fileno()).st_size
        except (AttributeError, OSError):
            size = stored.size_bytes
    response = send_file(file, mimetype=stored.content_type, download_name=stored.storage_key.rsplit("/", 1)[-1],
                         conditional=False, etag=str(stored.id), last_modified=stored.created_at)
    response.content_length = size
    response = response.make_conditional(request, accept_ranges=True, complete_length=size)
    if metered:
        response.response = CountedBody(response.response, stored.tenant_id, current_app._get_current_object())
    response.headers["Cache-Control"] = cache_control
    response.headers.pop("Expires", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Served from our own origin: never let a stored object run script here.
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


def file_url(stored: StoredFile) -> str:
    """A signed, expiring, absolute URL of a stored object, for an answer."""
    return signing.signed_url(stored, external_base=request.host_url)
