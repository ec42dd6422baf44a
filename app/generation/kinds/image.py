"""Images: the gateway answers result URLs; each image is stored and counted."""
from __future__ import annotations

from app.catalog import pricing
from app.gateway import client as gateway

UPSTREAM_PATH = "/images/generations"
FORWARDED = ("model", "prompt", "size", "image_size", "reference_images", "max_images", "use_intl")


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    items = gateway.result_urls(answer.body)
    if not items:
        raise gateway.UpstreamFailed("The AI gateway answered without a result.", code="upstream_bad_response")
    generation.results = store(items)
    return pricing.Usage(images=len(items))
