"""Tenants' own buckets (oss_mode CUSTOM): the TenantStorageConfig, its verification, and the switch
between the platform's storage and the tenant's.

An unverified config is never used: switching to CUSTOM needs a verified one, and changing the
endpoint, bucket or keys unverifies it (a CUSTOM tenant's generations then fail with 502 until it is
verified again; they never fall back to the platform's bucket). Switching never strands files: each
StoredFile names its backend and bucket and is read where it was written, so a bucket that still holds
files cannot be swapped for another or removed."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from app.core import cache
from app.core.crypto import decrypt, encrypt
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import OSS_MODES, Tenant
from app.storage import backends
from app.storage.backends import BucketConfig, StorageFailed
from app.storage.models import STORAGE_PROVIDERS, StoredFile, TenantStorageConfig
from config import strict_origin

KEY_ID_CONTEXT = "tenant_storage.access_key_id"
SECRET_CONTEXT = "tenant_storage.secret"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^([A-Za-z0-9_-][A-Za-z0-9._-]*/){0,8}$")
_REGION = re.compile(r"^[a-z0-9-]{0,64}$")


class BucketVerificationFailed(InvalidInput):
    code = "bucket_verification_failed"


@dataclass(frozen=True)
class BucketSettings:
    provider: str
    bucket: str
    access_key_id: str | None  # None: keep the saved one
    secret: str | None
    endpoint: str = ""
    region: str = ""
    custom_domain: str | None = None
    path_prefix: str = ""


def _config(tenant_id: uuid.UUID) -> TenantStorageConfig | None:
    return db.session.scalar(sa.select(TenantStorageConfig).where(TenantStorageConfig.tenant_id == tenant_id))


def find_config(tenant_id: uuid.UUID) -> TenantStorageConfig | None:
    return _config(tenant_id)


def get_config(tenant_id: uuid.UUID) -> TenantStorageConfig:
    config = _config(tenant_id)
    if config is None:
        raise NotFound("This tenant has no bucket of its own configured.", code="bucket_not_configured")
    return config


def _bucket_config(row: TenantStorageConfig) -> BucketConfig:
    return BucketConfig(row.provider, row.endpoint, row.region, row.bucket,
                        decrypt(row.access_key_id_encrypted, context=KEY_ID_CONTEXT),
                        decrypt(row.secret_encrypted, context=SECRET_CONTEXT), row.custom_domain or "")


def usable_config(tenant_id: uuid.UUID) -> BucketConfig | None:
    """The tenant's bucket for new objects: only once verified."""
    row = _config(tenant_id)
    return _bucket_config(row) if row is not None and row.is_verified else None


def config_for(tenant_id: uuid.UUID, provider: str, bucket: str) -> BucketConfig | None:
    """The tenant's credentials for objects it wrote to `bucket` (verified or not: they are its files)."""
    row = _config(tenant_id)
    if row is None or row.provider != provider or row.bucket != bucket:
        return None
    return _bucket_config(row)


def prefix_of(tenant_id: uuid.UUID) -> str:
    row = _config(tenant_id)
    return row.path_prefix if row is not None else ""


def _checked(settings: BucketSettings) -> BucketSettings:
    if settings.provider not in STORAGE_PROVIDERS:
        raise InvalidInput(f"provider must be one of {', '.join(STORAGE_PROVIDERS)}.", param="provider")
    if not _BUCKET.match(settings.bucket) or ".." in settings.bucket:
        raise InvalidInput("bucket must be a bucket name: 3-63 lower-case letters, digits, dots and hyphens.",
                           param="bucket")
    if not _REGION.match(settings.region):
        raise InvalidInput("region must be a region name such as us-east-1, oss-cn-beijing or auto.",
                           param="region")
    if settings.provider == "oss" and not settings.endpoint:
        raise InvalidInput("endpoint is required for OSS, e.g. https://oss-cn-beijing.aliyuncs.com.",
                           param="endpoint")
    if settings.provider == "s3" and not (settings.endpoint or settings.region):
        raise InvalidInput("Give the endpoint (R2, MinIO) or the region (AWS S3).", param="endpoint")
    for name in ("endpoint", "custom_domain"):
        value = getattr(settings, name)
        if value and strict_origin(value) is None:
            raise InvalidInput(f"{name} must be an http(s):// origin (scheme and host, no path).", param=name)
        if value:
            try:
                backends.guard_endpoint(value)
            except StorageFailed as refused:
                raise InvalidInput(refused.message, code=refused.code, param=name) from None
    if not _PREFIX.match(settings.path_prefix):
        raise InvalidInput("path_prefix must be empty or folder names each ending in /, such as waule/.",
                           param="path_prefix")
    for name in ("access_key_id", "secret"):
        value = getattr(settings, name)
        if value is not None and not (value.strip() and len(value) <= 256 and value.isprintable()):
            raise InvalidInput(f"{name} must be 1-256 printable characters.", param=name)
    return settings


def _files_in(tenant_id: uuid.UUID, provider: str, bucket: str) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile).where(
        StoredFile.tenant_id == tenant_id, StoredFile.backend == provider, StoredFile.bucket == bucket,
        StoredFile.status.in_(("PENDING", "STORED", "DELETING"))))


def save_config(tenant_id: uuid.UUID, actor: Actor, settings: BucketSettings) -> TenantStorageConfig:
    """Create or replace the tenant's bucket. A change of where or how it is reached unverifies it; a
    bucket that still holds this tenant's files keeps its place (they are read there)."""
    settings = _checked(settings)
    with atomic():
        row = _config(tenant_id)
        if row is None:
            if settings.access_key_id is None or settings.secret is None:
                raise InvalidInput("access_key_id and secret are required.", param="access_key_id")
            row = TenantStorageConfig(tenant_id=tenant_id, is_verified=False)
            db.session.add(row)
        elif (row.provider, row.bucket) != (settings.provider, settings.bucket) and \
                _files_in(tenant_id, row.provider, row.bucket):
            raise Conflict(f"Bucket {row.bucket} still holds this tenant's files, which are read where they were "
                           "written; delete them before moving to another bucket.", code="bucket_in_use")
        reached = (settings.provider, settings.endpoint, settings.region, settings.bucket)
        changed = row.id is None or reached != (row.provider, row.endpoint, row.region, row.bucket) or \
            settings.access_key_id is not None or settings.secret is not None
        row.provider, row.endpoint, row.region, row.bucket = reached
        row.custom_domain = settings.custom_domain or None
        row.path_prefix = settings.path_prefix
        if settings.access_key_id is not None:
            row.access_key_id_encrypted = encrypt(settings.access_key_id, context=KEY_ID_CONTEXT)
            row.access_key_id_last4 = settings.access_key_id[-4:]
        if settings.secret is not None:
            row.secret_encrypted = encrypt(settings.secret, context=SECRET_CONTEXT)
        if changed:
            row.is_verified, row.last_error = False, None
        audit.record(actor, "tenant.storage_bucket_saved", target_type="tenant", target_id=tenant_id,
                     tenant_id=tenant_id, changes={"provider": row.provider, "bucket": row.bucket,
                                                   "endpoint": row.endpoint, "verified": row.is_verified})
    return row


def delete_config(tenant_id: uuid.UUID, actor: Actor) -> None:
    with atomic():
        row = get_config(tenant_id)
        tenant = db.session.get(Tenant, tenant_id)
        if tenant.oss_mode == "CUSTOM":
            raise Conflict("The tenant stores its results in this bucket; switch it to the platform's storage "
                           "first.", code="bucket_in_use")
        if _files_in(tenant_id, row.provider, row.bucket):
            raise Conflict(f"Bucket {row.bucket} still holds this tenant's files, which are read where they were "
                           "written; delete them first.", code="bucket_in_use")
        db.session.delete(row)
        audit.record(actor, "tenant.storage_bucket_deleted", target_type="tenant", target_id=tenant_id,
                     tenant_id=tenant_id, changes={"bucket": row.bucket})


def verify(tenant_id: uuid.UUID, actor: Actor) -> TenantStorageConfig:
    """Write, read, list and delete a probe object; record the outcome. A failure is recorded (and
    committed) before it is raised, with the reason in words."""
    row = get_config(tenant_id)
    config, prefix = _bucket_config(row), row.path_prefix
    error = None
    try:
        backends.cloud(config).verify(prefix)
    except StorageFailed as failed:
        error = failed.message
    with atomic():
        row = get_config(tenant_id)
        row.is_verified, row.last_error = error is None, error
        if error is None:
            row.last_verified_at = utcnow()
        audit.record(actor, "tenant.storage_bucket_verified", target_type="tenant", target_id=tenant_id,
                     tenant_id=tenant_id, changes={"bucket": row.bucket, "verified": error is None})
    if error is not None:
        raise BucketVerificationFailed(error)
    return row


def set_mode(tenant_id: uuid.UUID, actor: Actor, mode: str) -> Tenant:
    """PLATFORM or CUSTOM for new objects; files already stored stay where they are."""
    if mode not in OSS_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(OSS_MODES)}.", param="mode")
    with atomic():
        tenant = db.session.get(Tenant, tenant_id)
        if mode == "CUSTOM":
            row = _config(tenant_id)
            if row is None or not row.is_verified:
                raise Conflict("Verify the tenant's bucket before storing results in it.",
                               code="bucket_not_verified")
        if tenant.oss_mode != mode:
            audit.record(actor, "tenant.storage_mode_changed", target_type="tenant", target_id=tenant_id,
                         tenant_id=tenant_id, changes={"from": tenant.oss_mode, "to": mode})
            tenant.oss_mode = mode
            cache.changed("storage_modes")  # where the tenant's next objects go
    return tenant
