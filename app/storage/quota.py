"""Storage limits checked before anything is held: the tenant's quota (an estimate of what the
generation will store, or an upload's declared size) and storage fees it has not paid.

The quota is a soft limit read from the tenant row — a few generations racing past it by one estimate
is acceptable; the meter itself (storage_used_bytes) stays exact. Fees owed are exact: they are taken
from the next recharge, and until then nothing new is generated."""
from __future__ import annotations

import sqlalchemy as sa

from app.core.errors import DomainError
from app.extensions import db
from app.identity.models import Tenant

MiB = 1024 * 1024
# What one generation of a kind is expected to store, for the quota check before it starts.
ESTIMATED_BYTES = {"image": 4 * MiB, "audio": 2 * MiB, "chat": 0, "video": 64 * MiB, "midjourney": 8 * MiB}


class StorageQuotaExceeded(DomainError):
    status = 413
    code = "storage_quota_exceeded"


class StorageFeesOwed(DomainError):
    status = 402
    type = "insufficient_credits"
    code = "storage_fees_owed"


def estimate(kind: str, params: dict) -> int:
    count = params.get("n") if kind == "image" and isinstance(params.get("n"), int) else 1
    return ESTIMATED_BYTES.get(kind, 0) * max(count, 1)


# Built once: a generation that stores anything under a quota runs it.
_QUOTA_AND_USE = (sa.select(Tenant.storage_quota_bytes, Tenant.storage_used_bytes)
                  .where(Tenant.id == sa.bindparam("tenant_id")))


def ensure_room(tenant, size_bytes: int) -> None:
    """413 when storing `size_bytes` more would pass the tenant's quota. A tenant with its own bucket
    (CUSTOM) has no quota unless one is set; a PLATFORM tenant's quota is None when unlimited.
    `tenant`: a Tenant or its cached access. The usage changes with every stored file, so it is read
    fresh (with the quota) whenever there is a quota to check."""
    if size_bytes <= 0 or tenant.storage_quota_bytes is None:
        return
    quota, used = db.session.execute(_QUOTA_AND_USE, {"tenant_id": tenant.id}).one()
    refuse_beyond(quota, used, size_bytes)


def refuse_beyond(quota: int | None, used: int, size_bytes: int) -> None:
    """413 when `size_bytes` more than `used` would pass `quota` (None: no quota), for a caller that has
    read both already."""
    if quota is not None and size_bytes > 0 and used + size_bytes > quota:
        raise StorageQuotaExceeded(f"Storing this needs about {human_size(size_bytes)}, but the tenant uses "
                                   f"{human_size(used)} of its {human_size(quota)} storage quota. Delete results or "
                                   "ask for a larger quota.")


def ensure_no_fees_owed(tenant) -> None:
    """`tenant`: a Tenant or its cached access (fees owed change only with a bill or a recharge, and
    either flushes the caches)."""
    if tenant.storage_fees_owed > 0:
        raise StorageFeesOwed(f"This tenant owes {tenant.storage_fees_owed} credits of storage fees; they are "
                              "taken from the next recharge, and new generations start once they are paid.")


def ensure_can_start(tenant, kind: str, params: dict, *, is_test: bool) -> None:
    if not is_test:
        ensure_no_fees_owed(tenant)
    ensure_room(tenant, estimate(kind, params))


def human_size(size_bytes: int) -> str:
    """1.5 GiB, 12.0 MiB, 300 bytes: a size as people read it."""
    for unit, scale in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", MiB), ("KiB", 1024)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} bytes"
