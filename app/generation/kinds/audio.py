"""Speech: the gateway answers the audio's URL (in either of its two shapes); it is stored in the format
the client asked for (transcode.py); billed by characters read."""
from __future__ import annotations

from app.catalog import pricing
from app.gateway import client as gateway
from app.generation import transcode

FORWARDED = ("model", "input", "voice", "speed")


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    items = gateway.result_urls(answer.body)
    if not items:
        raise gateway.UpstreamFailed("The AI gateway answered without a result.", code="upstream_bad_response")
    wanted = generation.params.get("response_format")
    if wanted:
        generation.results = store(items, convert=lambda data, content_type:
                                   transcode.to_format(data, content_type, wanted))
    else:
        generation.results = store(items)
    return pricing.Usage(characters=len(str(generation.params.get("input") or "")))
