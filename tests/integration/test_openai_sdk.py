"""The official `openai` package against a live server: what a tenant's app written for OpenAI sees.

The server is the test app on a real port (werkzeug, threaded); it still calls the in-process sandbox
gateway, so no other process is involved. Every test ends with a sound ledger.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import jsonschema
import openai
import pytest
import requests
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.extensions import db
from app.identity import tenants
from tests.conftest import TEST_ACTOR

IMAGE = "doubao-seedream-4-0-250828"   # PER_IMAGE: 20 credits per image
SPEECH = "speech-2.6-hd"               # PER_CHARACTER: 20 per 1000 characters, minimum 1
CHAT = "gemini-2.5-pro"                # PER_TOKEN: 2 in / 8 out per 1k


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def sdk(live_server: str, api_key: str) -> OpenAI:
    return OpenAI(base_url=f"{live_server}/api/v1", api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture
def oai(live_server, acme) -> OpenAI:
    return sdk(live_server, acme.api_key_plaintext)


@pytest.fixture(autouse=True)
def ledger_stays_sound(app):
    yield
    db.session.rollback()  # read what the server's threads committed
    assert ledger.verify() == []


def credits(created) -> tuple[int, int]:
    db.session.rollback()
    account = ledger.account(created.tenant.id)
    return account.balance, account.held


def test_models_list_has_the_seeded_models(oai):
    ids = {model.id for model in oai.models.list()}
    assert {IMAGE, SPEECH, CHAT, "gemini-3-pro-preview", "MiniMax-Hailuo-2.3"} <= ids


def test_chat_completion_answers_content_and_usage_and_charges_by_tokens(oai, acme):
    completion = oai.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "What is a fox?"}], max_tokens=200)
    assert completion.object == "chat.completion" and completion.model == CHAT
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content.startswith("Sandbox answer to: What is a fox?")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    charged = -(-(usage.prompt_tokens * 2 + usage.completion_tokens * 8) // 1000)
    assert credits(acme) == (1000 - charged, 0)


def test_streamed_chat_assembles_the_same_text_and_ends_with_usage(oai, acme):
    messages = [{"role": "user", "content": "讲一个关于狐狸的故事"}]
    whole = oai.chat.completions.create(model=CHAT, messages=messages)
    chunks = list(oai.chat.completions.create(model=CHAT, messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) > 1
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    final = chunks[-1]
    assert final.choices == [] and final.usage.total_tokens == whole.usage.total_tokens
    spent = 2 * -(-(whole.usage.prompt_tokens * 2 + whole.usage.completion_tokens * 8) // 1000)
    assert credits(acme) == (1000 - spent, 0)


def test_streamed_chat_without_include_usage_has_no_usage_chunk(oai):
    chunks = list(oai.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert chunks and all(chunk.choices and chunk.usage is None for chunk in chunks)


def test_generated_image_url_serves_the_png(oai, acme):
    result = oai.images.generate(model=IMAGE, prompt="a red fox in snow", size="1024x1024", n=1)
    assert len(result.data) == 1
    picture = requests.get(result.data[0].url, timeout=10)
    assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert credits(acme) == (980, 0)


def test_generated_image_as_b64_json_decodes_to_png(oai, acme):
    result = oai.images.generate(model=IMAGE, prompt="two foxes", n=2, response_format="b64_json")
    assert len(result.data) == 2
    assert all(base64.b64decode(item.b64_json).startswith(b"\x89PNG\r\n\x1a\n") for item in result.data)
    assert credits(acme) == (960, 0)


def test_speech_returns_a_wav_the_length_of_the_input(oai, acme):
    speech = oai.audio.speech.create(model=SPEECH, voice="alloy", input="Hello from the fox, " * 5,
                                        response_format="wav")
    audio = speech.content
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    with wave.open(io.BytesIO(audio)) as clip:
        assert clip.getnframes() / clip.getframerate() > 1.0  # 100 characters × 60 ms, less the framing
    assert credits(acme) == (980, 0)  # one started block of 1000 characters


def test_a_retried_request_with_its_idempotency_key_is_charged_once(oai, acme):
    headers = {"Idempotency-Key": "sdk-order-7"}
    first = oai.images.generate(model=IMAGE, prompt="one fox", extra_headers=headers)
    again = oai.images.generate(model=IMAGE, prompt="one fox", extra_headers=headers)
    assert first.model_extra["generation_id"] == again.model_extra["generation_id"]
    assert credits(acme) == (980, 0)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                                    "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                   "required": ["city", "unit", "days"], "additionalProperties": False}}}
QUESTION = [{"role": "user", "content": "What is the weather in Paris this week?"}]


class Forecast(BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"]
    highs: list[int]
    rain: bool | None


def charged_for(usage) -> int:
    return -(-(usage.prompt_tokens * 2 + usage.completion_tokens * 8) // 1000)


def test_tool_calling_round_trip_with_the_sdk(oai, acme):
    first = oai.chat.completions.create(model=CHAT, messages=QUESTION, tools=[WEATHER], tool_choice="auto",
                                        parallel_tool_calls=False, seed=7, temperature=0)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    answer = oai.chat.completions.create(model=CHAT, tools=[WEATHER], messages=[
        *QUESTION, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"highs": [21, 23]}'}])
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content
    assert credits(acme) == (1000 - charged_for(first.usage) - charged_for(answer.usage), 0)


def test_structured_output_parses_into_the_model_with_the_sdk(oai, acme):
    completion = oai.chat.completions.parse(model=CHAT, messages=QUESTION, response_format=Forecast)
    forecast = completion.choices[0].message.parsed
    assert isinstance(forecast, Forecast) and forecast.unit == "celsius" and forecast.highs
    assert credits(acme) == (1000 - charged_for(completion.usage), 0)


def test_async_client_with_tools_structured_output_and_a_streamed_tool_call(live_server, acme):
    async def scenario():
        client = AsyncOpenAI(base_url=f"{live_server}/api/v1", api_key=acme.api_key_plaintext, max_retries=0,
                             timeout=30)
        called = await client.chat.completions.create(model=CHAT, messages=QUESTION, tools=[WEATHER],
                                                      tool_choice={"type": "function",
                                                                   "function": {"name": "get_weather"}})
        parsed = await client.chat.completions.parse(model=CHAT, messages=QUESTION, response_format=Forecast,
                                                     presence_penalty=0.1, frequency_penalty=0.1,
                                                     metadata={"app": "tests"}, store=False)
        async with client.chat.completions.stream(model=CHAT, messages=QUESTION, tools=[WEATHER]) as stream:
            async for _ in stream:
                pass
            streamed = await stream.get_final_completion()
        await client.close()
        return called, parsed, streamed

    # A thread of its own: a browser test earlier in the run may have left an event loop in this one.
    with ThreadPoolExecutor(1) as thread:
        called, parsed, streamed = thread.submit(asyncio.run, scenario()).result()
    call = called.choices[0].message.tool_calls[0]
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    assert isinstance(parsed.choices[0].message.parsed, Forecast)
    streamed_call = streamed.choices[0].message.tool_calls[0]
    assert (streamed_call.id, streamed_call.function.arguments) == (call.id, call.function.arguments)
    assert streamed.choices[0].finish_reason == "tool_calls"
    spent = charged_for(called.usage) + charged_for(parsed.usage)
    balance, held = credits(acme)
    assert held == 0 and balance < 1000 - spent  # the stream was charged too


def test_a_stream_the_gateway_breaks_off_raises_in_the_sdk_and_charges_nothing(oai, acme):
    with pytest.raises(openai.APIError, match="ended before the answer did"):
        for _ in oai.chat.completions.create(model=CHAT, stream=True, messages=[
                {"role": "user", "content": "a long question to cut short [sandbox:stream_cut]"}]):
            pass
    assert credits(acme) == (1000, 0)


def test_insufficient_credits_is_a_402_status_error(live_server, make):
    catalog.seed_catalog(TEST_ACTOR)
    poor = make.tenant("Poor")
    billing.recharge(poor.tenant.id, 19, TEST_ACTOR)
    with pytest.raises(openai.APIStatusError) as raised:
        sdk(live_server, poor.api_key_plaintext).images.generate(model=IMAGE, prompt="a fox")
    assert raised.value.status_code == 402 and raised.value.code == "insufficient_credits"
    assert credits(poor) == (19, 0)


def test_unknown_model_is_not_found(oai, acme):
    with pytest.raises(openai.NotFoundError) as raised:
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "model_not_found"
    assert credits(acme) == (1000, 0)


def test_a_bad_key_is_an_authentication_error(live_server, acme):
    with pytest.raises(openai.AuthenticationError):
        sdk(live_server, "wk_live_" + "x" * 40).models.list()
    with pytest.raises(openai.AuthenticationError):
        sdk(live_server, "wk_live_" + "x" * 40).images.generate(model=IMAGE, prompt="a fox")
    assert credits(acme) == (1000, 0)


def test_a_model_not_enabled_is_permission_denied(oai, acme):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"enabled_models": [CHAT]})
    with pytest.raises(openai.PermissionDeniedError) as raised:
        oai.images.generate(model=IMAGE, prompt="a fox")
    assert raised.value.code == "model_not_enabled"
    assert IMAGE not in {model.id for model in oai.models.list()}
    assert credits(acme) == (1000, 0)


@pytest.mark.parametrize("marker,error,status,code", [
    ("[sandbox:reject]", openai.BadRequestError, 400, "upstream_rejected"),
    ("[sandbox:fail]", openai.InternalServerError, 502, "upstream_error"),
    ("[sandbox:deny]", openai.InternalServerError, 502, "upstream_auth_failed"),
])
def test_gateway_failures_map_to_sdk_exceptions_and_charge_nothing(oai, acme, marker, error, status, code):
    with pytest.raises(error) as raised:
        oai.images.generate(model=IMAGE, prompt=f"a fox {marker}")
    assert raised.value.status_code == status and raised.value.code == code
    with pytest.raises(error):
        oai.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": f"hi {marker}"}])
    assert credits(acme) == (1000, 0)


def test_every_model_has_its_creation_time_as_unix_seconds(oai):
    models = list(oai.models.list())
    assert models and all(isinstance(model.created, int) and model.created > 0 for model in models)


def test_models_retrieve_answers_one_model_and_404_for_an_unknown_one(oai):
    model = oai.models.retrieve(IMAGE)
    assert model.id == IMAGE and model.object == "model" and model.owned_by == "Doubao"
    assert isinstance(model.created, int) and model.model_extra["kind"] == "image"
    with pytest.raises(openai.NotFoundError) as raised:
        oai.models.retrieve("no-such-model")
    assert raised.value.code == "model_not_found"


def test_an_openai_size_is_drawn_in_its_shape_and_the_answer_says_what_it_cost(oai, acme):
    result = oai.images.generate(model=IMAGE, prompt="a wide fox", size="1792x1024")
    picture = requests.get(result.data[0].url, timeout=10).content
    width, height = int.from_bytes(picture[16:20], "big"), int.from_bytes(picture[20:24], "big")
    assert (width, height) == (768, 432)  # 16:9 at the sandbox's 2K
    assert result.usage.model_extra == {"images": 1, "credits": 20}
    assert credits(acme) == (980, 0)


def test_a_size_the_api_cannot_map_is_a_bad_request(oai, acme):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.images.generate(model=IMAGE, prompt="a fox", size="4K")
    assert raised.value.code == "invalid_size" and "1792x1024" in raised.value.message
    assert credits(acme) == (1000, 0)


def test_chat_usage_carries_the_credits_charged(oai, acme):
    completion = oai.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    assert completion.usage.model_extra["credits"] == 1000 - credits(acme)[0] > 0


@pytest.mark.parametrize("response_format,magic", [("mp3", (b"ID3", b"\xff\xf3", b"\xff\xfb")), ("flac", (b"fLaC",)),
                                                   ("opus", (b"OggS",))])
def test_speech_in_the_asked_format(oai, acme, response_format, magic):
    speech = oai.audio.speech.create(model=SPEECH, voice="alloy", input="Hello from the fox",
                                     response_format=response_format)
    assert speech.content.startswith(magic), speech.content[:12]
    assert speech.response.headers["Content-Type"] == {"mp3": "audio/mpeg", "flac": "audio/flac",
                                                       "opus": "audio/ogg"}[response_format]
    assert credits(acme) == (980, 0)
