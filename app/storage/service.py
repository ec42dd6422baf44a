"""Objects in a tenant's storage, and the meter of their bytes.

Nothing stored is ever unaccounted for. An object is recorded first (a PENDING StoredFile row,
committed), then written, then confirmed in the transaction that settles its generation, which also
adds its size to the tenant's storage_used_bytes in SQL. A generation that fails discards its pending
objects; a process killed between the write and the settle leaves a PENDING row, and the sweep
deletes its object once its generation is over.

Objects are keyed `tenants/{tenant}/{member id | api}/{yyyy}/{mm}/{generation}-{index}.{ext}`.
"""
from __future__ import annotations

import functools
import logging
import mimetypes
import re
import shutil
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from flask import current_app

from app.core import cache
from app.core.db import utcnow
from app.core.transaction import atomic
from app.extensions import db
from app.generation.models import FINAL_STATUSES, Generation
from app.identity.models import Tenant
from app.storage import backends, buckets
from app.storage.backends import StorageFailed, UnsafeKey
from app.storage.models import StoredFile

log = logging.getLogger(__name__)

_CALLER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "image/avif": "avif",
    "audio/mpeg": "mp3", "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/ogg": "ogg",
    "audio/opus": "opus", "audio/flac": "flac", "audio/aac": "aac", "audio/mp4": "m4a", "audio/pcm": "pcm",
    "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
    "application/octet-stream": "bin",
}
ORIGINAL_URL_MAX = 2000  # StoredFile.original_url; it is kept for reference only
# A PENDING row this old is swept even if its generation looks alive: no generation runs for a day.
PENDING_BACKSTOP = timedelta(days=1)


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


def record_pending(*, tenant_id, generation_id, caller: str, index: int, content_type: str,
                   original_url: str | None, variant: str = "result", key_id: uuid.UUID | None = None) -> StoredFile:
    """Record an object about to be written, and commit the record (with whatever else the session
    holds), so that a crash during the write leaves a row the sweep can find."""
    stored = pending_row(tenant_id=tenant_id, generation_id=generation_id, caller=caller, index=index,
                         content_type=content_type, original_url=original_url, variant=variant, key_id=key_id)
    db.session.add(stored)
    db.session.commit()
    return stored


def pending_row(*, tenant_id, generation_id, caller: str, index: int, content_type: str,
                original_url: str | None, variant: str = "result", key_id: uuid.UUID | None = None) -> StoredFile:
    """The PENDING row of an object about to be written, not yet added to the session (record_pending
    commits it; a paid generation on PostgreSQL inserts it on an autocommitted connection). It goes where
    the tenant's new objects go today (its own bucket in CUSTOM mode, under its path prefix), and says so."""
    backend, prefix = _target(tenant_id)
    stored = StoredFile(id=uuid.uuid4(), tenant_id=tenant_id, generation_id=generation_id, backend=backend.name,
                        bucket=backend.bucket,
                        storage_key=prefix + object_key(tenant_id, caller, key_id or generation_id, index, content_type,
                                                        utcnow()),
                        status="PENDING", position=index, variant=variant, content_type=content_type, size_bytes=0,
                        original_url=original_url[:ORIGINAL_URL_MAX] if original_url else None)
    return stored


def _target(tenant_id) -> tuple[backends.Backend, str]:
    # The mode is cached (buckets.set_mode announces a switch) and read without flushing the session: a
    # generation being stored must not be written here, half-finished, in a transaction of its own.
    with db.session.no_autoflush:
        mode = cache.cached("storage_modes", tenant_id, functools.partial(_read_mode, tenant_id))
        backend = backends.for_tenant(tenant_id, mode)
    return backend, (buckets.prefix_of(tenant_id) if mode == "CUSTOM" else "")


def _read_mode(tenant_id) -> str | None:
    return db.session.scalar(sa.select(Tenant.oss_mode).where(Tenant.id == tenant_id))


def write(stored: StoredFile, source: bytes | Path) -> None:
    """Write the bytes of a recorded object (in memory, or a file spooled to disk, which is streamed up);
    its size is saved when the object is confirmed."""
    stored.size_bytes = backends.for_file(stored).put(stored.storage_key, source, stored.content_type)


_CONFIRM = (sa.update(StoredFile.__table__)
            .where(StoredFile.__table__.c.generation_id == sa.bindparam("generation"),
                   StoredFile.__table__.c.status == "PENDING")
            .values(status="STORED").returning(StoredFile.__table__.c.size_bytes))


def confirm(tenant_id: uuid.UUID, generation_id: uuid.UUID) -> int:
    """In the caller's (settling) transaction: the generation's pending objects become STORED and
    their bytes are added to the tenant's meter, in SQL. Returns the bytes metered."""
    db.session.flush()  # the sizes `write` set
    total = sum(db.session.execute(_CONFIRM, {"generation": generation_id}).scalars())
    if total:
        db.session.execute(sa.update(Tenant.__table__).where(Tenant.__table__.c.id == tenant_id)
                           .values(storage_used_bytes=Tenant.__table__.c.storage_used_bytes + total))
    return total


def discard_pending(generation_id: uuid.UUID) -> int:
    """Delete a generation's unconfirmed objects and their rows (the caller commits). A delete that
    fails leaves the row for the sweep."""
    rows = db.session.scalars(sa.select(StoredFile).where(StoredFile.generation_id == generation_id,
                                                          StoredFile.status == "PENDING")).all()
    return sum(_discard(row) for row in rows)


def _discard(row: StoredFile) -> bool:
    try:
        backends.for_file(row).delete(row.storage_key)
    except (OSError, UnsafeKey, LookupError, StorageFailed) as error:
        log.warning("could not delete unconfirmed object %s (%s); the sweep will try again", row.id, error)
        return False
    db.session.delete(row)
    return True


def sweep_unconfirmed(now: datetime | None = None) -> int:
    """Delete the objects of PENDING rows that will never confirm: their generation is over (or
    gone), or the row is older than any generation runs. Each in its own transaction. Uploads waiting
    for their client are not these: uploads.expire_uploads deletes them after a day."""
    now = now or utcnow()
    over = sa.or_(StoredFile.generation_id.is_(None), Generation.id.is_(None),
                  Generation.status.in_(FINAL_STATUSES), StoredFile.created_at < now - PENDING_BACKSTOP)
    ids = db.session.scalars(
        sa.select(StoredFile.id).outerjoin(Generation, Generation.id == StoredFile.generation_id)
        .where(StoredFile.status == "PENDING", StoredFile.variant != "upload", over)).all()
    swept = 0
    for file_id in ids:
        row = db.session.get(StoredFile, file_id)
        if row is not None and row.status == "PENDING" and _discard(row):
            swept += 1
        db.session.commit()
    return swept


def store_upload(*, tenant_id, caller: str, data: bytes, content_type: str) -> StoredFile:
    """A file a client sent with a request (a video's reference image): written, recorded and metered at
    once, as a `reference` object, linked to its generation once that exists."""
    upload_id = uuid.uuid4()
    stored = record_pending(tenant_id=tenant_id, generation_id=None, caller=caller, index=0, content_type=content_type,
                            original_url=None, variant="reference", key_id=upload_id)
    write(stored, data)
    with atomic():
        stored.status = "STORED"
        tenants = Tenant.__table__
        db.session.execute(sa.update(tenants).where(tenants.c.id == tenant_id)
                           .values(storage_used_bytes=tenants.c.storage_used_bytes + len(data)))
    return stored


_UNMETER = (sa.update(StoredFile.__table__)
            .where(StoredFile.__table__.c.generation_id == sa.bindparam("generation"),
                   StoredFile.__table__.c.status == "STORED")
            .values(status="DELETING", deleted_at=sa.bindparam("now"))
            .returning(StoredFile.__table__.c.size_bytes))


def delete_objects(tenant_id: uuid.UUID, generation_id: uuid.UUID) -> int:
    """In the caller's transaction: a generation's stored objects are no longer served or metered (their
    bytes go back to the tenant's meter) and are marked for removal; `remove_deleting` removes them after
    the commit, and the sweep retries what it could not. Returns the bytes given back."""
    total = sum(db.session.execute(_UNMETER, {"generation": generation_id, "now": utcnow()}).scalars())
    if total:
        tenants = Tenant.__table__
        db.session.execute(sa.update(tenants).where(tenants.c.id == tenant_id)
                           .values(storage_used_bytes=tenants.c.storage_used_bytes - total))
    return total


def remove_deleting(generation_id: uuid.UUID | None = None) -> int:
    """Remove the objects marked DELETING (one generation's, or every one), each row DELETED once its
    object is gone; a failed removal stays DELETING for the next sweep, never forgotten."""
    query = sa.select(StoredFile.id).where(StoredFile.status == "DELETING")
    if generation_id is not None:
        query = query.where(StoredFile.generation_id == generation_id)
    removed = 0
    for file_id in db.session.scalars(query).all():
        row = db.session.get(StoredFile, file_id)
        try:
            backends.for_file(row).delete(row.storage_key)
        except (OSError, UnsafeKey, LookupError, StorageFailed) as error:
            log.warning("could not remove deleted object %s (%s); the sweep will try again", row.id, error)
            db.session.rollback()
            continue
        row.status = "DELETED"
        db.session.commit()
        removed += 1
    return removed


def sweep(now: datetime | None = None) -> int:
    """The periodic storage sweep: objects never confirmed, and deleted objects not yet removed (and,
    not counted, what a killed process left in STORAGE_TEMP_DIR)."""
    sweep_temp_files(now)
    return sweep_unconfirmed(now) + remove_deleting()


def sweep_temp_files(now: datetime | None = None) -> int:
    """Spooled downloads and oss2 upload checkpoints older than any copy runs: a process killed mid-copy
    never removed them. Returns how many were removed."""
    cutoff = ((now or utcnow()) - PENDING_BACKSTOP).timestamp()
    root, removed = backends.temp_dir(), 0
    for path in [*root.glob("results-*"), *root.glob("oss-checkpoints/**/*")]:
        try:
            if path.lstat().st_mtime >= cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                if path.name.startswith("results-"):
                    shutil.rmtree(path)
                    removed += 1
            else:
                path.unlink()
                removed += 1
        except OSError as error:
            log.warning("could not remove the stale temporary file %s (%s)", path, error)
    return removed


def open_file(stored: StoredFile) -> BinaryIO:
    return backends.for_file(stored).open(stored.storage_key)


def presigned_url(stored: StoredFile) -> str | None:
    """A short-lived URL of the object in its bucket (STORAGE_URL_SECONDS), made when a client asks for it;
    None for the local disk, whose objects we serve ourselves."""
    return backends.for_file(stored).url(stored.storage_key, content_type=stored.content_type,
                                         expires_in=current_app.config["STORAGE_URL_SECONDS"])


def read(stored: StoredFile) -> bytes:
    with open_file(stored) as file:
        return file.read()


def files_of(generation_ids, *, variant: str = "result") -> dict[uuid.UUID, list[StoredFile]]:
    """The stored (confirmed, not deleted) objects of each generation, in result order: one query."""
    ids = list(generation_ids)
    found: dict[uuid.UUID, list[StoredFile]] = defaultdict(list)
    if not ids:
        return found
    for row in db.session.scalars(
            sa.select(StoredFile).where(StoredFile.generation_id.in_(ids), StoredFile.status == "STORED",
                                        StoredFile.variant == variant, StoredFile.deleted_at.is_(None))
            .order_by(StoredFile.generation_id, StoredFile.position)):
        found[row.generation_id].append(row)
    return found
