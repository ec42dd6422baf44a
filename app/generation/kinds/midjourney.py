"""Midjourney, the one pollable route: submit (imagine, or an action on a finished grid) → a taskId →
poll the task until SUCCESS or FAILURE → store the image and keep its buttons, so clients can act on
it. Charged by operation × mode (OPERATION_MODE)."""
from __future__ import annotations

import time

from flask import current_app

from app.catalog import pricing
from app.core.errors import InvalidInput
from app.gateway import client as gateway

IMAGINE, ACTION = "/midjourney/imagine", "/midjourney/action"
# A button's customId names its action: MJ::JOB::<action>::<index>::<taskId>[::SOLO]
OPERATIONS = {"upsample": "upscale", "variation": "variation", "high_variation": "variation",
              "low_variation": "variation", "reroll": "reroll", "zoom": "zoom", "outpaint": "zoom", "pan": "pan"}


def operation_of(custom_id: str) -> str:
    parts = custom_id.split("::")
    operation = OPERATIONS.get(parts[2]) if len(parts) >= 3 and parts[0] == "MJ" else None
    if operation is None:
        raise InvalidInput("custom_id is not a Midjourney button of this task.", param="custom_id",
                           code="unknown_button")
    return operation


def payload(params: dict, route: str) -> dict:
    if params.get("custom_id"):
        return {"messageId": params["message_id"], "customId": params["custom_id"]}
    return {"prompt": params["prompt"]}


def route_of(params: dict) -> str:
    return ACTION if params.get("custom_id") else IMAGINE


def call(generation, targets: list[gateway.Target], route: str, body: dict, progress) -> gateway.Answer:
    """Submit (unless a task is already running, as after a worker died), then poll it to the end."""
    if generation.upstream_task_id is None:
        submitted = gateway.call(targets, "POST", route_of(generation.params), kind="midjourney", payload=body)
        task_id = submitted.body.get("taskId") or submitted.body.get("result")
        if not submitted.body.get("success", True) or not isinstance(task_id, str) or not task_id:
            raise gateway.UpstreamRejected(f"Midjourney refused the task: {submitted.body.get('description') or ''}"
                                           .rstrip(": "))
        progress.task_started(task_id, submitted.target)
        targets = [submitted.target]
    return poll(generation.upstream_task_id, targets[0], progress)


def poll(task_id: str, target: gateway.Target, progress=None, *, once: bool = False) -> gateway.Answer:
    interval = current_app.config["MIDJOURNEY_POLL_SECONDS"]
    while True:
        answer = gateway.call([target], "GET", f"/midjourney/task/{task_id}", kind="midjourney")
        status = answer.body.get("status")
        if status == "SUCCESS":
            return answer
        if status == "FAILURE":
            reason = answer.body.get("failReason") or "no reason given"
            raise gateway.UpstreamRejected(f"The Midjourney task failed: {reason}", code="midjourney_failed")
        if once:
            return answer
        if progress is not None:
            progress.advanced(_percent(answer.body.get("progress")))
        time.sleep(interval)


def _percent(value) -> int:
    try:
        return max(0, min(99, int(str(value).rstrip("%"))))
    except ValueError:
        return 0


def collect(generation, answer: gateway.Answer, store) -> pricing.Usage:
    url = answer.body.get("imageUrl")
    if not isinstance(url, str) or not url:
        raise gateway.UpstreamFailed("Midjourney finished without an image.", code="upstream_bad_response")
    generation.results = store([{"url": url}])
    buttons = [{"custom_id": b["customId"], "label": b.get("label") or "", "emoji": b.get("emoji") or ""}
               for b in answer.body.get("buttons") or [] if isinstance(b, dict) and isinstance(b.get("customId"), str)]
    generation.output = {"task_id": generation.upstream_task_id, "action": answer.body.get("action"),
                         "buttons": buttons}
    return pricing.Usage()
