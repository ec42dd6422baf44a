"""Every job, by name: the one place that says which function does which work. Functions are named
as "module:function" and imported when first run, so services can enqueue without import cycles."""
from __future__ import annotations

import importlib
from collections.abc import Callable

JOBS: dict[str, str] = {
    "generation.execute": "app.generation.flow:execute_queued",
}


def resolve(name: str) -> Callable[..., None]:
    try:
        module_name, _, function = JOBS[name].partition(":")
    except KeyError:
        raise LookupError(f"no job named {name!r}") from None
    return getattr(importlib.import_module(module_name), function)
