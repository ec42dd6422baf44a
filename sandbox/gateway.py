"""The waule-api routes. Registered under every configured prefix (/v1, /internal/v1)."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid

from flask import Blueprint, Response, abort, current_app, jsonify, request

from sandbox import media
from sandbox.markers import Markers, MarkerError, find_markers, strip_markers
from sandbox.midjourney import InvalidAction, UnknownTask
from sandbox.schema import SchemaError, instance_of

bp = Blueprint("gateway", __name__)

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
MAX_IMAGES = 15
MAX_VIDEO_SECONDS = 60

# What the newer gateway lists; the sandbox answers any well-formed model name.
MODELS = [
    "doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "gemini-2.5-flash-image",
    "gemini-3-pro-image-preview", "qwen-image-edit-plus", "image-01", "sora-image",
    "MiniMax-Hailuo-2.3", "MiniMax-Hailuo-02", "viduq2-pro", "viduq2-turbo", "wan2.2-animate-mix",
    "veo3.1", "veo3.1-pro", "sora-video-landscape-10s", "sora-2",
    "speech-2.6-hd", "speech-2.6-turbo", "cosyvoice-v2", "gemini-2.5-pro", "gemini-3-pro-preview",
    "midjourney-v7",
]

ANSWER_SENTENCES = [
    "The sandbox keeps no secrets and spends no credits.",
    "Every answer here is deterministic, so tests can rely on it.",
    "No vendor was contacted to produce this reply.",
    "This text stands in for what a real model would write.",
    "Repeat the question and you will get the same answer.",
    "The gateway contract is honoured without any upstream call.",
    "Latency here is only what the sandbox itself adds.",
    "A real model would be more eloquent, but not more predictable.",
]

# Han, kana and hangul count one token per character; anything else one token per word.
CJK = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af"
TOKEN = re.compile(f"[{CJK}]|[^\\s{CJK}]+")


class RequestInvalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_response(status: int, message: str, error_type: str) -> Response:
    response = jsonify({"error": {"message": message, "type": error_type}})
    response.status_code = status
    return response


def unauthorized() -> Response:
    response = jsonify({"success": False, "error": "Unauthorized"})
    response.status_code = 401
    return response


@bp.errorhandler(RequestInvalid)
def _invalid(error: RequestInvalid):
    return error_response(400, error.message, "invalid_request")


@bp.before_request
def check_secret():
    secret = current_app.config["SANDBOX_SECRET"].encode()
    bearer = request.headers.get("Authorization", "")
    offered = [request.headers.get("X-Internal-Secret", "")]
    if bearer[:7].lower() == "bearer ":
        offered.append(bearer[7:].strip())
    if not any(candidate and hmac.compare_digest(candidate.encode(), secret) for candidate in offered):
        return unauthorized()
    return None


def _sandbox():
    return current_app.extensions["sandbox"]


def file_url(name: str) -> str:
    base = current_app.config["SANDBOX_PUBLIC_URL"] or request.url_root.rstrip("/")
    return f"{base}/files/{name}"


def now() -> int:
    return int(time.time())


def json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise RequestInvalid("request body must be a JSON object")
    return body


def honour(*texts: object, sleep: bool = True) -> Markers:
    """Act on the markers in `texts`; returns them for the markers that shape a success. `sleep`
    False: the caller spreads `[sandbox:slow=N]` over a streamed answer instead of waiting first."""
    try:
        markers = find_markers(*texts)
    except MarkerError as error:
        raise RequestInvalid(str(error)) from None
    cap = current_app.config["SANDBOX_TIMEOUT_CAP"]
    if markers.slow_seconds is not None and sleep:
        time.sleep(min(markers.slow_seconds, cap))
    if "deny" in markers:
        abort(unauthorized())
    if "reject" in markers:
        abort(error_response(400, "sandbox: request rejected by [sandbox:reject]", "invalid_request"))
    if "flat_error" in markers:
        abort(Response('{"error": "sandbox: flat error requested by [sandbox:flat_error]"}', status=400,
                       mimetype="application/json"))
    if "fail" in markers:
        abort(error_response(500, "sandbox: generation failed as asked by [sandbox:fail]", "generation_error"))
    if "timeout" in markers:
        # Outlive any client read timeout, but not forever: a stuck thread must end some day.
        threading.Event().wait(cap)
        abort(error_response(504, f"sandbox: [sandbox:timeout] held the request for {cap:g} s", "timeout"))
    if "badjson" in markers:
        abort(Response('{"created": 1735600000, "data": [{"url": "https://', status=200,
                       mimetype="application/json"))
    return markers


def require_model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise RequestInvalid("model is required")
    if not MODEL_NAME.match(model):
        raise RequestInvalid(f"invalid model {model!r}")
    return model


def require_text(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RequestInvalid(f"{name} is required")
    return value


def optional_number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RequestInvalid(f"{name} must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestInvalid(f"{name} must be a number between {low:g} and {high:g}")
    return value


def ratio_of(value: object, default: str) -> tuple[int, int]:
    if value is None or value == "":
        value = default
    if not isinstance(value, str):
        raise RequestInvalid("aspect ratio must be a string such as \"16:9\"")
    try:
        return media.parse_ratio(value)
    except ValueError:
        raise RequestInvalid(f"unsupported aspect ratio {value!r}") from None


def string_list(body: dict, name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RequestInvalid(f"{name} must be a list of URLs")
    return value


def message_text(message: object) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def last_user_text(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return message_text(messages[-1]) if messages else ""


def require_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid("messages must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestInvalid("each message needs a role")
        if not isinstance(message.get("content"), (str, list, type(None))):
            raise RequestInvalid("message content must be a string or a list of parts")
    return messages


def completion(model: str, message: dict | str, finish_reason: str = "stop") -> dict:
    """OpenAI chat.completion as the deployed gateway sends it: no `usage`."""
    if isinstance(message, str):
        message = {"role": "assistant", "content": message}
    return {
        "id": f"chatcmpl-sandbox-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }


@bp.get("/models")
def list_models():
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "sandbox"} for name in MODELS]}


@bp.post("/images/generations")
def generate_images():
    body = json_body()
    markers = honour(body.get("prompt"))
    model = require_model(body)
    prompt = require_text(body, "prompt")
    count = body.get("max_images", body.get("n", 1))
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_IMAGES:
        raise RequestInvalid(f"max_images must be an integer from 1 to {MAX_IMAGES}")
    image_size = body.get("image_size") or "1K"
    if not isinstance(image_size, str) or image_size.upper() not in media.IMAGE_LONG_SIDE:
        raise RequestInvalid("image_size must be one of 1K, 2K, 4K")
    ratio = ratio_of(body.get("size") or body.get("aspect_ratio"), "1:1")
    references = string_list(body, "reference_images")
    if markers.result_url:
        urls = [markers.result_url] * count
    else:
        size = media.fit(ratio, media.IMAGE_LONG_SIDE[image_size.upper()])
        text = strip_markers(prompt)
        urls = [file_url(_sandbox().media.image(model=model, prompt=text, size=size, index=index, count=count,
                                                ratio=ratio, references=len(references)))
                for index in range(count)]
    return {"created": now(), "data": [{"url": url, "revised_prompt": None} for url in urls]}


def video_answer(markers: Markers, duration: float, ratio: tuple[int, int]) -> dict:
    url = markers.result_url or file_url(_sandbox().media.video(duration=duration, ratio=ratio))
    whole = int(duration) if float(duration).is_integer() else duration
    return {"created": now(), "data": [{"url": url, "duration": whole}]}


@bp.post("/videos/generations")
def generate_video():
    body = json_body()
    markers = honour(body.get("prompt"))
    require_model(body)
    if body.get("prompt") is not None and not isinstance(body.get("prompt"), str):
        raise RequestInvalid("prompt must be a string")
    if not (body.get("prompt") or "").strip() and not body.get("image") and not body.get("reference_images"):
        raise RequestInvalid("prompt is required (or image / reference_images)")
    duration = optional_number(body, "duration", 5, 1, MAX_VIDEO_SECONDS)
    return video_answer(markers, duration, ratio_of(body.get("aspect_ratio"), "16:9"))


@bp.post("/videos/upscale")
def upscale_video():
    body = json_body()
    markers = honour(body.get("video_url"), body.get("prompt"))
    require_text(body, "video_url")
    duration = optional_number(body, "duration", 5, 1, MAX_VIDEO_SECONDS)
    return video_answer(markers, duration, ratio_of(body.get("aspect_ratio"), "16:9"))


@bp.post("/videos/commercial")
def commercial_video():
    body = json_body()
    markers = honour(body.get("prompt"))
    images = string_list(body, "images")
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise RequestInvalid("prompt must be a string")
    if not images and not (prompt or "").strip():
        raise RequestInvalid("images or prompt is required")
    duration = optional_number(body, "duration", 5, 1, MAX_VIDEO_SECONDS)
    return video_answer(markers, duration, ratio_of(body.get("ratio"), "16:9"))


@bp.post("/audio/speech")
def speech():
    body = json_body()
    markers = honour(body.get("input"))
    model = require_model(body)
    text = require_text(body, "input")
    voice = body.get("voice") or "default"
    if not isinstance(voice, str):
        raise RequestInvalid("voice must be a string")
    speed = optional_number(body, "speed", 1.0, 0.25, 4.0)
    url = markers.result_url or file_url(
        _sandbox().media.speech(model=model, voice=voice, text=strip_markers(text), speed=float(speed)))
    # The contract has two answer shapes; let callers ask for the rarer one.
    if body.get("response_shape") == "data" or model.endswith("-data"):
        return {"created": now(), "data": [{"url": url}]}
    return {"created": now(), "url": url}


def sandbox_answer(text: str, max_tokens: int | None) -> tuple[str, str]:
    question = strip_markers(text)
    digest = hashlib.sha256(question.encode()).digest()
    content = f"Sandbox answer to: {question} {ANSWER_SENTENCES[digest[0] % len(ANSWER_SENTENCES)]}"
    if max_tokens:
        tokens = list(TOKEN.finditer(content))
        if len(tokens) > max_tokens:
            return content[: tokens[max_tokens - 1].end()], "length"
    return content, "stop"


def tool_call(body: dict, messages: list[dict]) -> dict | None:
    """The call the sandbox makes when given function tools: to the tool `tool_choice` names, else to
    the first one, with arguments that are an instance of its parameters' schema. With `tool_choice`
    "auto" (the default) a conversation whose last message is a tool's result is answered in words,
    so an agent loop ends."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise RequestInvalid("tools must be a list")
    functions = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
            raise RequestInvalid("each tool needs a type, 'function' or 'custom'")
        function = tool.get("function")
        if tool["type"] == "function":
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise RequestInvalid("each function tool needs a function with a name")
            functions.append(function)
    choice = body.get("tool_choice", "auto")
    if choice == "none" or not functions:
        if choice == "required":
            raise RequestInvalid("tool_choice 'required' needs a function tool")
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        chosen = next((f for f in functions if f["name"] == name), None)
        if chosen is None:
            raise RequestInvalid(f"tool_choice names {name!r}, which is not among the tools")
    elif choice in ("auto", "required"):
        if choice == "auto" and messages[-1].get("role") == "tool":
            return None
        chosen = functions[0]
    else:
        raise RequestInvalid("tool_choice must be 'none', 'auto', 'required' or name a function")
    try:
        arguments = instance_of(chosen.get("parameters") or {"type": "object", "properties": {}})
    except SchemaError as error:
        raise RequestInvalid(f"tool {chosen['name']!r}: {error}") from None
    conversation = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(f"{chosen['name']}:{conversation}".encode()).hexdigest()
    return {"id": f"call_{digest[:24]}", "type": "function",
            "function": {"name": chosen["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}}


def structured_answer(body: dict, question: str) -> str | None:
    """The content for `response_format` json_object or json_schema (None for plain text)."""
    response_format = body.get("response_format")
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise RequestInvalid("response_format must be an object")
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return json.dumps({"answer": sandbox_answer(question, None)[0]}, ensure_ascii=False)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestInvalid("response_format json_schema needs a json_schema with a name")
        try:
            return json.dumps(instance_of(spec.get("schema") or {"type": "object", "properties": {}}),
                              ensure_ascii=False)
        except SchemaError as error:
            raise RequestInvalid(f"response_format: {error}") from None
    raise RequestInvalid(f"unsupported response_format type {kind!r}")


def chat_message(body: dict, messages: list[dict], max_tokens: int | None) -> tuple[dict, str]:
    """The assistant's message and its finish_reason: a tool call, structured output, or words."""
    call = tool_call(body, messages)
    if call is not None:
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    question = last_user_text(messages)
    content = structured_answer(body, question)
    finish_reason = "stop"
    if content is None:  # structured output is never cut: it would no longer parse
        content, finish_reason = sandbox_answer(question, max_tokens)
    return {"role": "assistant", "content": content}, finish_reason


def usage_of(messages: list[dict], message: dict) -> dict:
    """Usage as a newer gateway might report it ([sandbox:usage]): a word or a CJK character a token."""
    prompt = sum(len(TOKEN.findall(strip_markers(message_text(m)))) + 4 for m in messages)
    written = (message.get("content") or "") + "".join(
        call["function"]["name"] + call["function"]["arguments"] for call in message.get("tool_calls") or [])
    completion_tokens = len(TOKEN.findall(written))
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens}


def pieces(text: str, tokens: int = 3) -> list[str]:
    """`text` cut after every few tokens, as a model streams it."""
    ends = [match.end() for match in TOKEN.finditer(text)][tokens - 1::tokens]
    cuts = [0] + [end for end in ends if end < len(text)] + [len(text)]
    return [text[start:end] for start, end in zip(cuts, cuts[1:]) if end > start]


def streamed(answer: dict, delay: float, *, cut: bool = False) -> Response:
    """`answer` as OpenAI streams it: chat.completion.chunk events, then `data: [DONE]`. A delay is
    spread across the events, so the first one leaves at once and the last after `delay` seconds.
    `cut`: the connection ends halfway, with no finish_reason and no [DONE], as when a vendor fails."""
    base = {"id": answer["id"], "object": "chat.completion.chunk", "created": answer["created"],
            "model": answer["model"]}
    choice = answer["choices"][0]
    message = choice["message"]
    deltas = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in pieces(message.get("content") or "")]
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                       "function": {"name": function["name"], "arguments": ""}}]})
        arguments = function["arguments"]
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": arguments[start:start + 16]}}]}
                   for start in range(0, len(arguments), 16)]
    events = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if "usage" in answer:
        events.append({**base, "choices": [], "usage": answer["usage"]})
    pause = delay / (len(events) - 1)
    if cut:
        events = events[:max(1, len(events) // 2)]

    def generate():
        for index, event in enumerate(events):
            if index and pause:
                time.sleep(pause)
            yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
        if not cut:
            yield "data: [DONE]\n\n"

    return Response(generate(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@bp.post("/chat/completions")
def chat():
    body = json_body()
    text = last_user_text(body.get("messages"))
    streaming = body.get("stream") is True and "no_stream" not in markers_in(text)
    markers = honour(text, sleep=not streaming)
    model = require_model(body)
    messages = require_messages(body)
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise RequestInvalid("max_tokens must be a positive integer")
    message, finish_reason = chat_message(body, messages, max_tokens)
    answer = completion(model, message, finish_reason)
    if "usage" in markers:
        answer["usage"] = usage_of(messages, message)
    if streaming:
        delay = min(markers.slow_seconds or 0, current_app.config["SANDBOX_TIMEOUT_CAP"])
        return streamed(answer, delay, cut="stream_cut" in markers)
    return answer


def markers_in(text: str) -> Markers:
    try:
        return find_markers(text)
    except MarkerError:
        return Markers()  # honour() refuses them


SORA_SECONDS = re.compile(r"(\d+)s\b")


@bp.post("/sora/chat/completions")
def sora():
    body = json_body()
    markers = honour(last_user_text(body.get("messages")))
    model = require_model(body)
    messages = require_messages(body)
    prompt = strip_markers(last_user_text(messages)) or "untitled"
    lowered = model.lower()
    portrait, landscape = "portrait" in lowered, "landscape" in lowered
    if "video" in lowered or "sora-2" in lowered:
        seconds = SORA_SECONDS.search(lowered)
        ratio = (9, 16) if portrait else (16, 9)
        url = markers.result_url or file_url(_sandbox().media.video(
            duration=int(seconds.group(1)) if seconds else 5, ratio=ratio))
        content = f'<video controls src="{url}"></video>'
    else:
        ratio = (9, 16) if portrait else (16, 9) if landscape else (1, 1)
        url = markers.result_url or file_url(_sandbox().media.image(
            model=model, prompt=prompt, size=media.fit(ratio, 512), index=0, count=1, ratio=ratio))
        content = f'<img src="{url}">'
    return completion(model, content)


@bp.post("/midjourney/imagine")
def midjourney_imagine():
    body = json_body()
    markers = honour(body.get("prompt"))
    prompt = require_text(body, "prompt")
    task_id = _sandbox().tasks.imagine(strip_markers(prompt), will_fail="task_fail" in markers,
                                       result_url=markers.result_url)
    return {"success": True, "taskId": task_id}


@bp.post("/midjourney/action")
def midjourney_action():
    body = json_body()
    message_id, custom_id = body.get("messageId"), body.get("customId")
    if not isinstance(message_id, str) or not isinstance(custom_id, str):
        raise RequestInvalid("messageId and customId are required")
    try:
        task_id = _sandbox().tasks.act(message_id, custom_id)
    except (UnknownTask, InvalidAction) as error:
        raise RequestInvalid(str(error.args[0])) from None
    return {"success": True, "taskId": task_id}


@bp.get("/midjourney/task/<task_id>")
def midjourney_task(task_id: str):
    try:
        task, status, progress = _sandbox().tasks.poll(task_id)
    except UnknownTask:
        return error_response(404, f"unknown task {task_id!r}", "not_found")
    image_url = None
    if status == "SUCCESS":
        image_url = task.result_url
        if not image_url:
            store = _sandbox().media
            label = f"{task.action.lower()} {task.index}" if task.index else task.action.lower()
            if task.is_grid:
                name = store.grid(key=task.id, prompt=task.prompt, ratio=task.ratio, label=label)
            else:
                name = store.single(key=task.id, prompt=task.prompt, ratio=task.ratio, label=label)
            image_url = file_url(name)
    return {
        "taskId": task.id,
        "action": task.action,
        "prompt": task.prompt,
        "status": status,
        "progress": progress,
        "imageUrl": image_url,
        "buttons": task.buttons if status == "SUCCESS" else [],
        "failReason": "sandbox: task failed as asked by [sandbox:task_fail]" if status == "FAILURE" else None,
    }
