"""GET /files/<key>: stored results at signed, expiring URLs (app/storage/signing.py signs them).

Its own blueprint, outside /api/v1 and its JSON envelope: these URLs end up in <img> and <audio> tags.
A bad or expired signature is 403, a missing object 404 (both raised by the service as domain errors)."""
from __future__ import annotations

from flask import Blueprint, request, send_file

from app.storage import signing

bp = Blueprint("files", __name__)


@bp.get("/files/<path:key>")
def serve(key: str):
    signed = signing.open_signed(key, request.args.get("expires", ""), request.args.get("sig", ""))
    response = send_file(signed.file, mimetype=signed.stored.content_type, download_name=key.rsplit("/", 1)[-1],
                         conditional=False, etag=str(signed.stored.id), last_modified=signed.stored.created_at)
    response.content_length = signed.size
    response = response.make_conditional(request, accept_ranges=True, complete_length=signed.size)
    response.headers["Cache-Control"] = f"private, max-age={signed.expires_in}"
    response.headers.pop("Expires", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Served from our own origin: never let a stored object run script here.
    response.headers["Content-Security-Policy"] = "sandbox"
    return response
