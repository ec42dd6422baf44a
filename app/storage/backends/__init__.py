"""Storage backends: where the bytes of an object live. The local disk is the embedded default; Aliyun
OSS (oss2) and any S3-compatible service (boto3: AWS S3, Cloudflare R2, MinIO) are the cloud ones, each
either the platform's bucket (STORAGE_BACKEND and its settings) or a tenant's own (TenantStorageConfig).

Each StoredFile names its backend and bucket, so an object is always read, signed and deleted where it was
written, whatever new objects use today. A cloud backend's endpoint passes the SSRF guard before every
use (only FETCH_ALLOWLIST opens a private address), and its failures leave it as StorageFailed with a
clear reason, never the provider's raw answer."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app

from app.core.errors import DomainError
from app.storage.backends.local import LocalStorage, UnsafeKey, check_key

__all__ = ["Backend", "BucketConfig", "LocalStorage", "StorageFailed", "UnsafeKey", "UploadForm", "check_key",
           "for_file", "for_tenant", "named", "platform"]

Source = bytes | Path  # what is written: bytes in memory, or a file spooled to disk (streamed from it)


class StorageFailed(DomainError):
    """The bucket refused or could not be reached: its reason in our words."""

    status = 502
    type = "api_error"
    code = "storage_failed"


@dataclass(frozen=True)
class BucketConfig:
    """A cloud bucket and the credentials to reach it. `public_endpoint`: where clients reach the bucket,
    when not at `endpoint` (an OSS custom domain bound to it, or an S3 endpoint behind a proxy)."""

    provider: str  # oss | s3
    endpoint: str
    region: str
    bucket: str
    access_key_id: str
    secret: str
    public_endpoint: str = ""

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"BucketConfig({self.provider}, {self.endpoint or self.region}, {self.bucket})"


@dataclass(frozen=True)
class UploadForm:
    """Where a client sends a file itself: a POST of `fields` plus the file (as `file`) to `url`."""

    url: str
    fields: dict


class Backend(Protocol):
    name: str
    bucket: str  # "" on the local disk

    def put(self, key: str, source: Source, content_type: str) -> int: ...

    def open(self, key: str) -> BinaryIO: ...

    def size(self, key: str) -> int | None: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every object whose key starts with `prefix`, as (key, size in bytes): what `flask storage verify
        --deep` compares with the records."""
        ...

    def url(self, key: str, *, content_type: str, expires_in: int) -> str | None: ...

    def upload_form(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm | None: ...

    def verify(self, prefix: str = "") -> None: ...


def content_disposition(key: str) -> str:
    """Set on every object: shown inline, saved under its own name."""
    return f'inline; filename="{key.rsplit("/", 1)[-1]}"'


_clients: dict[BucketConfig, Backend] = {}
_clients_lock = threading.Lock()


def cloud(config: BucketConfig) -> Backend:
    """One client per bucket and credentials, shared by every thread (boto3 and oss2 clients are)."""
    with _clients_lock:
        backend = _clients.get(config)
        if backend is None:
            if config.provider == "s3":
                from app.storage.backends.s3 import S3Storage
                backend = S3Storage(config)
            elif config.provider == "oss":
                from app.storage.backends.oss import OssStorage
                backend = OssStorage(config)
            else:
                raise LookupError(f"unknown storage provider {config.provider!r}")
            _clients[config] = backend
        return backend


def platform_config() -> BucketConfig | None:
    settings, name = current_app.config["STORAGE_BUCKET"], current_app.config["STORAGE_BACKEND"]
    if name == "oss":
        return BucketConfig("oss", settings["OSS_ENDPOINT"], "", settings["OSS_BUCKET"], settings["OSS_ACCESS_KEY_ID"],
                            settings["OSS_ACCESS_KEY_SECRET"], settings.get("OSS_CUSTOM_DOMAIN", ""))
    if name == "s3":
        return BucketConfig("s3", settings.get("S3_ENDPOINT", ""), settings["S3_REGION"], settings["S3_BUCKET"],
                            settings["S3_ACCESS_KEY_ID"], settings["S3_SECRET_ACCESS_KEY"],
                            settings.get("S3_PUBLIC_ENDPOINT", ""))
    return None


def platform_places() -> list[tuple[str, str]]:
    """The (backend, bucket) pairs that are our own storage: the local disk (where objects were written
    before a cloud bucket was configured, or still are) and the platform bucket. A tenant's bucket is not."""
    config = platform_config()
    return [(LocalStorage.name, ""), *([(config.provider, config.bucket)] if config is not None else [])]


def platform() -> Backend:
    """The platform's own storage: where PLATFORM tenants' objects go."""
    config = platform_config()
    return cloud(config) if config is not None else LocalStorage(current_app.config["STORAGE_DIR"])


def for_tenant(tenant_id: uuid.UUID, oss_mode: str) -> Backend:
    """Where a tenant's new objects go: its own bucket in CUSTOM mode (verified, or the write fails: never
    silently the platform's), else the platform's."""
    if oss_mode != "CUSTOM":
        return platform()
    from app.storage import buckets
    config = buckets.usable_config(tenant_id)
    if config is None:
        raise StorageFailed("This tenant stores results in its own bucket, but that bucket is not verified; "
                            "verify it (POST /api/v1/tenant/storage/bucket/verify) or switch back to the "
                            "platform's storage.", code="bucket_not_verified")
    return cloud(config)


def named(name: str, bucket: str = "", tenant_id: uuid.UUID | None = None) -> Backend:
    """The backend an object was written to: the platform's, or its tenant's own bucket."""
    if name == LocalStorage.name:
        return LocalStorage(current_app.config["STORAGE_DIR"])
    if tenant_id is not None:
        from app.storage import buckets
        config = buckets.config_for(tenant_id, name, bucket)
        if config is not None:
            return cloud(config)
    config = platform_config()
    if config is not None and config.provider == name and config.bucket == bucket:
        return cloud(config)
    raise LookupError(f"no credentials for {name} bucket {bucket!r}")


def for_file(stored) -> Backend:
    return named(stored.backend, stored.bucket, stored.tenant_id)


def temp_dir() -> Path:
    """Where results are spooled while copied, and where client libraries keep checkpoints: never $HOME."""
    path = Path(current_app.config["STORAGE_TEMP_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


# What a provider's error codes mean, in words a tenant admin can act on (S3's and OSS's codes agree).
REASONS = {
    "InvalidAccessKeyId": "the access key id is not known to the storage service (wrong key)",
    "InvalidClientTokenId": "the access key id is not known to the storage service (wrong key)",
    "SignatureDoesNotMatch": "the secret does not belong to the access key id (wrong secret)",
    "NoSuchBucket": "the bucket does not exist (check its name, region and endpoint)",
    "AccessDenied": "the access key has no permission to do this on the bucket",
    "AllAccessDisabled": "the access key has no permission to do this on the bucket",
    "RequestTimeTooSkewed": "this server's clock and the storage service's differ too much (clock skew)",
    "AuthorizationHeaderMalformed": "the region does not match the bucket's",
    "PermanentRedirect": "the bucket is in another region or at another endpoint",
    "EntityTooLarge": "the file is larger than allowed",
    "EntityTooSmall": "a part is smaller than the service allows",
    "InvalidBucketName": "the bucket name is not valid",
}


def failure(bucket: str, operation: str, code: str | None, status: int | None = None) -> StorageFailed:
    """A provider's refusal as StorageFailed, with the reason for its code (never its raw message)."""
    reason = REASONS.get(code or "")
    if reason is None:
        reason = f"it answered {code or 'an error'}" + (f" (HTTP {status})" if status else "")
    return StorageFailed(f"The storage bucket {bucket} could not {operation}: {reason}.")


def unreachable(bucket: str, operation: str) -> StorageFailed:
    return StorageFailed(f"The storage bucket {bucket} could not {operation}: its endpoint could not be reached "
                         "(connection failed or timed out).")


def guard_endpoint(url: str) -> None:
    """The SSRF guard, before a bucket's endpoint is used or saved: http(s), and only public addresses
    unless its origin is in FETCH_ALLOWLIST (a gateway's origins, trusted for downloads, are not enough)."""
    from app.gateway.fetch import ResultRefused, check_url, configured_origins
    try:
        check_url(url, configured_origins())
    except ResultRefused as refused:
        reason = str(refused).split(": ", 1)[-1].rstrip(".")
        raise StorageFailed(f"Refused to use the storage endpoint {url}: {reason}. A bucket on a private address "
                            "must have its origin in FETCH_ALLOWLIST.", code="storage_endpoint_refused") from None
