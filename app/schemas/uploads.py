"""Uploads on the wire: what a client declares, where it sends the file, and the URL it then uses."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.schemas import Body, Out, Timestamp


class UploadIn(Body):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=1, max_length=100, description=(
        "image/png, image/jpeg, image/webp, image/gif, video/mp4, video/quicktime or video/webm"))
    size: int = Field(ge=1, description="Bytes; the file must have exactly this many (at most UPLOAD_MAX_BYTES)")


class UploadTargetOut(Out):
    method: Literal["POST", "PUT"] = Field(description=(
        "POST: a multipart form of `fields`, then the file as `file`; PUT: the bytes as the body, with `headers`"))
    url: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: Timestamp


class UploadOut(Out):
    id: str
    object: Literal["upload"] = "upload"
    status: Literal["pending", "completed"]
    filename: str | None = None
    content_type: str
    size: int
    url: str | None = Field(description=(
        "Once completed: a stable URL generation requests may name in reference_images or image"))
    created_at: Timestamp
    upload: UploadTargetOut | None = Field(default=None, description="Where to send the file (only on creation)")
