"""Videos: the gateway blocks up to ~20 minutes and answers the MP4's URL (and maybe its duration); the
file is copied into storage, its first frame becomes a thumbnail, and billing uses the duration the file
really has (rounded up to whole seconds; the requested one when the file cannot be read), never more than
was held. Also the upscale and commercial routes, and Sora's."""
from __future__ import annotations

import math

from app.catalog import pricing
from app.core.errors import InvalidInput
from app.gateway import client as gateway
from app.generation import media
from app.generation.kinds import sora

# Vendor extras pass through untouched (docs/gateway-contract.md).
EXTRAS = ("mode", "style", "subjects", "audio", "voice_id", "bgm", "movement_amplitude", "enable_upsample",
          "enhance_prompt", "replace_image_url", "replace_video_url")
FORWARDED = {
    "/videos/generations": ("model", "prompt", "duration", "aspect_ratio", "resolution", "reference_images", "image",
                            *EXTRAS),
    "/videos/upscale": ("model", "video_url", "upscale_resolution"),
    "/videos/commercial": ("model", "images", "prompt", "duration", "ratio", "language"),
}


# Our endpoint for each of the gateway's video routes, for a model sent to the wrong one.
ENDPOINTS = {"/videos/generations": "POST /api/v1/videos/generations (or /api/v1/videos)",
             sora.ROUTE: "POST /api/v1/videos/generations (or /api/v1/videos)",
             "/videos/upscale": "POST /api/v1/videos/upscale", "/videos/commercial": "POST /api/v1/videos/commercial"}


def prepare(model, params: dict) -> dict:
    """A duration or resolution the model does not offer is refused here, before anything is held,
    rather than priced at a neighbouring tier and answered with a clip of another length."""
    capabilities = model.capabilities or {}
    for param, offered_key, unit in (("duration", "durations", " s"), ("resolution", "resolutions", "")):
        offered, value = capabilities.get(offered_key) or [], params.get(param)
        if value is None or not offered:
            continue
        if not any(_same(value, choice) for choice in offered):
            listed = ", ".join(f"{choice}{unit}" for choice in offered)
            raise InvalidInput(f"{model.model_id} offers {param} {listed}; {value!r} is not one of them.",
                               param=param, code=f"invalid_{param}")
    return params


def _same(value, choice) -> bool:
    if isinstance(choice, (int, float)) and not isinstance(value, bool):
        try:
            return float(value) == float(choice)
        except (TypeError, ValueError):
            return False
    return str(value).lower() == str(choice).lower()


def payload(params: dict, route: str) -> dict:
    if route == sora.ROUTE:
        return sora.payload(params)
    forwarded = FORWARDED.get(route, FORWARDED["/videos/generations"])
    return {name: value for name, value in params.items() if name in forwarded and value is not None}


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    items = sora.result_items(answer.body) if store.route == sora.ROUTE else gateway.result_urls(answer.body)
    if not items:
        raise gateway.UpstreamFailed("The AI gateway answered without a video.", code="upstream_bad_response")
    generation.results = store(items[:1])
    facts = media.inspect_video(store.data[0])
    if facts.thumbnail:
        store.keep(facts.thumbnail, "image/jpeg", variant="thumbnail")
    reported = items[0].get("duration")
    seconds = facts.seconds or (reported if isinstance(reported, (int, float)) and reported > 0 else None)
    generation.output = {"duration": seconds, "size": facts.size, "width": facts.width, "height": facts.height,
                         "file_size": store.sizes[0]}
    # The duration the file really has, in whole seconds; None lets pricing use the requested one.
    return pricing.Usage(seconds=math.ceil(seconds - 1e-6) if seconds else None)
