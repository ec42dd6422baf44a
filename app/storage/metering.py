"""The meter of each tenant's storage, and what is read from it.

Bytes stored: `storage_used_bytes`, changed only with the StoredFile rows it counts (app/storage/service.py);
`verify` recomputes it from the rows and, deep, from the backend's own listing. Bytes downloaded: counted
where a download passes through us, as its bytes are actually sent (a Range request counts its range, a
client that hangs up counts what it got), buffered per process and added to the tenant's
`storage_download_unbilled_bytes`, which the daily bill takes. A download handed to a backend's presigned
URL (a redirect) counts the object's size: call `count_download` there.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

import sqlalchemy as sa
from flask import Flask

from app.core.counters import BufferedCounter
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.extensions import db
from app.generation.models import Generation
from app.identity.models import Tenant, TenantUser
from app.storage import backends
from app.storage.models import StoredFile, TenantStorageUsage

_downloads = BufferedCounter(Tenant.__table__)


def count_download(tenant_id: uuid.UUID, size_bytes: int) -> None:
    if size_bytes > 0:
        _downloads.add(tenant_id, {"storage_download_unbilled_bytes": int(size_bytes)})


def flush_downloads(force: bool = False) -> int:
    """Write this process's counted downloads (every KEY_USAGE_FLUSH_SECONDS, or now with `force`)."""
    return _downloads.flush(force)


class CountedBody:
    """A response body that, once it ends (sent whole, cut short by the client, or never started, as for
    HEAD), adds the bytes the server took from it to the tenant's download meter."""

    def __init__(self, body: Iterable[bytes], tenant_id: uuid.UUID, app: Flask):
        self._body, self._tenant_id, self._app = body, tenant_id, app
        self._sent, self._counted = 0, False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body:
                self._sent += len(chunk)
                yield chunk
        finally:
            self._count()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._count()

    def _count(self) -> None:
        if self._counted:
            return
        self._counted = True
        if self._sent:
            count_download(self._tenant_id, self._sent)
            with self._app.app_context():  # the body is sent after the request's context has ended
                flush_downloads()


def verify(*, deep: bool = False) -> list[str]:
    """Each tenant's meter against the bytes of its stored objects; with `deep`, the objects themselves
    against each backend's listing. One line per drift (empty when everything agrees)."""
    rows = (sa.select(StoredFile.tenant_id, sa.func.sum(StoredFile.size_bytes).label("total"),
                      sa.func.count().label("files"))
            .where(StoredFile.status == "STORED", StoredFile.deleted_at.is_(None))
            .group_by(StoredFile.tenant_id).subquery())
    problems = []
    for tenant_id, name, meter, total, files in db.session.execute(
            sa.select(Tenant.id, Tenant.name, Tenant.storage_used_bytes, sa.func.coalesce(rows.c.total, 0),
                      sa.func.coalesce(rows.c.files, 0))
            .outerjoin(rows, rows.c.tenant_id == Tenant.id).order_by(Tenant.name, Tenant.id)):
        if meter != total:
            problems.append(f"tenant {tenant_id} ({name}): meter {meter} bytes != {total} bytes in {files} stored "
                            f"object(s) (drift {meter - total:+})")
    if deep:
        problems += _verify_objects()
    return problems


PREFIX = "tenants/"


def _verify_objects() -> list[str]:
    """Every stored object in our storage (the local disk, the platform bucket: a tenant's own bucket is
    the tenant's) at its recorded size, and nothing under tenants/ that no row accounts for (a pending
    object is being written; a deleting one is waiting for the sweep)."""
    places = backends.platform_places()
    records: dict[tuple[str, str, str], tuple[uuid.UUID, str, int]] = {
        (backend, bucket, key): (tenant_id, status, size)
        for backend, bucket, key, tenant_id, status, size in db.session.execute(
            sa.select(StoredFile.backend, StoredFile.bucket, StoredFile.storage_key, StoredFile.tenant_id,
                      StoredFile.status, StoredFile.size_bytes).where(StoredFile.status != "DELETED"))
        if (backend, bucket) in places}
    listed: dict[tuple[str, str, str], int] = {}
    readable, problems = set(), []
    for backend, bucket in places:
        try:
            listed |= {(backend, bucket, key): size
                       for key, size in backends.named(backend, bucket).list(PREFIX)}
            readable.add((backend, bucket))
        except (LookupError, OSError, backends.StorageFailed) as error:
            problems.append(f"backend {backend} {bucket}: cannot list its objects ({error})".replace("  ", " "))
    missing, resized, unknown = defaultdict(list), defaultdict(list), defaultdict(list)
    for place, (tenant_id, status, size) in records.items():
        if status != "STORED" or place[:2] not in readable:
            continue
        if place not in listed:
            missing[tenant_id].append(place[2])
        elif listed[place] != size:
            resized[tenant_id].append(place[2])
    for place in listed.keys() - records.keys():
        unknown[_tenant_of(place[2])].append(place[2])
    for label, found in (("stored object(s) missing from their backend", missing),
                         ("object(s) whose size differs from their record", resized),
                         ("object(s) in the backend that no live record accounts for", unknown)):
        for tenant, keys in sorted(found.items(), key=lambda item: str(item[0])):
            problems.append(f"tenant {tenant}: {len(keys)} {label}, e.g. {sorted(keys)[0]}")
    return problems


def _tenant_of(key: str) -> str:
    parts = key.split("/")
    return parts[1] if len(parts) > 2 else "?"


def _range(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    date_to = date_to or utcnow().date()
    if date_from is None:
        date_from = date_to - timedelta(days=29) if date_to > date.min + timedelta(days=29) else date.min
    if date_from > date_to:
        raise InvalidInput("from must not be after to.", param="from")
    if (date_to - date_from).days > 366:
        raise InvalidInput("A range of at most 366 days.", param="from")
    return date_from, date_to


def usage_by_day(tenant_id: uuid.UUID, *, date_from: date | None = None, date_to: date | None = None) -> dict:
    """Every day of the range (days not billed, today among them, as zeros, so a chart has no gaps)."""
    date_from, date_to = _range(date_from, date_to)
    rows = {row.day: row for row in db.session.scalars(
        sa.select(TenantStorageUsage).where(TenantStorageUsage.tenant_id == tenant_id,
                                            TenantStorageUsage.day >= date_from, TenantStorageUsage.day <= date_to))}
    days = []
    for offset in range((date_to - date_from).days + 1):
        day = date_from + timedelta(days=offset)
        row = rows.get(day)
        days.append({"date": day, "billed": row is not None,
                     **{name: getattr(row, name) if row is not None else 0 for name in DAY_FIELDS}})
    return {"from": date_from, "to": date_to, "days": days}


DAY_FIELDS = ("storage_bytes", "upload_bytes", "download_bytes", "file_count", "storage_credits", "traffic_credits")


def stored_by(tenant_id: uuid.UUID) -> dict:
    """What the tenant stores now, by member (None: made with an API key) and by kind of generation
    (`upload` for a reference not linked to a generation), largest first."""
    members: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    stored = sa.and_(StoredFile.tenant_id == tenant_id, StoredFile.status == "STORED",
                     StoredFile.deleted_at.is_(None))
    for user_id, kind, size, count in db.session.execute(
            sa.select(Generation.user_id, Generation.kind, sa.func.sum(StoredFile.size_bytes), sa.func.count())
            .join(Generation, Generation.id == StoredFile.generation_id).where(stored)
            .group_by(Generation.user_id, Generation.kind)):
        _add(members[str(user_id) if user_id else None], size, count)
        _add(kinds[kind], size, count)
    for key, size in db.session.execute(sa.select(StoredFile.storage_key, StoredFile.size_bytes)
                                        .where(stored, StoredFile.generation_id.is_(None))):
        caller = key.split("/")[2] if key.count("/") >= 3 else "api"  # tenants/{tenant}/{member id | api}/…
        _add(members[None if caller == "api" else caller], size, 1)
        _add(kinds["upload"], size, 1)
    ids = [uuid.UUID(member) for member in members if member]
    names = {str(user.id): user.username
             for user in db.session.scalars(sa.select(TenantUser).where(TenantUser.tenant_id == tenant_id,
                                                                         TenantUser.id.in_(ids)))} if ids else {}
    by_member = [{"member_id": member, "username": names.get(member) if member else None, "bytes": size,
                  "files": count} for member, (size, count) in members.items()]
    by_kind = [{"kind": kind, "bytes": size, "files": count} for kind, (size, count) in kinds.items()]
    return {"by_member": sorted(by_member, key=_largest), "by_kind": sorted(by_kind, key=_largest),
            "files": sum(count for _size, count in kinds.values())}


def _largest(item: dict) -> tuple:
    return -item["bytes"], str(item.get("member_id") or item.get("kind") or "")


def _add(totals: list[int], size, count) -> None:
    totals[0] += int(size or 0)
    totals[1] += int(count or 0)


def top_tenants(limit: int = 10) -> list[Tenant]:
    """The tenants storing the most, for the Storage page."""
    return list(db.session.scalars(sa.select(Tenant).where(Tenant.storage_used_bytes > 0)
                                   .order_by(Tenant.storage_used_bytes.desc(), Tenant.name).limit(limit)))


def platform_totals() -> dict:
    row = db.session.execute(sa.select(
        sa.func.coalesce(sa.func.sum(Tenant.storage_used_bytes), 0),
        sa.func.count().filter(Tenant.storage_used_bytes > 0),
        sa.func.coalesce(sa.func.sum(Tenant.storage_fees_owed), 0),
        sa.func.count().filter(Tenant.storage_fees_owed > 0))).one()
    return {"bytes": int(row[0]), "tenants_storing": row[1], "fees_owed": int(row[2]), "tenants_owing": row[3]}
