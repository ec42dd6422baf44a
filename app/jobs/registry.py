"""Every job, by name: the one place that says which function does which work, on which queue, and
which jobs run on a schedule. Functions are named "module:function" and imported when first run, so
services can enqueue without import cycles.

Two queues, each with its own worker threads: `long` for calls that wait on the gateway for up to
twenty minutes (videos, Midjourney), `short` for everything else, so a queue full of videos never
starves the periodic sweeps and webhook deliveries.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

QUEUES = ("long", "short")


@dataclass(frozen=True)
class Job:
    queue: str
    function: str  # "module:function"


JOBS: dict[str, Job] = {
    "generation.execute": Job("long", "app.generation.flow:execute_queued"),
    "generation.resume": Job("long", "app.generation.flow:resume_queued"),
    "generation.reconcile": Job("short", "app.generation.sweep:reconcile"),
    "gateways.probe": Job("short", "app.gateway.registry:probe_gateways"),
    "holds.expire": Job("short", "app.generation.sweep:sweep"),
    "idempotency.purge": Job("short", "app.billing.idempotency:purge_expired"),
    "storage.bill": Job("short", "app.storage.billing:bill_due"),
    "storage.sweep": Job("short", "app.storage.service:sweep"),
    "uploads.expire": Job("short", "app.storage.uploads:expire_uploads"),
    "webhooks.deliver": Job("short", "app.webhooks.deliveries:deliver"),
    "webhooks.retry": Job("short", "app.webhooks.deliveries:retry_due"),
}

# Periodic jobs and their crontab fields (minute, hour); each is also a `flask` command for cron.
SCHEDULE: dict[str, dict[str, str]] = {
    "gateways.probe": {"minute": "*"},
    "generation.reconcile": {"minute": "*"},
    "holds.expire": {"minute": "*"},
    "idempotency.purge": {"minute": "17"},
    # Daily work, run hourly: the first run after midnight (UTC) bills the day before, the rest find it billed.
    "storage.bill": {"minute": "20"},
    "storage.sweep": {"minute": "*/10"},
    "uploads.expire": {"minute": "41"},
    "webhooks.retry": {"minute": "*"},
}


def resolve(name: str) -> Callable[..., object]:
    try:
        module_name, _, function = JOBS[name].function.partition(":")
    except KeyError:
        raise LookupError(f"no job named {name!r}") from None
    return getattr(importlib.import_module(module_name), function)
