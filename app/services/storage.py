"""Where results live: a storage backend, the tenant's metering, and signed, expiring file URLs.

Objects are keyed `tenants/{tenant}/{member id | api}/{yyyy}/{mm}/{generation}-{index}.{ext}`. Every
object written is a StoredFile row, and its size is added to the tenant's storage_used_bytes in the
same transaction, in SQL, so the meter stays exact under concurrent writes. Clients read objects only
through signed URLs (/files/<key>?expires=…&sig=…): the signature is the authorization, so the URL can
be handed to a browser or an <img> tag.
"""
from __future__ import annotations

import hashlib
import hmac
import mimetypes
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app

from app.errors import Forbidden, NotFound
from app.extensions import db
from app.models import StoredFile, Tenant, utcnow

_SIGNING_CONTEXT = b"waule.files.v1"
_CALLER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "image/avif": "avif",
    "audio/mpeg": "mp3", "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/ogg": "ogg",
    "audio/opus": "opus", "audio/flac": "flac", "audio/aac": "aac", "audio/mp4": "m4a", "audio/pcm": "pcm",
    "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
    "application/octet-stream": "bin",
}
ORIGINAL_URL_MAX = 2000  # StoredFile.original_url; it is kept for reference only


class UnsafeKey(ValueError):
    """A storage key that could name something outside the storage area."""


def _check_key(key: str) -> list[str]:
    parts = key.split("/")
    if (not key or key.startswith("/") or "\\" in key or "\x00" in key
            or any(part in ("", ".", "..") or part.startswith(".") for part in parts)):
        raise UnsafeKey(f"unsafe storage key {key!r}")
    return parts


class LocalStorage:
    """Files under STORAGE_DIR: the embedded default. Writes are atomic (temp file, then rename), so a
    reader never sees half an object."""

    name = "local"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*_check_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise UnsafeKey(f"storage key {key!r} resolves outside the storage directory")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(draft, "xb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(draft, path)
        except BaseException:
            draft.unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def backend() -> LocalStorage:
    return LocalStorage(current_app.config["STORAGE_DIR"])


def extension_for(content_type: str) -> str:
    known = _EXTENSIONS.get(content_type.lower())
    if known:
        return known
    guessed = (mimetypes.guess_extension(content_type) or "").lstrip(".")
    return guessed if guessed.isalnum() else "bin"


def object_key(tenant_id, caller: str, generation_id, index: int, content_type: str, now: datetime) -> str:
    """`caller` is the member's id, or "api" for calls made with a key."""
    if not _CALLER.match(str(caller)):
        raise UnsafeKey(f"caller must be a member id or 'api', got {caller!r}")
    tenant_id, generation_id = uuid.UUID(str(tenant_id)), uuid.UUID(str(generation_id))
    return (f"tenants/{tenant_id}/{caller}/{now:%Y}/{now:%m}/"
            f"{generation_id}-{int(index)}.{extension_for(content_type)}")


def store_result(*, tenant_id, generation_id, caller: str, index: int, data: bytes, content_type: str,
                 original_url: str | None) -> StoredFile:
    """Write one result and meter it. Does not commit: the caller's transaction carries the row and
    the meter; if that transaction fails, the caller deletes the object (stored.storage_key)."""
    storage = backend()
    key = object_key(tenant_id, caller, generation_id, index, content_type, utcnow())
    storage.put(key, data, content_type)
    stored = StoredFile(tenant_id=tenant_id, generation_id=generation_id, backend=storage.name, storage_key=key,
                        content_type=content_type, size_bytes=len(data),
                        original_url=original_url[:ORIGINAL_URL_MAX] if original_url else None)
    try:
        db.session.add(stored)
        db.session.execute(sa.update(Tenant).where(Tenant.id == tenant_id)
                           .values(storage_used_bytes=Tenant.storage_used_bytes + len(data)))
        db.session.flush()
    except Exception:
        storage.delete(key)
        raise
    return stored


# --- signed URLs ------------------------------------------------------------------------------------

def _signature(key: str, expires: int) -> str:
    # A key of its own, derived from SECRET_KEY, so a file signature is never valid as anything else.
    signing_key = hmac.new(current_app.config["SECRET_KEY"].encode(), _SIGNING_CONTEXT, hashlib.sha256).digest()
    return hmac.new(signing_key, f"{key}|{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(stored: StoredFile, *, expires_in: int = 3600, external_base: str | None = None) -> str:
    return signed_key_url(stored.storage_key, expires_in=expires_in, external_base=external_base)


def signed_key_url(key: str, *, expires_in: int = 3600, external_base: str | None = None) -> str:
    expires = int(time.time()) + int(expires_in)
    path = f"/files/{quote(key)}?expires={expires}&sig={_signature(key, expires)}"
    return f"{external_base.rstrip('/')}{path}" if external_base else path


def read_object(key: str) -> bytes:
    with backend().open(key) as file:
        return file.read()


@dataclass
class SignedFile:
    stored: StoredFile
    file: BinaryIO
    size: int
    expires_in: int  # seconds the URL stays valid: how long a client may cache it


def open_signed(key: str, expires: str, sig: str) -> SignedFile:
    """The object a signed URL names. A bad or expired signature is 403 before any lookup, so an
    unsigned request learns nothing about which keys exist."""
    try:
        expires_at = int(expires)
    except ValueError:
        expires_at = None
    if expires_at is None or not hmac.compare_digest(sig.encode(), _signature(key, expires_at).encode()):
        raise Forbidden("This file link is invalid.", code="bad_signature")
    remaining = expires_at - int(time.time())
    if remaining <= 0:
        raise Forbidden("This file link has expired.", code="link_expired")
    # No tenant scoping here: the signature, made by us for this exact key, is the authorization.
    stored = db.session.scalar(sa.select(StoredFile).where(StoredFile.storage_key == key,
                                                           StoredFile.deleted_at.is_(None)))
    if stored is None:
        raise NotFound("No such file.", code="file_not_found")
    try:
        file = backend().open(key)
    except (FileNotFoundError, UnsafeKey):
        raise NotFound("No such file.", code="file_not_found") from None
    try:
        size = os.fstat(file.fileno()).st_size
    except (AttributeError, OSError):
        size = stored.size_bytes
    return SignedFile(stored, file, size, remaining)
