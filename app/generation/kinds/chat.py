"""Chat: the gateway answers an OpenAI completion, usually without `usage`; we count tokens then."""
from __future__ import annotations

from app.catalog import pricing
from app.gateway import client as gateway

UPSTREAM_PATH = "/chat/completions"
FORWARDED = ("model", "messages", "temperature", "max_tokens", "top_p", "stop")


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    body = answer.body
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise gateway.UpstreamFailed("The AI gateway answered without a completion.", code="upstream_bad_response")
    message = choices[0].get("message") or {}
    content = message.get("content") if isinstance(message.get("content"), str) else ""
    reported = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    # Upstream usage when given; else our own count (pricing.count_tokens: CJK one token per character).
    input_tokens = _count(reported.get("prompt_tokens"))
    output_tokens = _count(reported.get("completion_tokens"))
    if input_tokens is None:
        input_tokens = pricing.message_tokens(generation.params.get("messages"))
    if output_tokens is None:
        output_tokens = pricing.count_tokens(content)
    generation.output = {"content": content, "finish_reason": choices[0].get("finish_reason") or "stop",
                         "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                                   "total_tokens": input_tokens + output_tokens,
                                   "source": "upstream" if reported else "counted"}}
    return pricing.Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
