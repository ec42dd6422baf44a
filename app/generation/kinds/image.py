"""Images: OpenAI's `size` becomes the gateway's aspect ratio and resolution; the gateway answers result
URLs (or, on Sora's route, HTML naming one); each image is stored and counted."""
from __future__ import annotations

import re

from app.catalog import pricing
from app.core.errors import InvalidInput
from app.gateway import client as gateway
from app.generation.kinds import sora

FORWARDED = ("model", "prompt", "size", "image_size", "reference_images", "max_images", "use_intl")

# OpenAI's sizes as the gateway takes them: an aspect ratio (its `size`) and the smallest resolution
# that is not smaller than asked (its `image_size`). 1792x1024 is 7:4, sent as the nearest common 16:9.
OPENAI_SIZES = {"256x256": ("1:1", "1K"), "512x512": ("1:1", "1K"), "1024x1024": ("1:1", "1K"),
                "1536x1024": ("3:2", "2K"), "1024x1536": ("2:3", "2K"), "1792x1024": ("16:9", "2K"),
                "1024x1792": ("9:16", "2K"), "auto": (None, None)}
_RATIO = re.compile(r"[1-9][0-9]{0,2}:[1-9][0-9]{0,2}")


def prepare(model, params: dict) -> dict:
    """The request as both the gateway and the price rule see it, so the estimate prices the resolution
    the gateway is asked for. `size` is one of OPENAI_SIZES (or, as before, an aspect ratio such as
    '16:9'); anything else is refused here rather than upstream. `aspect_ratio` and `image_size`, when
    sent, win over what `size` implies and pass through as they are."""
    params = dict(params)
    size = params.pop("size", None)
    ratio, resolution = params.pop("aspect_ratio", None), params.get("image_size")
    if size is not None:
        text = size.strip().lower() if isinstance(size, str) else None
        if text in OPENAI_SIZES:
            implied_ratio, implied_resolution = OPENAI_SIZES[text]
        elif text and _RATIO.fullmatch(text):
            implied_ratio, implied_resolution = text, None
        else:
            raise InvalidInput(f"size must be one of {', '.join(OPENAI_SIZES)} (or an aspect ratio such as '16:9'); "
                               "for other shapes send aspect_ratio and image_size ('1K', '2K' or '4K').",
                               param="size", code="invalid_size")
        ratio = ratio or implied_ratio
        if resolution is None and implied_resolution:
            resolution = _offered(model, implied_resolution)
    if ratio:
        params["size"] = ratio
    if resolution:
        params["image_size"] = resolution
    return params


def _offered(model, wanted: str) -> str:
    """The model's smallest resolution not below `wanted`, else its largest (capabilities.image_sizes)."""
    offered = [(pricing.pixels(size), size) for size in (model.capabilities or {}).get("image_sizes") or []
               if isinstance(size, str) and pricing.pixels(size)]
    if not offered:
        return wanted
    enough = [entry for entry in offered if entry[0] >= pricing.pixels(wanted)]
    return min(enough)[1] if enough else max(offered)[1]


def payload(params: dict, route: str) -> dict:
    if route == sora.ROUTE:
        return sora.payload(params)
    return {name: value for name, value in params.items() if name in FORWARDED and value is not None}


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    items = sora.result_items(answer.body) if store.route == sora.ROUTE else gateway.result_urls(answer.body)
    if not items:
        raise gateway.UpstreamFailed("The AI gateway answered without a result.", code="upstream_bad_response")
    generation.results = store(items)
    return pricing.Usage(images=len(items))
