"""One module per kind of generation. Each says what it forwards to the gateway (`payload`, or a
FORWARDED list), how the gateway's answer becomes results and billable usage (`collect`), and, when a
call is more than one request (Midjourney's submit and poll), how to make it (`call`). The gateway
route comes from the model (AiModel.route). A new kind is a new module here and a line in KINDS."""
from __future__ import annotations

from types import ModuleType

from app.core.errors import InvalidInput
from app.generation.kinds import audio, chat, image, midjourney, video

KINDS: dict[str, ModuleType] = {"image": image, "audio": audio, "chat": chat, "video": video,
                                "midjourney": midjourney}


def kind_of(name: str) -> ModuleType:
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(f"{name} models cannot be generated.", code="kind_not_supported") from None


def prepare(model, params: dict) -> dict:
    """The request as the price rule and the gateway will both see it: a kind may map OpenAI's fields
    to the gateway's (images: `size`). Kinds without a `prepare` are priced as sent."""
    kind = KINDS.get(model.kind)
    return kind.prepare(model, params) if hasattr(kind, "prepare") else params


def payload(kind: ModuleType, params: dict, route: str) -> dict:
    """What goes to the gateway on `route`; everything else in the request is ours (n, response_format…)."""
    if hasattr(kind, "payload"):
        return kind.payload(params, route)
    return {name: value for name, value in params.items() if name in kind.FORWARDED and value is not None}
