"""Videos and Midjourney tasks on the wire. The video object is OpenAI's (so the `openai` SDK's
videos.* work unchanged) plus ours: the phase, what the file really is, and what it cost."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from app.schemas import Body, Out, Query

# OpenAI's status for each of our phases.
VIDEO_STATUS = {"PENDING": "queued", "GENERATING": "in_progress", "UPLOADING": "in_progress",
                "COMPLETED": "completed", "FAILED": "failed"}
Extra = Any  # vendor extras pass to the gateway untouched


class VideoIn(Body):
    """POST /videos/generations: the gateway's own parameters, and its vendor extras passed through."""

    model: str = Field(min_length=1, max_length=120)
    prompt: str | None = Field(default=None, max_length=10_000)
    duration: float | None = Field(default=None, ge=0, le=3600, description="Seconds; the model's default if omitted")
    aspect_ratio: str | None = Field(default=None, max_length=10, description="Such as 16:9")
    resolution: str | None = Field(default=None, max_length=12, description="Such as 720p or 1080p")
    reference_images: list[str] | None = Field(default=None, max_length=16, description="URLs or data: URIs")
    image: str | None = Field(default=None, max_length=20_000_000, description="A first frame: URL or data: URI")
    mode: Extra = None
    style: Extra = None
    subjects: Extra = None
    audio: Extra = None
    voice_id: Extra = None
    bgm: Extra = None
    movement_amplitude: Extra = None
    enable_upsample: Extra = None
    enhance_prompt: Extra = None
    replace_image_url: Extra = None
    replace_video_url: Extra = None


class OpenAIVideoIn(Body):
    """POST /videos: what the openai SDK sends (multipart/form-data with a file, or JSON)."""

    prompt: str = Field(min_length=1, max_length=10_000)
    model: str = Field(default="sora-2", min_length=1, max_length=120)
    seconds: str | int | None = Field(default=None, description="Clip duration in seconds, e.g. \"8\"")
    size: str | None = Field(default=None, max_length=20, description="width x height, e.g. 1280x720")
    input_reference: Any = Field(default=None, description="An uploaded image, an image URL, or {\"image_url\": …}")


class VideoUpscaleIn(Body):
    model: str = Field(default="video-upscale", min_length=1, max_length=120)
    video_url: str = Field(min_length=1, max_length=4000)
    upscale_resolution: str = Field(default="1080p", max_length=12)
    duration: float | None = Field(default=None, ge=0, le=3600, description="The source's seconds, for the estimate")


class VideoCommercialIn(Body):
    model: str = Field(default="video-commercial", min_length=1, max_length=120)
    images: list[str] | None = Field(default=None, max_length=16)
    prompt: str | None = Field(default=None, max_length=10_000)
    duration: float | None = Field(default=None, ge=0, le=3600)
    ratio: str | None = Field(default=None, max_length=10)
    language: str | None = Field(default=None, max_length=20)


class VideoError(Out):
    code: str
    message: str


class VideoOut(Out):
    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    phase: Literal["PENDING", "GENERATING", "UPLOADING", "COMPLETED", "FAILED"]
    progress: int
    prompt: str | None
    seconds: str = Field(description="As OpenAI sends it: the duration in seconds, as text")
    size: str = Field(description="width x height of the file (or as requested, until there is one)")
    created_at: int = Field(description="Unix seconds")
    completed_at: int | None
    error: VideoError | None
    duration: float | None = Field(description="Seconds the file really lasts")
    resolution: str | None
    file_size: int | None
    generation_seconds: float | None = Field(description="From the gateway call's start to the stored file")
    video_url: str | None = Field(description="Stable: GET answers the bytes (Range supported)")
    thumbnail_url: str | None
    credits_held: int
    credits_charged: int


class VideoListOut(Out):
    object: Literal["list"] = "list"
    data: list[VideoOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoListQuery(Query):
    after: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"


class VideoContentQuery(Query):
    variant: Literal["video", "thumbnail"] = "video"


class VideoDeletedOut(Out):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


def video_out(generation, url_for: Callable[[str], str]) -> dict:
    """A video generation as its owner sees it; `url_for(path)` makes a stable URL absolute."""
    params, output = generation.params or {}, generation.output or {}
    error = VideoError(code=generation.error_code, message=generation.error_message or "") \
        if generation.error_code else None
    seconds = output.get("duration") or params.get("duration")
    took = (generation.completed_at - generation.started_at).total_seconds() \
        if generation.completed_at and generation.started_at and generation.status == "COMPLETED" else None
    done = generation.status == "COMPLETED"
    base = f"/api/v1/videos/{generation.id}/content"
    return VideoOut(
        id=str(generation.id), model=generation.model, status=VIDEO_STATUS[generation.status],
        phase=generation.status, progress=generation.progress, prompt=params.get("prompt"),
        seconds=str(math.ceil(seconds)) if seconds else "0", size=output.get("size") or params.get("size") or "",
        created_at=int(generation.created_at.timestamp()),
        completed_at=int(generation.completed_at.timestamp()) if generation.completed_at else None, error=error,
        duration=output.get("duration"), resolution=params.get("resolution"), file_size=output.get("file_size"),
        generation_seconds=round(took, 3) if took is not None else None,
        video_url=url_for(base) if done else None,
        thumbnail_url=url_for(f"{base}?variant=thumbnail") if done and output.get("size") else None,
        credits_held=generation.credits_held, credits_charged=generation.credits_charged,
    ).model_dump(mode="json")


class MidjourneyImagineIn(Body):
    prompt: str = Field(min_length=1, max_length=10_000)
    model: str = Field(default="midjourney-v7", min_length=1, max_length=120)
    mode: Literal["relax", "fast", "turbo"] | None = None


class MidjourneyActionIn(Body):
    generation_id: str = Field(min_length=1, max_length=64, description="The finished task to act on")
    custom_id: str = Field(min_length=1, max_length=200, description="One of its buttons' custom_id")
    mode: Literal["relax", "fast", "turbo"] | None = None


class MidjourneyButton(Out):
    custom_id: str
    label: str
    emoji: str


class MidjourneyTaskOut(Out):
    id: str
    object: Literal["midjourney.task"] = "midjourney.task"
    model: str
    operation: str
    mode: str | None
    status: Literal["PENDING", "GENERATING", "UPLOADING", "COMPLETED", "FAILED"]
    progress: int
    prompt: str | None
    parent_id: str | None = Field(description="The task this action acted on")
    image_url: str | None
    buttons: list[MidjourneyButton]
    error: VideoError | None
    credits_held: int
    credits_charged: int
    created_at: int
    completed_at: int | None


def midjourney_out(generation, image_url: str | None) -> dict:
    params, output = generation.params or {}, generation.output or {}
    error = VideoError(code=generation.error_code, message=generation.error_message or "") \
        if generation.error_code else None
    return MidjourneyTaskOut(
        id=str(generation.id), model=generation.model, operation=params.get("operation") or "imagine",
        mode=params.get("mode"), status=generation.status, progress=generation.progress,
        prompt=params.get("prompt"), parent_id=str(generation.parent_id) if generation.parent_id else None,
        image_url=image_url, buttons=output.get("buttons") or [], error=error,
        credits_held=generation.credits_held, credits_charged=generation.credits_charged,
        created_at=int(generation.created_at.timestamp()),
        completed_at=int(generation.completed_at.timestamp()) if generation.completed_at else None,
    ).model_dump(mode="json")
