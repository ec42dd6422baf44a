"""Sora's route: an OpenAI chat request whose one answer holds HTML (`<video src="…">` or `<img src="…">`)
naming the result. Image and video models on this route share it."""
from __future__ import annotations

import re

from app.gateway import client as gateway

ROUTE = "/sora/chat/completions"
_SOURCE = re.compile(r"""<(?:video|img|source)\b[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def payload(params: dict) -> dict:
    text = params.get("prompt") or ""
    return {"model": params["model"], "messages": [{"role": "user", "content": text}], "stream": True}


def result_items(body: dict) -> list[dict]:
    choices = body.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
        else None
    content = message.get("content") if isinstance(message, dict) else None
    found = _SOURCE.findall(content) if isinstance(content, str) else []
    if not found:
        raise gateway.UpstreamFailed("The AI gateway answered without a result.", code="upstream_bad_response")
    return [{"url": url} for url in found[:1]]
