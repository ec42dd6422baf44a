"""Generation on the wire: the OpenAI-shaped requests (images, speech, chat), the generation object,
and usage as tenants and platform admins see it."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

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
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list | None = None


class Part(BaseModel):
    """A nested OpenAI object: its known fields are checked, newer ones pass through to the gateway."""

    model_config = ConfigDict(extra="allow", strict=True)


FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class FunctionDefinition(Part):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict | None = Field(default=None, description="A JSON schema of the arguments")
    strict: bool | None = None


class FunctionTool(Part):
    type: Literal["function"]
    function: FunctionDefinition


class CustomTool(Part):
    type: Literal["custom"]
    custom: dict


class NamedFunction(Part):
    name: str = Field(pattern=FUNCTION_NAME)


class NamedToolChoice(Part):
    type: Literal["function"]
    function: NamedFunction


class OtherToolChoice(Part):
    type: Literal["allowed_tools", "custom"]


class TextFormat(Part):
    type: Literal["text"]


class JsonObjectFormat(Part):
    type: Literal["json_object"]


class JsonSchema(Part):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    schema_: dict | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(Part):
    type: Literal["json_schema"]
    json_schema: JsonSchema


class StreamOptions(Body):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class Prediction(Part):
    type: Literal["content"]
    content: str | list


class ChatIn(Body):
    """OpenAI's chat request, whole. What the gateway may honour is forwarded (kinds/chat.py, FORWARDED);
    the rest is accepted and kept here."""

    model: str = Field(min_length=1, max_length=120)
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: str | list[str] | None = Field(default=None, description="Up to 4 sequences")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=1, ge=1, le=1, description="One choice per request")
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat,
                               Field(discriminator="type")] | None = None
    tools: list[Annotated[FunctionTool | CustomTool, Field(discriminator="type")]] | None = Field(
        default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | OtherToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDefinition] | None = Field(default=None, max_length=128)
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    prediction: Prediction | None = None
    modalities: list[Literal["text"]] | None = Field(default=None, description="Text only: no audio output")
    audio: dict | None = Field(default=None, description="Accepted and ignored: no audio output")
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(default=None, max_length=16)
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    user: str | None = Field(default=None, max_length=120)
    safety_identifier: str | None = Field(default=None, max_length=128)
    prompt_cache_key: str | None = Field(default=None, max_length=1000)
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict | None = None
    web_search_options: dict | None = None
    moderation: dict | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, stop):
        if isinstance(stop, list) and len(stop) > 4:
            raise PydanticCustomError("too_long", "at most 4 stop sequences")
        return stop

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, bias):
        if bias and any(not -100 <= value <= 100 for value in bias.values()):
            raise PydanticCustomError("out_of_range", "each bias must be from -100 to 100")
        return bias

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, metadata):
        if metadata and any(len(key) > 64 for key in metadata):
            raise PydanticCustomError("too_long", "keys are at most 64 characters")
        return metadata

    @field_validator("tool_choice")
    @classmethod
    def _names_a_tool(cls, choice, info: ValidationInfo):
        tools = info.data.get("tools") or []
        if isinstance(choice, NamedToolChoice):
            if choice.function.name not in {t.function.name for t in tools if isinstance(t, FunctionTool)}:
                raise PydanticCustomError("unknown_tool", "names '{name}', which is not among the tools",
                                          {"name": choice.function.name})
        elif choice == "required" and not tools:
            raise PydanticCustomError("no_tools", "'required' needs tools")
        return choice


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


class AdminGenerationOut(Out):
    """A generation as the platform admin sees it: whose it is, where the worker stands, what it is part of."""

    id: str
    object: Literal["generation"] = "generation"
    tenant_id: str
    kind: str
    model: str
    status: Literal["PENDING", "GENERATING", "UPLOADING", "COMPLETED", "FAILED"]
    is_test: bool
    progress: int = Field(description="0–100, as far as the worker knows")
    credits_held: int
    credits_charged: int
    parent_id: str | None = Field(description="The generation this one retries, or the Midjourney task it acts on")
    error: ErrorOut | None
    lease_until: Timestamp | None = Field(description="Until when its worker's claim holds (videos, Midjourney)")
    created_at: Timestamp
    completed_at: Timestamp | None


def admin_generation_out(generation) -> dict:
    error = ErrorOut(code=generation.error_code, message=generation.error_message) if generation.error_code else None
    return AdminGenerationOut(
        id=str(generation.id), tenant_id=str(generation.tenant_id), kind=generation.kind, model=generation.model,
        status=generation.status, is_test=generation.is_test, progress=generation.progress,
        credits_held=generation.credits_held, credits_charged=generation.credits_charged,
        parent_id=str(generation.parent_id) if generation.parent_id else None, error=error,
        lease_until=generation.lease_until, created_at=generation.created_at, completed_at=generation.completed_at,
    ).model_dump(mode="json")


class GenerationListOut(Out):
    object: Literal["list"] = "list"
    data: list[GenerationOut]
    has_more: bool
    next_cursor: str | None


class GenerationDeletedOut(Out):
    id: str
    object: Literal["generation.deleted"] = "generation.deleted"
    deleted: bool = True


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
