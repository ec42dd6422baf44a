"""Generation on the wire: the OpenAI-shaped requests (images, speech, chat), the generation object,
and usage as tenants and platform admins see it."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas import Body, Out, Query, Timestamp


class ImageIn(Body):
    model: str = Field(min_length=1, max_length=120)
    prompt: str = Field(min_length=1, max_length=10_000)
    n: int = Field(default=1, ge=1, le=15)
    size: str | None = Field(default=None, max_length=20, description=(
        "OpenAI's: 256x256, 512x512, 1024x1024, 1536x1024, 1024x1536, 1792x1024, 1024x1792 or auto, sent to the "
        "gateway as an aspect ratio and the model's nearest resolution not below it; or an aspect ratio like '16:9'"))
    response_format: Literal["url", "b64_json"] = "url"
    reference_images: list[str] | None = Field(default=None, max_length=16)
    image_size: str | None = Field(default=None, max_length=8, description="'1K', '2K' or '4K'")
    max_images: int | None = Field(default=None, ge=1, le=15)
    aspect_ratio: str | None = Field(default=None, max_length=10, description="Wins over what size implies")
    quality: str | None = Field(default=None, max_length=20)
    style: str | None = Field(default=None, max_length=20)
    user: str | None = Field(default=None, max_length=120)
    run_async: bool = Field(default=False, alias="async", description="Answer 202 at once; poll the generation")


class SpeechIn(Body):
    model: str = Field(min_length=1, max_length=120)
    input: str = Field(min_length=1, max_length=10_000)
    voice: str | None = Field(default=None, max_length=80)
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    response_format: Literal["mp3", "wav", "opus", "aac", "flac", "pcm"] | None = Field(default=None, description=(
        "Re-encoded from what the gateway delivers (24 kHz; opus in Ogg; pcm raw 16-bit little-endian mono); "
        "left out, the gateway's own format"))
    instructions: str | None = Field(default=None, max_length=4000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list | None = None


class StreamOptions(Body):
    include_usage: bool = False


class ChatIn(Body):
    model: str = Field(min_length=1, max_length=120)
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)
    user: str | None = Field(default=None, max_length=120)


class ResultOut(Out):
    file_id: str
    content_type: str
    size_bytes: int
    revised_prompt: str | None = None
    duration: float | None = Field(default=None, description="Seconds, for audio and video the gateway timed")
    url: str = Field(description="A signed link to the stored object; it expires")


class ErrorOut(Out):
    code: str
    message: str | None


class TimelineStepOut(Out):
    status: str
    at: Timestamp


class GenerationOut(Out):
    id: str
    object: Literal["generation"] = "generation"
    kind: str
    model: str
    status: str
    is_test: bool
    credits_held: int
    credits_charged: int
    results: list[ResultOut]
    output: dict | None
    error: ErrorOut | None
    timeline: list[TimelineStepOut]
    created_at: Timestamp
    completed_at: Timestamp | None


def generation_out(generation, files, file_url: Callable[[object], str]) -> dict:
    """A generation as its owner sees it. Each result is read from its StoredFile (the only record of
    the object), with what the gateway said of it; `file_url` signs a link to one."""
    described = {r.get("file_id"): r for r in generation.results}
    results = [ResultOut(file_id=str(stored.id), content_type=stored.content_type, size_bytes=stored.size_bytes,
                         revised_prompt=described.get(str(stored.id), {}).get("revised_prompt"),
                         duration=described.get(str(stored.id), {}).get("duration"), url=file_url(stored))
               for stored in files]
    error = ErrorOut(code=generation.error_code, message=generation.error_message) if generation.error_code else None
    return GenerationOut(
        id=str(generation.id), kind=generation.kind, model=generation.model, status=generation.status,
        is_test=generation.is_test, credits_held=generation.credits_held, credits_charged=generation.credits_charged,
        results=results, output=generation.output, error=error, timeline=generation.timeline,
        created_at=generation.created_at, completed_at=generation.completed_at,
    ).model_dump(mode="json")


class GenerationListOut(Out):
    object: Literal["list"] = "list"
    data: list[GenerationOut]
    has_more: bool
    next_cursor: str | None


class GenerationsQuery(Query):
    kind: Literal["image", "video", "audio", "chat", "midjourney"] | None = None
    status: Literal["PENDING", "GENERATING", "UPLOADING", "COMPLETED", "FAILED"] | None = None
    model: str | None = Field(default=None, max_length=120)
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)


class UsageQuery(Query):
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    group_by: Literal["day", "model", "member"] = "day"


class UsageOut(Out):
    model_config = ConfigDict(populate_by_name=True)
    date_from: str = Field(alias="from")
    date_to: str = Field(alias="to")
    group_by: str
    data: list[dict]
    totals: dict


class UsageRecordsQuery(Query):
    date_from: date | None = Field(default=None, alias="from", description="First UTC day; default 29 days before to")
    date_to: date | None = Field(default=None, alias="to", description="Last UTC day, included; default today")


class UsageRecordOut(Out):
    id: str
    created_at: Timestamp
    model: str
    kind: str
    operation: str
    status: str
    is_test: bool
    credits: int
    input_tokens: int | None
    output_tokens: int | None
    seconds: float | None
    quantity: int | None
    latency_ms: int | None
    user_id: str | None
    api_key_id: str | None
    generation_id: str | None


class OperationSummaryOut(Out):
    operation: str
    count: int
    credits: int


class TenantUsageOut(Out):
    records: list[UsageRecordOut] = Field(description="Newest first, test-mode calls included and marked")
    summary: list[OperationSummaryOut] = Field(description="Live calls per operation, from the daily rollups")


class ImageDataOut(Out):
    url: str | None = Field(default=None, description="A signed link to the stored image; it expires")
    b64_json: str | None = Field(default=None, description="The image itself, with response_format b64_json")
    revised_prompt: str | None = None


class ImageUsageOut(Out):
    images: int
    credits: int = Field(description="What the request was charged (0 for test-mode keys)")


class ImagesOut(Out):
    """OpenAI's ImagesResponse, with our generation id and what was charged."""

    created: int = Field(description="Unix seconds")
    data: list[ImageDataOut]
    generation_id: str
    usage: ImageUsageOut


class ChatMessageOut(Out):
    role: Literal["assistant"]
    content: str


class ChatChoiceOut(Out):
    index: int
    message: ChatMessageOut
    finish_reason: str


class ChatUsageOut(Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    credits: int = Field(description="What the request was charged (0 for test-mode keys)")


class ChatCompletionOut(Out):
    """OpenAI's ChatCompletion; `usage` also says what was charged. With stream: true the same answer
    comes as chat.completion.chunk server-sent events, the usage chunk last when include_usage is set."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix seconds")
    model: str
    choices: list[ChatChoiceOut]
    usage: ChatUsageOut
