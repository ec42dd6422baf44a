"""Chat: the gateway answers an OpenAI completion, usually without `usage`; we count tokens then.
A gateway that streams sends chunks instead; `Assembly` puts them back into the same completion."""
from __future__ import annotations

import json

from app.catalog import pricing
from app.gateway import client as gateway

# What the gateway may honour. Accepted but kept here: what concerns us or an OpenAI account alone (user,
# metadata, store, service_tier, prompt caching, safety_identifier, moderation) and what we do not price
# (web_search_options).
FORWARDED = ("model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
             "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "response_format",
             "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "reasoning_effort",
             "verbosity", "prediction")
# Added when our client streams: a gateway that can stream does, and reports usage at the end.
STREAM = {"stream": True, "stream_options": {"include_usage": True}}


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    body = answer.body
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise gateway.UpstreamFailed("The AI gateway answered without a completion.", code="upstream_bad_response")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    tool_calls = _tool_calls(message.get("tool_calls"))
    function_call = _function(message.get("function_call"))
    content = message.get("content") if isinstance(message.get("content"), str) else None
    if content is None and not tool_calls and function_call is None:
        content = ""
    reported = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    # Upstream usage when given; else our own count (pricing.count_tokens: CJK one token per character).
    input_tokens = _count(reported.get("prompt_tokens"))
    output_tokens = _count(reported.get("completion_tokens"))
    if input_tokens is None:
        input_tokens = pricing.prompt_tokens(generation.params)
    if output_tokens is None:
        output_tokens = pricing.count_tokens(content or "") + pricing.tool_call_tokens(tool_calls, function_call)
    finish_reason = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    if finish_reason is None and not body.get("incomplete"):  # a stream cut short keeps no finish_reason
        finish_reason = "tool_calls" if tool_calls else "function_call" if function_call else "stop"
    output = {"content": content, "finish_reason": finish_reason,
              "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                        "total_tokens": input_tokens + output_tokens,
                        "source": "upstream" if reported else "counted"}}
    if tool_calls:
        output["tool_calls"] = tool_calls
    if function_call is not None:
        output["function_call"] = function_call
    if isinstance(message.get("refusal"), str):
        output["refusal"] = message["refusal"]
    if isinstance(choice.get("logprobs"), dict):
        output["logprobs"] = choice["logprobs"]
    generation.output = output
    return pricing.Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _function(value) -> dict | None:
    """A function call as OpenAI shapes it: a name and its arguments as JSON text."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments")
    if not isinstance(arguments, str):  # some gateways send the arguments as an object
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    return {"name": value["name"], "arguments": arguments}


def _tool_calls(value) -> list[dict]:
    calls = []
    for index, call in enumerate(value if isinstance(value, list) else []):
        function = _function(call.get("function")) if isinstance(call, dict) else None
        if function is not None:
            call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else f"call_{index}"
            calls.append({"id": call_id, "type": "function", "function": function})
    return calls


class Assembly:
    """A streamed completion put back together from its chunks, for `collect` to read as a whole one."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict] = {}
        self.function_call: dict | None = None
        self.logprobs: list = []
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def add(self, chunk: dict) -> None:
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") if isinstance(chunk.get("choices"), list) else []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # we ask for one choice (n = 1)
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if isinstance(delta.get("content"), str):
                self.content.append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                self.refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") if isinstance(delta.get("tool_calls"), list) else []:
                if isinstance(call, dict):
                    index = call.get("index") if isinstance(call.get("index"), int) else 0
                    slot = self.tool_calls.setdefault(index, {"id": None, "function": {}})
                    slot["id"] = call.get("id") or slot["id"]
                    _extend(slot["function"], call.get("function"))
            if isinstance(delta.get("function_call"), dict):
                self.function_call = self.function_call or {}
                _extend(self.function_call, delta["function_call"])
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                self.logprobs += logprobs["content"]
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def body(self) -> dict:
        calls = [self.tool_calls[index] for index in sorted(self.tool_calls)]
        message = {"role": "assistant", "content": "".join(self.content) if self.content or not calls else None,
                   "tool_calls": calls, "function_call": self.function_call}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason,
                  "logprobs": {"content": self.logprobs} if self.logprobs else None}
        body = {"choices": [choice]}
        if self.usage is not None:
            body["usage"] = self.usage
        if not self.finished:
            body["incomplete"] = True
        return body


def _extend(function: dict, delta) -> None:
    """Stream deltas send a call's name and arguments in pieces; join them."""
    if isinstance(delta, dict):
        for key in ("name", "arguments"):
            if isinstance(delta.get(key), str):
                function[key] = function.get(key, "") + delta[key]
