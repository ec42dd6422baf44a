"""Files clients upload ahead of a generation (POST /api/v1/uploads), to use as its reference images.

An upload is a StoredFile of variant "upload": recorded PENDING with its declared size (checked against
the tenant's quota first), sent by the client straight to where the tenant's objects go — a presigned
POST whose policy makes the bucket refuse any other size, or for the local disk our own signed route,
streamed to disk with its own limit — then completed: the object is checked (size, content type, magic
bytes) and metered. A generation request may name the upload's stable URL; it is resolved here, by
tenant, into a URL the gateway can fetch, never fetched over HTTP by us. Uploads never completed are
deleted after a day by the `uploads.expire` job."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from app.core.db import utcnow
from app.core.errors import Forbidden, InvalidInput, NotFound
from app.core.lookup import get_for_tenant
from app.core.transaction import atomic
from app.extensions import db
from app.identity.models import Tenant
from app.storage import backends, quota, signing
from app.storage import service as storage
from app.storage.backends import StorageFailed, UnsafeKey
from app.storage.models import StoredFile

log = logging.getLogger(__name__)

VARIANT = "upload"
EXPIRY = timedelta(hours=24)
# What may be uploaded, and how each type's first bytes look.
MAGIC = {
    "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "image/jpeg": ((0, b"\xff\xd8\xff"),),
    "image/gif": ((0, b"GIF87a"), (0, b"GIF89a")),
    "image/webp": ((0, b"RIFF"), (8, b"WEBP")),
    "video/mp4": ((4, b"ftyp"),),
    "video/quicktime": ((4, b"ftyp"),),
    "video/webm": ((0, b"\x1aE\xdf\xa3"),),
}
# How long a reference handed to the gateway stays valid: a queued video may wait an hour, then run 25 minutes.
REFERENCE_URL_SECONDS = 24 * 3600
_UPLOAD_CONTEXT = b"waule.uploads.v1"
_CONTENT_PATH = re.compile(r"^/api/v1/uploads/([0-9a-fA-F-]{36})/content$")


class UploadMismatch(InvalidInput):
    code = "upload_mismatch"


@dataclass
class UploadTarget:
    method: str  # POST (a form: `fields`, then the file as `file`) or PUT (the bytes as the body)
    url: str
    fields: dict
    headers: dict
    expires_at: datetime


@dataclass
class CreatedUpload:
    stored: StoredFile
    target: UploadTarget


def _signature(upload_id: str, expires: int) -> str:
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), _UPLOAD_CONTEXT, hashlib.sha256).digest()
    return hmac.new(key, f"{upload_id}|{expires}".encode(), hashlib.sha256).hexdigest()


def create_upload(tenant: Tenant, caller: str, *, filename: str, content_type: str, size: int,
                  base_url: str) -> CreatedUpload:
    """Record the upload and say where to send it. `base_url`: where clients reach us (our own route)."""
    content_type = content_type.strip().lower()
    if content_type not in MAGIC:
        raise InvalidInput(f"content_type must be one of {', '.join(MAGIC)}.", param="content_type")
    cap = current_app.config["UPLOAD_MAX_BYTES"]
    if not 1 <= size <= cap:
        raise InvalidInput(f"size must be from 1 to {cap} bytes (UPLOAD_MAX_BYTES).", param="size")
    if not filename.strip() or "/" in filename or "\\" in filename:
        raise InvalidInput("filename must be a file's name, without folders.", param="filename")
    quota.ensure_room(tenant, size)
    upload_id = uuid.uuid4()
    stored = storage.record_pending(tenant_id=tenant.id, generation_id=None, caller=caller, index=0,
                                    content_type=content_type, original_url=None, variant=VARIANT, key_id=upload_id)
    with atomic():
        stored.size_bytes = size  # declared; the object must have exactly this many bytes to complete
    seconds = current_app.config["UPLOAD_URL_SECONDS"]
    expires_at = utcnow() + timedelta(seconds=seconds)
    form = backends.for_file(stored).upload_form(stored.storage_key, content_type=content_type, max_bytes=size,
                                                 expires_in=seconds)
    if form is not None:
        return CreatedUpload(stored, UploadTarget("POST", form.url, form.fields, {}, expires_at))
    expires = int(time.time()) + seconds
    url = (f"{base_url.rstrip('/')}/files/uploads/{stored.id}?expires={expires}"
           f"&sig={_signature(str(stored.id), expires)}")
    return CreatedUpload(stored, UploadTarget("PUT", url, {}, {"Content-Type": content_type}, expires_at))


def receive(upload_id: str, expires: str, sig: str, body: BinaryIO, content_length: int | None) -> StoredFile:
    """Our own upload route (the local disk): the signature authorizes; the body streams to disk and may
    not be longer than the size declared."""
    try:
        expires_at = int(expires)
    except ValueError:
        expires_at = None
    if expires_at is None or not hmac.compare_digest(sig.encode(), _signature(upload_id, expires_at).encode()):
        raise Forbidden("This upload link is invalid.", code="bad_signature")
    if expires_at < time.time():
        raise Forbidden("This upload link has expired.", code="link_expired")
    stored = db.session.get(StoredFile, uuid.UUID(upload_id))
    if stored is None or stored.variant != VARIANT or stored.status != "PENDING":
        raise NotFound("No such upload waiting for its file.", code="upload_not_found")
    if content_length is None:
        raise InvalidInput("Send the file's Content-Length.", code="length_required")
    if content_length != stored.size_bytes:
        raise UploadMismatch(f"This upload was declared as {stored.size_bytes} bytes; {content_length} were sent.")
    backends.for_file(stored).put(stored.storage_key, body, stored.content_type)
    return stored


def get_upload(tenant_id: uuid.UUID, upload_id) -> StoredFile:
    stored = get_for_tenant(StoredFile, tenant_id, upload_id, what="upload")
    if stored.variant != VARIANT or stored.status not in ("PENDING", "STORED"):
        raise NotFound("No such upload.", code="upload_not_found")
    return stored


def complete(tenant_id: uuid.UUID, upload_id) -> StoredFile:
    """Check the object the client sent (its size, and first bytes that match its content type), then
    meter it. An object that does not match is deleted and the upload refused."""
    stored = get_upload(tenant_id, upload_id)
    if stored.status == "STORED":
        return stored
    backend = backends.for_file(stored)
    size = backend.size(stored.storage_key)
    if size is None:
        raise UploadMismatch("The file has not arrived yet: send it to the upload's target first.",
                             code="upload_missing")
    with backend.open(stored.storage_key) as body:
        head = body.read(16)
    problem = None
    if size != stored.size_bytes:
        problem = f"The file has {size} bytes, but {stored.size_bytes} were declared."
    elif not all(head[offset:offset + len(magic)] == magic for offset, magic in MAGIC[stored.content_type]):
        problem = f"The file is not a {stored.content_type} (its first bytes say otherwise)."
    if problem is not None:
        _drop(stored)
        raise UploadMismatch(problem)
    files, tenants = StoredFile.__table__, Tenant.__table__
    with atomic():
        claimed = db.session.execute(sa.update(files).where(files.c.id == stored.id, files.c.status == "PENDING")
                                     .values(status="STORED")).rowcount
        if claimed:
            db.session.execute(sa.update(tenants).where(tenants.c.id == tenant_id)
                               .values(storage_used_bytes=tenants.c.storage_used_bytes + size))
    db.session.refresh(stored)
    return stored


def _drop(stored: StoredFile) -> bool:
    try:
        backends.for_file(stored).delete(stored.storage_key)
    except (OSError, UnsafeKey, LookupError, StorageFailed) as error:
        log.warning("could not delete upload %s (%s); the expiry job will try again", stored.id, error)
        return False
    with atomic():
        db.session.delete(stored)
    return True


def expire_uploads(now: datetime | None = None) -> int:
    """The `uploads.expire` job: uploads never completed within a day are deleted, object and row."""
    cutoff = (now or utcnow()) - EXPIRY
    ids = db.session.scalars(sa.select(StoredFile.id).where(StoredFile.variant == VARIANT,
                                                            StoredFile.status == "PENDING",
                                                            StoredFile.created_at < cutoff)).all()
    expired = 0
    for upload_id in ids:
        stored = db.session.get(StoredFile, upload_id)
        if stored is not None and stored.status == "PENDING" and _drop(stored):
            expired += 1
    return expired


def content_path(stored: StoredFile) -> str:
    """The upload's stable URL path: what generation requests name."""
    return f"/api/v1/uploads/{stored.id}/content"


def resolve_references(tenant_id: uuid.UUID, params: dict, own_bases: tuple[str, ...],
                       fields: tuple[str, ...] = ("reference_images", "image", "images")) -> dict:
    """Our own upload URLs in a generation request, resolved by tenant (another tenant's is 404, as a
    missing one) into URLs the gateway can fetch: presigned in the bucket, or signed on our server."""
    origins = {(urlsplit(base).scheme, urlsplit(base).netloc) for base in own_bases}

    def resolved(value):
        if not isinstance(value, str):
            return value
        split = urlsplit(value)
        found = _CONTENT_PATH.match(split.path)
        if found is None or (split.scheme, split.netloc) not in origins:
            return value
        stored = get_upload(tenant_id, found.group(1))
        if stored.status != "STORED":
            raise InvalidInput("This upload is not complete: POST /api/v1/uploads/{id}/complete first.",
                               code="upload_not_completed")
        presigned = backends.for_file(stored).url(stored.storage_key, content_type=stored.content_type,
                                                  expires_in=REFERENCE_URL_SECONDS)
        return presigned or signing.signed_url(stored, expires_in=REFERENCE_URL_SECONDS,
                                               external_base=current_app.config["PUBLIC_BASE_URL"])

    changed = dict(params)
    for name in fields:
        value = changed.get(name)
        if isinstance(value, list):
            changed[name] = [resolved(item) for item in value]
        elif value is not None:
            changed[name] = resolved(value)
    return changed
