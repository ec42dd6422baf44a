"""One module per kind of generation. Each says which gateway route it calls, which of its params it
forwards, and how the gateway's answer becomes results and billable usage (`collect`). A new kind is
a new module here and a line in KINDS."""
from __future__ import annotations

from types import ModuleType

from app.core.errors import InvalidInput
from app.generation.kinds import audio, chat, image

KINDS: dict[str, ModuleType] = {"image": image, "audio": audio, "chat": chat}


def kind_of(name: str) -> ModuleType:
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(f"{name} models cannot be generated yet.", code="kind_not_supported") from None


def prepare(model, params: dict) -> dict:
    """The request as the price rule and the gateway will both see it: a kind may map OpenAI's fields
    to the gateway's (images: `size`). Kinds without a module here (video, …) are priced as sent."""
    kind = KINDS.get(model.kind)
    return kind.prepare(model, params) if hasattr(kind, "prepare") else params


def payload(kind: ModuleType, params: dict) -> dict:
    """What goes to the gateway: the kind's forwarded params; everything else in the body is ours."""
    return {name: value for name, value in params.items() if name in kind.FORWARDED and value is not None}
