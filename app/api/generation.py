"""Generation endpoints in OpenAI's shapes, the generations list and usage."""
from __future__ import annotations

import base64
import json

from flask import Response, jsonify, request, stream_with_context

from app.api import bp
from app.api.auth import AUTH, current_principal
from app.api.errors import INTERNAL_ERROR_MESSAGE, domain_error_body, error_body
from app.api.openapi import endpoint
from app.api.uploads import with_uploads_resolved
from app.core.errors import DomainError, Forbidden
from app.generation import flow, queries, removal, usage
from app.generation.models import Generation
from app.generation.transcode import FORMATS
from app.schemas.generation import (ChatCompletionOut, ChatIn, GenerationDeletedOut, GenerationListOut, GenerationOut,
                                    GenerationsQuery, ImageDataOut, ImageIn, ImagesOut, ImageUsageOut, SpeechIn,
                                    UsageOut, UsageQuery, generation_out)
from app.storage import service as storage
from app.storage import signing
from app.storage.models import StoredFile


# What speech answers: each response_format's type, or without one the gateway's own (usually WAV).
SPEECH_TYPES = tuple(dict.fromkeys(f.content_type for f in FORMATS.values()))


def _caller() -> flow.Caller:
    principal = current_principal()
    if not principal.can_generate:
        raise Forbidden("This API key has no 'generate' scope.", code="scope_required")
    return flow.Caller(principal.access, principal.user.id if principal.user else None,
                              principal.api_key.id if principal.api_key else None, principal.mode == "test",
                              principal.actor())


def _idempotency_key() -> str | None:
    return request.headers.get("Idempotency-Key")


def _file_url(stored: StoredFile) -> str:
    return signing.signed_url(stored, external_base=request.host_url)


def _files(generation: Generation) -> list[StoredFile]:
    if generation.confirmed_files is not None:  # just stored and confirmed by this request
        return generation.confirmed_files
    return storage.files_of([generation.id])[generation.id]


@bp.post("/images/generations")
@endpoint("Generate images (OpenAI's shape; 'async': true answers 202 with the generation)", body=ImageIn,
          response=ImagesOut, also={202: GenerationOut}, auth=AUTH, errors=(402, 403, 404, 409, 422, 502, 504),
          tags=("generation",))
def create_images(body: ImageIn):
    params = {"model": body.model, "prompt": body.prompt, "size": body.size, "aspect_ratio": body.aspect_ratio,
              "image_size": body.image_size, "reference_images": body.reference_images,
              "max_images": body.max_images or body.n, "n": body.n}
    params = with_uploads_resolved(current_principal().tenant_id, {k: v for k, v in params.items() if v is not None})
    if body.run_async:
        generation = flow.run_in_background(_caller(), "image", params, idempotency_key=_idempotency_key())
        return jsonify(generation_out(generation, _files(generation), _file_url)), 202
    generation = flow.run(_caller(), "image", params, idempotency_key=_idempotency_key())
    prompts = {r.get("file_id"): r.get("revised_prompt") for r in generation.results}
    data = []
    for stored in _files(generation):
        image = ({"b64_json": base64.b64encode(storage.read(stored)).decode()} if body.response_format == "b64_json"
                 else {"url": _file_url(stored)})
        data.append(ImageDataOut(revised_prompt=prompts.get(str(stored.id)), **image))
    return jsonify(ImagesOut(created=int(generation.created_at.timestamp()), data=data,
                             generation_id=str(generation.id),
                             usage=ImageUsageOut(images=len(data), credits=generation.credits_charged))
                   .model_dump(mode="json", exclude_none=True))


@bp.post("/audio/speech")
@endpoint("Text to speech (OpenAI's shape): answers the audio bytes, in response_format when sent, and the "
          "generation's id in X-Generation-Id", body=SpeechIn, media=SPEECH_TYPES, auth=AUTH,
          errors=(402, 403, 404, 409, 422, 502, 504), tags=("generation",))
def create_speech(body: SpeechIn):
    params = {k: v for k, v in {"model": body.model, "input": body.input, "voice": body.voice,
                                "speed": body.speed, "response_format": body.response_format}.items() if v is not None}
    generation = flow.run(_caller(), "audio", params, idempotency_key=_idempotency_key())
    stored = _files(generation)[0]
    return Response(storage.read(stored), mimetype=stored.content_type,
                    headers={"X-Generation-Id": str(generation.id)})


def _completion(generation: Generation) -> dict:
    output = generation.output or {}
    message = {"role": "assistant", "content": output.get("content")}
    for name in ("tool_calls", "function_call", "refusal"):
        if output.get(name) is not None:
            message[name] = output[name]
    return {"id": f"chatcmpl-{generation.id.hex}", "object": "chat.completion",
            "created": int(generation.created_at.timestamp()), "model": generation.model,
            "choices": [{"index": 0, "message": message, "logprobs": output.get("logprobs"),
                         "finish_reason": output.get("finish_reason", "stop")}],
            "usage": {**{k: v for k, v in (output.get("usage") or {}).items() if k != "source"},
                      "credits": generation.credits_charged}}


def _sse(payload) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


def _chunks(completion: dict, include_usage: bool):
    """A whole answer (from a gateway that does not stream) as chat.completion.chunk events. It takes
    the plain completion, not the Generation: the body is sent after the request's session has closed."""
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}
    message = completion["choices"][0]["message"]
    content = message["content"] or ""
    yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                      "finish_reason": None}]})
    for start in range(0, len(content), 24):
        yield _sse({**base, "choices": [{"index": 0, "delta": {"content": content[start:start + 24]},
                                          "finish_reason": None}]})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield _sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **call}]},
                                          "finish_reason": None}]})
    if message.get("function_call"):
        yield _sse({**base, "choices": [{"index": 0, "delta": {"function_call": message["function_call"]},
                                          "finish_reason": None}]})
    finish_reason = completion["choices"][0]["finish_reason"]
    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    if include_usage:
        yield _sse({**base, "choices": [], "usage": completion["usage"]})
    yield _sse("[DONE]")


def _relay(streaming: flow.Streaming, ours: dict, include_usage: bool):
    """A streaming gateway's chunks, passed on as they arrive under our id and model name (`ours`). Its
    usage is dropped: ours follows the settle, when asked. A failure after the first event ends the
    stream with an error event (and no [DONE]); a client that leaves is settled by close()."""
    try:
        for chunk in streaming.chunks():
            if chunk.get("choices"):  # not the gateway's usage chunk
                yield _sse({**{k: v for k, v in chunk.items() if k != "usage"}, **ours})
        completion = _completion(streaming.finish())
        if include_usage:
            yield _sse({**ours, "choices": [], "usage": completion["usage"]})
        yield _sse("[DONE]")
    except DomainError as error:
        yield _sse(domain_error_body(error))
    except Exception:  # logged and recorded by the flow
        yield _sse(error_body(INTERNAL_ERROR_MESSAGE, type="api_error", code="internal_error"))
    finally:
        streaming.close()


@bp.post("/chat/completions")
@endpoint("Chat completions (OpenAI's shape); stream: true answers server-sent chunks", body=ChatIn, auth=AUTH,
          response=ChatCompletionOut, media=("text/event-stream",), errors=(402, 403, 404, 409, 422, 502, 504),
          tags=("generation",))
def create_chat(body: ChatIn):
    params = body.model_dump(exclude_unset=True, by_alias=True, exclude={"stream", "stream_options", "n", "user"})
    params = {name: value for name, value in params.items() if value is not None}
    if not body.stream:
        return jsonify(_completion(flow.run(_caller(), "chat", params, idempotency_key=_idempotency_key())))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    # Errors before the first event (402, a gateway's refusal or failure) still answer with their status.
    outcome = flow.run_streamed(_caller(), "chat", params, idempotency_key=_idempotency_key())
    if isinstance(outcome, flow.Streaming):
        generation = outcome.generation
        ours = {"id": f"chatcmpl-{generation.id.hex}", "object": "chat.completion.chunk",
                "created": int(generation.created_at.timestamp()), "model": generation.model}
        # The relay settles when the stream ends, so it needs the app (and a session) until then.
        events = stream_with_context(_relay(outcome, ours, include_usage))
    else:
        generation = outcome
        events = _chunks(_completion(outcome), include_usage)
    return Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                             "X-Generation-Id": str(generation.id)})


@bp.get("/generations")
@endpoint("Generations, newest first: members see their own, admins and keys the tenant's",
          query=GenerationsQuery, response=GenerationListOut, auth=AUTH, tags=("generation",))
def list_generations(query: GenerationsQuery):
    principal = current_principal()
    own = principal.user.id if principal.kind == "member" else None
    page = queries.list_generations(principal.tenant_id, user_id=own, kind=query.kind, status=query.status,
                                        model=query.model, date_from=query.date_from, date_to=query.date_to,
                                        cursor=query.cursor, limit=query.limit)
    files = storage.files_of(g.id for g in page.generations)
    return jsonify({"object": "list", "data": [generation_out(g, files[g.id], _file_url) for g in page.generations],
                    "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor})


@bp.get("/generations/<generation_id>")
@endpoint("One generation, with its status, charge and result URLs", response=GenerationOut, auth=AUTH,
          errors=(404,), tags=("generation",))
def show_generation(generation_id: str):
    principal = current_principal()
    own = principal.user.id if principal.kind == "member" else None
    generation = queries.get_generation(principal.tenant_id, generation_id, user_id=own)
    return jsonify(generation_out(generation, _files(generation), _file_url))


@bp.delete("/generations/<generation_id>")
@endpoint("Cancel a running generation (its hold is released) or delete a finished one: its files are removed "
          "and their bytes leave the storage meter", response=GenerationDeletedOut, auth=AUTH, errors=(404,),
          tags=("generation",))
def delete_generation(generation_id: str):
    principal = current_principal()
    own = principal.user.id if principal.kind == "member" else None
    generation = removal.remove(queries.get_generation(principal.tenant_id, generation_id, user_id=own))
    return jsonify(GenerationDeletedOut(id=str(generation.id)).model_dump(mode="json"))


@bp.get("/usage")
@endpoint("Usage totals by day, model or member, from the daily rollups", query=UsageQuery, response=UsageOut,
          auth=AUTH, tags=("billing",))
def usage_summary(query: UsageQuery):
    return jsonify(usage.summary(current_principal().tenant_id, date_from=query.date_from, date_to=query.date_to,
                                 group_by=query.group_by))
