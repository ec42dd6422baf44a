"""Chat requests as OpenAI clients send them (LangChain's bind_tools and with_structured_output,
LiteLLM's defaults): OpenAI's whole request is accepted, what the gateway may honour is forwarded, and
only what is truly wrong is refused. Tool calls and structured output are stored and billed."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.catalog import pricing
from app.extensions import db
from app.gateway import sandbox as sandbox_link
from app.models import Generation
from tests.conftest import assert_error, key_headers

CHAT = "gemini-2.5-pro"   # PER_TOKEN: 2 in / 8 out per 1k
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
HI = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


@pytest.fixture
def sent_to_gateway(monkeypatch):
    """The JSON bodies the (in-process) gateway received, read off the wire."""
    bodies = []
    send = sandbox_link.WSGIAdapter.send

    def recording(self, request, **kwargs):
        if request.body:
            bodies.append(json.loads(request.body))
        return send(self, request, **kwargs)

    monkeypatch.setattr(sandbox_link.WSGIAdapter, "send", recording)
    return bodies


def chat(client, created, **body):
    return client.post("/api/v1/chat/completions", headers=key_headers(created),
                       json={"model": CHAT, "messages": HI, **body})


FORWARDED = [
    {"seed": 7},
    {"presence_penalty": 0.5},
    {"frequency_penalty": -1},
    {"logit_bias": {"50256": -100}},
    {"logprobs": True, "top_logprobs": 2},
    {"response_format": {"type": "json_object"}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
        "additionalProperties": False}}}},
    {"tools": [WEATHER]},
    {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
     "parallel_tool_calls": False},
    {"tools": [WEATHER], "tool_choice": "none"},
    {"functions": [WEATHER["function"]], "function_call": "auto"},
    {"reasoning_effort": "low"},
    {"verbosity": "low"},
    {"prediction": {"type": "content", "content": "Sunny"}},
    {"max_completion_tokens": 200},
    {"stop": ["\n\n", "END"]},
]
KEPT = [
    {"metadata": {"team": "search"}},
    {"store": False},
    {"service_tier": "auto"},
    {"user": "end-user-7"},
    {"safety_identifier": "4f1c"},
    {"prompt_cache_key": "weather"},
    {"prompt_cache_retention": "24h"},
    {"web_search_options": {}},
    {"modalities": ["text"]},
    {"stream_options": {"include_usage": True}},
    {"n": 1, "temperature": None, "stream": False},
]


@pytest.mark.parametrize("fields", FORWARDED, ids=lambda fields: "+".join(fields))
def test_fields_the_gateway_may_honour_are_accepted_and_forwarded(client, acme, sent_to_gateway, fields):
    response = chat(client, acme, **fields)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["object"] == "chat.completion"
    assert {name: sent_to_gateway[-1].get(name) for name in fields} == fields


@pytest.mark.parametrize("fields", KEPT, ids=lambda fields: "+".join(fields))
def test_fields_that_are_ours_or_openais_alone_are_accepted_and_not_forwarded(client, acme, sent_to_gateway, fields):
    response = chat(client, acme, **fields)
    assert response.status_code == 200, response.get_json()
    assert not set(fields) & set(sent_to_gateway[-1])


@pytest.mark.parametrize("fields, param", [
    ({"n": 2}, "n"),
    ({"temperature": "hot"}, "temperature"),
    ({"seed": 1.5}, "seed"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"logit_bias": {"50256": 101}}, "logit_bias"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"tools": [{"type": "retrieval"}]}, "tools.0"),
    ({"tools": [{"type": "function", "function": {"name": "has spaces"}}]}, "tools.0.function.function.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
     "response_format.json_schema.json_schema.name"),
    ({"modalities": ["text", "audio"]}, "modalities.1"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"service_tier": "cheapest"}, "service_tier"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"max_token": 10}, "max_token"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
])
def test_what_is_truly_wrong_is_still_refused_and_changes_nothing(client, acme, fields, param):
    error = assert_error(chat(client, acme, **fields), 400, "invalid_request")
    assert error["param"] == param
    assert ledger.account(acme.tenant.id).balance == 1000
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0


def test_a_tool_call_is_answered_stored_and_billed_by_its_arguments(client, acme):
    response = chat(client, acme, tools=[WEATHER])
    body = response.get_json()
    assert response.status_code == 200, body
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    assert set(arguments) == {"city", "unit"} and arguments["unit"] == "celsius"
    # The gateway reports no usage: the prompt counts the tool's definition, the output the call it wrote.
    usage = body["usage"]
    assert usage["completion_tokens"] == pricing.count_tokens("get_weather") + pricing.count_tokens(
        call["function"]["arguments"]) > 0
    assert usage["prompt_tokens"] == pricing.message_tokens(HI) + pricing.count_tokens(
        json.dumps([WEATHER], separators=(",", ":")))
    charged = -(-(usage["prompt_tokens"] * 2 + usage["completion_tokens"] * 8) // 1000)
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (1000 - charged, 0)
    stored = client.get(f"/api/v1/generations/{body['id'].removeprefix('chatcmpl-')}", headers=key_headers(acme))
    output = stored.get_json()["output"]
    assert output["content"] is None and output["tool_calls"] == [call] and output["finish_reason"] == "tool_calls"


def test_the_tool_result_round_trip_is_accepted_and_answered_in_words(client, acme):
    first = chat(client, acme, tools=[WEATHER]).get_json()["choices"][0]["message"]
    messages = [*HI, first, {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "Sunny, 21°C"}]
    response = chat(client, acme, tools=[WEATHER], messages=messages)
    assert response.status_code == 200, response.get_json()
    choice = response.get_json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"].startswith("Sandbox answer")


def test_structured_output_answers_an_instance_of_the_schema(client, acme):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "integer",
                                                                                     "minimum": -50}},
              "required": ["city", "celsius"], "additionalProperties": False}
    response = chat(client, acme, response_format={"type": "json_schema",
                                                   "json_schema": {"name": "weather", "schema": schema}})
    content = json.loads(response.get_json()["choices"][0]["message"]["content"])
    assert set(content) == {"city", "celsius"} and isinstance(content["celsius"], int)
