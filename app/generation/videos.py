"""Videos as their owners see them: OpenAI's request turned into the gateway's, the list in OpenAI's
page shape, and DELETE, which cancels a running video or deletes a finished one's objects."""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from app.core.errors import InvalidInput, NotFound
from app.core.lookup import get_for_tenant
from app.core.transaction import atomic
from app.extensions import db
from app.generation import removal
from app.generation.models import Generation
from app.storage.models import StoredFile

# OpenAI's sizes (and any W×H) → the gateway's aspect ratio and resolution.
RATIOS = {(16, 9): "16:9", (9, 16): "9:16", (1, 1): "1:1", (4, 3): "4:3", (3, 4): "3:4", (7, 4): "16:9",
          (4, 7): "9:16"}
CANCELLED = removal.CANCELLED
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


def remove(generation: Generation) -> Generation:
    """DELETE a video: cancelled while it runs, else deleted with its files (removal.remove)."""
    return removal.remove(generation)
