"""Chat: OpenAI chat.completion without usage, deterministic; streamed as server-sent events when asked;
tools and structured output answered with instances of their schemas; Sora answers HTML."""
import json
import re
import time

import jsonschema
import pytest

from tests.sandbox.conftest import fetch, post


def chat(sandbox_client, content, path="/v1/chat/completions", **extra):
    body = {"model": "gemini-2.5-pro", "messages": [{"role": "system", "content": "be brief"},
                                                    {"role": "user", "content": content}], **extra}
    return post(sandbox_client, path, body)


def test_answers_a_chat_completion_without_usage(sandbox_client):
    response = chat(sandbox_client, "What is the sandbox?")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gemini-2.5-pro"
    assert "usage" not in body
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("Sandbox answer to: What is the sandbox?")
    assert choice["finish_reason"] == "stop"


def test_the_answer_is_deterministic_and_follows_the_last_user_message(sandbox_client):
    first = chat(sandbox_client, "tell me a joke").get_json()["choices"][0]["message"]["content"]
    again = chat(sandbox_client, "tell me a joke").get_json()["choices"][0]["message"]["content"]
    assert first == again
    body = {"model": "gemini-2.5-pro", "messages": [
        {"role": "user", "content": "first question"}, {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]}]}
    content = post(sandbox_client, "/v1/chat/completions", body).get_json()["choices"][0]["message"]["content"]
    assert content.startswith("Sandbox answer to: second question")


def events(response) -> list:
    """The data of each server-sent event; the last is the string "[DONE]"."""
    data = [line[len("data: "):] for line in response.get_data(as_text=True).split("\n") if line.startswith("data: ")]
    return [json.loads(item) if item != "[DONE]" else item for item in data]


def test_stream_true_answers_server_sent_chunks_of_the_same_answer(sandbox_client):
    whole = chat(sandbox_client, "hello there").get_json()["choices"][0]["message"]["content"]
    response = chat(sandbox_client, "hello there", stream=True)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    received = events(response)
    assert received[-1] == "[DONE]"
    chunks = received[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == whole
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) > 3
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert all("usage" not in chunk for chunk in chunks)


def test_no_stream_marker_answers_one_json_completion_as_the_deployed_gateway(sandbox_client):
    response = chat(sandbox_client, "hello [sandbox:no_stream]", stream=True)
    assert response.mimetype == "application/json"
    assert response.get_json()["object"] == "chat.completion"


def test_usage_marker_reports_usage_whole_and_at_the_end_of_a_stream(sandbox_client):
    usage = chat(sandbox_client, "one two [sandbox:usage]").get_json()["usage"]
    assert usage["prompt_tokens"] == 2 + 4 + 2 + 4 and usage["total_tokens"] > usage["prompt_tokens"]
    last = events(chat(sandbox_client, "one two [sandbox:usage]", stream=True))[-2]
    assert last["choices"] == [] and last["usage"] == usage


def test_slow_is_spread_across_a_stream_first_chunk_at_once(sandbox_client):
    began = time.monotonic()
    response = chat(sandbox_client, "a long enough question to stream [sandbox:slow=0.6]", stream=True)
    pieces = iter(response.response)
    next(pieces)
    first = time.monotonic() - began
    list(pieces)
    assert first < (time.monotonic() - began) / 2


def test_stream_cut_ends_halfway_without_finish_or_done(sandbox_client):
    received = events(chat(sandbox_client, "a question to cut short [sandbox:stream_cut]", stream=True))
    assert received and "[DONE]" not in received
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in received)


@pytest.mark.parametrize("marker, status", [("[sandbox:reject]", 400), ("[sandbox:fail]", 500),
                                            ("[sandbox:deny]", 401)])
def test_a_streamed_request_fails_with_its_status_before_any_event(sandbox_client, marker, status):
    response = chat(sandbox_client, f"hi {marker}", stream=True)
    assert response.status_code == status and response.mimetype == "application/json"


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string", "minLength": 2},
                                                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                                "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                                                "required": ["city", "unit", "days"],
                                                "additionalProperties": False}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def test_tools_get_a_deterministic_call_to_the_first_tool_with_valid_arguments(sandbox_client):
    response = chat(sandbox_client, "weather in Paris?", tools=[WEATHER, CLOCK])
    choice = response.get_json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and len(message["tool_calls"]) == 1
    call = message["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER["function"]["parameters"])
    again = chat(sandbox_client, "weather in Paris?", tools=[WEATHER, CLOCK]).get_json()["choices"][0]["message"]
    assert again["tool_calls"] == message["tool_calls"]


def test_tool_choice_is_honoured(sandbox_client):
    named = {"type": "function", "function": {"name": "get_time"}}
    call = chat(sandbox_client, "time?", tools=[WEATHER, CLOCK], tool_choice=named).get_json()["choices"][0]
    assert call["message"]["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}
    words = chat(sandbox_client, "time?", tools=[WEATHER, CLOCK], tool_choice="none").get_json()["choices"][0]
    assert words["finish_reason"] == "stop" and words["message"]["content"].startswith("Sandbox answer")
    missing = {"type": "function", "function": {"name": "nope"}}
    assert chat(sandbox_client, "x", tools=[WEATHER], tool_choice=missing).status_code == 400


def test_a_tool_result_is_answered_in_words_so_an_agent_loop_ends(sandbox_client):
    first = chat(sandbox_client, "weather?", tools=[WEATHER]).get_json()["choices"][0]["message"]
    body = {"model": "gemini-2.5-pro", "tools": [WEATHER], "messages": [
        {"role": "user", "content": "weather?"}, first,
        {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "sunny"}]}
    answer = post(sandbox_client, "/v1/chat/completions", body).get_json()["choices"][0]
    assert answer["finish_reason"] == "stop" and answer["message"]["content"]


def test_a_streamed_tool_call_arrives_in_pieces(sandbox_client):
    whole = chat(sandbox_client, "weather?", tools=[WEATHER]).get_json()["choices"][0]["message"]["tool_calls"][0]
    chunks = events(chat(sandbox_client, "weather?", tools=[WEATHER], stream=True))[:-1]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert calls[0]["id"] == whole["id"] and calls[0]["function"]["name"] == "get_weather"
    assert len(calls) > 2
    assert "".join(call["function"]["arguments"] for call in calls) == whole["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_json_object_format_answers_a_json_object(sandbox_client):
    content = chat(sandbox_client, "facts", response_format={"type": "json_object"}).get_json()[
        "choices"][0]["message"]["content"]
    assert json.loads(content)["answer"].startswith("Sandbox answer to: facts")


PERSON = {  # what pydantic makes of a model with a nested model, a list, an enum and an optional field
    "$defs": {"Pet": {"type": "object", "properties": {"name": {"type": "string"},
                                                       "kind": {"type": "string", "enum": ["cat", "dog"]}},
                      "required": ["name", "kind"], "additionalProperties": False}},
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 5},
        "age": {"type": "integer", "exclusiveMinimum": 17, "multipleOf": 5},
        "score": {"type": "number", "minimum": 0.5, "maximum": 1},
        "email": {"type": "string", "format": "email"},
        "born": {"type": "string", "format": "date"},
        "code": {"type": "string", "pattern": "^[A-Z]+$"},
        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}, "minItems": 2},
        "address": {"allOf": [{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}]},
        "admin": {"type": "boolean"},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "fixed": {"const": 42},
    },
    "required": ["name", "age", "score", "email", "born", "code", "nickname", "pets", "address", "admin", "tags",
                 "fixed"],
    "additionalProperties": False,
}


def test_json_schema_format_answers_an_instance_of_the_schema(sandbox_client):
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    content = chat(sandbox_client, "who?", response_format=response_format).get_json()["choices"][0]["message"][
        "content"]
    jsonschema.validate(json.loads(content), PERSON, format_checker=jsonschema.FormatChecker())
    assert chat(sandbox_client, "who?", response_format=response_format).get_json()["choices"][0]["message"][
        "content"] == content


@pytest.mark.parametrize("extra", [
    {"tools": "get_weather"},
    {"tools": [{"type": "function"}]},
    {"response_format": {"type": "xml"}},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/none"}}}},
])
def test_malformed_tools_and_formats_are_refused(sandbox_client, extra):
    assert chat(sandbox_client, "x", **extra).status_code == 400


@pytest.mark.parametrize("max_tokens, expected", [
    (3, "Sandbox answer to:"),
    (5, "Sandbox answer to: one two"),
])
def test_max_tokens_truncates_the_answer(sandbox_client, max_tokens, expected):
    choice = chat(sandbox_client, "one two three four", max_tokens=max_tokens).get_json()["choices"][0]
    assert choice["message"]["content"] == expected
    assert choice["finish_reason"] == "length"


def test_cjk_characters_count_one_token_each(sandbox_client):
    choice = chat(sandbox_client, "你好世界", max_tokens=5).get_json()["choices"][0]
    assert choice["message"]["content"] == "Sandbox answer to: 你好"


@pytest.mark.parametrize("body", [
    {"model": "gemini-2.5-pro"},
    {"model": "gemini-2.5-pro", "messages": []},
    {"model": "gemini-2.5-pro", "messages": [{"content": "no role"}]},
    {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": "hi"}]},
    {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
])
def test_invalid_chat_requests_are_refused(sandbox_client, body):
    response = post(sandbox_client, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"


@pytest.mark.parametrize("model, tag, content_type", [
    ("sora-video-landscape-10s", "video", "video/mp4"),
    ("sora-2", "video", "video/mp4"),
    ("sora-image", "img", "image/png"),
])
def test_sora_answers_html_with_a_real_file_behind_the_url(sandbox_client, model, tag, content_type):
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "a lighthouse"}]}
    response = post(sandbox_client, "/v1/sora/chat/completions", body)
    assert response.status_code == 200 and response.mimetype == "application/json"  # never streamed
    completion = response.get_json()
    assert completion["object"] == "chat.completion"
    content = completion["choices"][0]["message"]["content"]
    match = re.fullmatch(rf'<{tag}(?: controls)? src="([^"]+)">(?:</video>)?', content)
    assert match, content
    media = fetch(sandbox_client, match.group(1))
    assert media.status_code == 200
    assert media.mimetype == content_type


def test_sora_video_length_follows_the_model_name(sandbox_client):
    body = {"model": "sora-video-portrait-15s", "messages": [{"role": "user", "content": "x"}]}
    content = post(sandbox_client, "/v1/sora/chat/completions", body).get_json()["choices"][0]["message"]["content"]
    assert "video-9x16-15s.mp4" in content
