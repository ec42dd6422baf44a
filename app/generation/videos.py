"""Videos as their owners see them: OpenAI's request turned into the gateway's, the list in OpenAI's
page shape, and DELETE (removal.remove: cancel a running video, delete a finished one's objects).
Retry of the worker's failed generations (videos and Midjourney tasks) for the platform admin's Jobs
page is here too; its cancel is removal.cancel."""
from __future__ import annotations

import functools
import math
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from app import jobs
from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.core.lookup import get_for_tenant
from app.core.transaction import atomic, on_commit
from app.extensions import db
from app.generation import flow, removal
from app.generation.models import LONG_KINDS, Generation
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.storage.models import StoredFile

# OpenAI's sizes (and any W×H) → the gateway's aspect ratio and resolution.
RATIOS = {(16, 9): "16:9", (9, 16): "9:16", (1, 1): "1:1", (4, 3): "4:3", (3, 4): "3:4", (7, 4): "16:9",
          (4, 7): "9:16"}
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))
MAX_REFERENCE_BYTES = 20 * 1024 * 1024


def size_params(size: str | None) -> dict:
    """'1280x720' → {"aspect_ratio": "16:9", "resolution": "720p", "size": "1280x720"}."""
    if not size:
        return {}
    try:
        width, height = (int(part) for part in size.lower().split("x"))
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError
    except ValueError:
        raise InvalidInput("size must be width x height, such as 1280x720 or 720x1280.", param="size") from None
    divisor = math.gcd(width, height)
    ratio = RATIOS.get((width // divisor, height // divisor), f"{width // divisor}:{height // divisor}")
    short = min(width, height)
    resolution = "720p" if short <= 720 else "768p" if short <= 768 else "1080p" if short <= 1080 else "2160p"
    return {"aspect_ratio": ratio, "resolution": resolution, "size": f"{width}x{height}"}


def seconds_param(seconds) -> dict:
    if seconds in (None, ""):
        return {}
    try:
        value = float(seconds)
        if not 0 < value <= 3600:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidInput("seconds must be a number of seconds, such as \"8\".", param="seconds") from None
    return {"duration": int(value) if value.is_integer() else value}


def reference_image(data: bytes) -> str:
    """The content type of an uploaded reference image, checked by its first bytes."""
    if len(data) > MAX_REFERENCE_BYTES:
        raise InvalidInput(f"input_reference must be at most {MAX_REFERENCE_BYTES // (1024 * 1024)} MiB.",
                           param="input_reference")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type in IMAGE_MAGIC:
        if data.startswith(magic):
            return content_type
    raise InvalidInput("input_reference must be a PNG, JPEG, WebP or GIF image.", param="input_reference")


def link_upload(upload_id: uuid.UUID, generation_id: uuid.UUID) -> None:
    with atomic():
        db.session.execute(sa.update(StoredFile).where(StoredFile.id == upload_id)
                           .values(generation_id=generation_id))


def get_video(tenant_id: uuid.UUID, video_id, *, user_id: uuid.UUID | None = None, kind: str = "video") -> Generation:
    """A member sees only their own; a deleted video is gone."""
    generation = get_for_tenant(Generation, tenant_id, video_id, what=kind)
    if generation.kind != kind or generation.deleted_at is not None or \
            (user_id is not None and generation.user_id != user_id):
        raise NotFound(f"No such {kind}.", code=f"{kind}_not_found")
    return generation


@dataclass
class VideoPage:
    videos: list[Generation]
    has_more: bool


def list_videos(tenant_id: uuid.UUID, *, user_id: uuid.UUID | None = None, after: str | None = None,
                limit: int = 20, order: str = "desc") -> VideoPage:
    """OpenAI's cursor: the id of the last video of the previous page."""
    query = sa.select(Generation).where(Generation.tenant_id == tenant_id, Generation.kind == "video",
                                        Generation.deleted_at.is_(None))
    if user_id is not None:
        query = query.where(Generation.user_id == user_id)
    descending = order == "desc"
    if after:
        anchor = get_video(tenant_id, after, user_id=user_id)
        key, last = (Generation.created_at, Generation.id), (anchor.created_at, anchor.id)
        query = query.where(sa.tuple_(*key) < last if descending else sa.tuple_(*key) > last)
    ordering = (Generation.created_at.desc(), Generation.id.desc()) if descending else \
        (Generation.created_at, Generation.id)
    rows = list(db.session.scalars(query.order_by(*ordering).limit(limit + 1)))
    return VideoPage(rows[:limit], len(rows) > limit)


class NotRetryable(Conflict):
    code = "generation_not_retryable"


def remove(generation: Generation) -> Generation:
    """DELETE a video: cancelled while it runs, else deleted with its files (removal.remove)."""
    return removal.remove(generation)


def retry(generation: Generation, actor: Actor) -> Generation:
    """Run a failed video or Midjourney task again for its tenant, as its caller: a new generation with the
    same request, held and queued through the normal flow (and refused as any request is: not enough
    credits, the model no longer enabled, the storage limits, the cap on long jobs), linked to the first by
    `parent_id`. The first is locked while its retry is recorded, so two retries of one failure never
    both start; the job is enqueued once the retry is committed."""
    if generation.kind not in LONG_KINDS:
        raise NotRetryable(f"Only videos and Midjourney tasks run on the worker and can be retried here; a "
                           f"{generation.kind} generation's caller had its answer and may send the request again.")
    with atomic():
        original = flow.locked(Generation.id == generation.id)
        if original.status != "FAILED":
            raise NotRetryable(f"Only a failed generation can be retried; this one is {original.status.lower()}.")
        again = retry_of(original.id)
        if again is not None:
            raise NotRetryable(f"It has already been retried as {again.id} ({again.status.lower()}).",
                               code="already_retried")
        tenant = db.session.get(Tenant, original.tenant_id)
        if not tenant.is_active:
            raise Forbidden(f"{tenant.name} is deactivated: it cannot start generations.", code="tenant_inactive")
        caller = flow.Caller(tenant, original.user_id, original.api_key_id, original.is_test, actor)
        retried = flow.start(caller, original.kind, dict(original.params), parent_id=original.id).generation
        audit.record(actor, "generation.retry", target_type="generation", target_id=retried.id, tenant_id=tenant.id,
                     changes={"retry_of": str(original.id), "credits_held": retried.credits_held})
        on_commit(functools.partial(jobs.enqueue, "generation.execute", generation_id=str(retried.id)))
    return retried


def retry_of(generation_id: uuid.UUID) -> Generation | None:
    """The retry of a failed generation that has not failed itself, if there is one. (A failed generation
    has no other children: a Midjourney action needs a finished task.)"""
    return db.session.scalar(sa.select(Generation).where(Generation.parent_id == generation_id,
                                                         Generation.status != "FAILED")
                             .order_by(Generation.created_at.desc()).limit(1))
