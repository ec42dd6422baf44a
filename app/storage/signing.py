"""Signed, expiring URLs for stored objects: /files/<key>?expires=…&sig=…. The signature is the
authorization, so a URL can be handed to a browser or an <img> tag."""
from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app

from app.core.errors import Forbidden, NotFound
from app.extensions import db
from app.storage import backends
from app.storage.models import StoredFile

_SIGNING_CONTEXT = b"waule.files.v1"


def _signature(key: str, expires: int) -> str:
    # A key of its own, derived from SECRET_KEY, so a file signature is never valid as anything else.
    signing_key = hmac.new(current_app.config["SECRET_KEY"].encode(), _SIGNING_CONTEXT, hashlib.sha256).digest()
    return hmac.new(signing_key, f"{key}|{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(stored: StoredFile, *, expires_in: int = 3600, external_base: str | None = None) -> str:
    expires = int(time.time()) + int(expires_in)
    key = stored.storage_key
    path = f"/files/{quote(key)}?expires={expires}&sig={_signature(key, expires)}"
    return f"{external_base.rstrip('/')}{path}" if external_base else path


@dataclass
class SignedFile:
    stored: StoredFile
    file: BinaryIO | None  # None when the object is in a bucket: `redirect` is where to fetch it
    size: int
    expires_in: int  # seconds the URL stays valid: how long a client may cache it
    redirect: str | None = None


def open_signed(key: str, expires: str, sig: str) -> SignedFile:
    """The object a signed URL names. A bad or expired signature is 403 before any lookup, so an
    unsigned request learns nothing about which keys exist. An object in a bucket is not read here: the
    answer names a freshly presigned URL of it instead."""
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
                                                           StoredFile.status == "STORED",
                                                           StoredFile.deleted_at.is_(None)))
    if stored is None:
        raise NotFound("No such file.", code="file_not_found")
    try:
        backend = backends.for_file(stored)
        redirect = backend.url(key, content_type=stored.content_type,
                               expires_in=current_app.config["STORAGE_URL_SECONDS"])
        if redirect is not None:
            return SignedFile(stored, None, stored.size_bytes, remaining, redirect)
        file = backend.open(key)
    except (FileNotFoundError, backends.UnsafeKey, LookupError):
        raise NotFound("No such file.", code="file_not_found") from None
    try:
        size = os.fstat(file.fileno()).st_size
    except (AttributeError, OSError):
        size = stored.size_bytes
    return SignedFile(stored, file, size, remaining)
