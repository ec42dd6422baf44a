"""Speech: the gateway answers the audio's URL (in either of its two shapes); billed by characters read."""
from __future__ import annotations

from app.catalog import pricing
from app.gateway import client as gateway

UPSTREAM_PATH = "/audio/speech"
FORWARDED = ("model", "input", "voice", "speed")


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    items = gateway.result_urls(answer.body)
    if not items:
        raise gateway.UpstreamFailed("The AI gateway answered without a result.", code="upstream_bad_response")
    generation.results = store(items)
    return pricing.Usage(characters=len(str(generation.params.get("input") or "")))
