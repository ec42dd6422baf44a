"""Midjourney: imagine, then act on a finished grid with its buttons. Each answers 202 with our task
(a generation) for the worker to submit and poll; GET shows its status, progress, image and buttons."""
from __future__ import annotations

from flask import jsonify, request

from app.api import bp
from app.api.auth import AUTH, current_principal, generation_caller, own_only
from app.api.files import file_url
from app.api.openapi import endpoint
from app.core.errors import Conflict, InvalidInput
from app.generation import flow, videos
from app.generation.kinds import midjourney
from app.schemas.videos import MidjourneyActionIn, MidjourneyImagineIn, MidjourneyTaskOut, midjourney_out
from app.storage import service as storage

ERRORS = (402, 403, 404, 409, 422, 429)


def _answer(generation, status: int = 200):
    files = storage.files_of([generation.id])[generation.id]
    response = jsonify(midjourney_out(generation, file_url(files[0]) if files else None))
    response.status_code = status
    if status == 202:
        response.headers["Location"] = request.host_url.rstrip("/") + f"/api/v1/midjourney/tasks/{generation.id}"
    return response


@bp.post("/midjourney/imagine")
@endpoint("Imagine a grid of four images; answers 202 with the task to poll", body=MidjourneyImagineIn,
          response=MidjourneyTaskOut, status=202, auth=AUTH, errors=ERRORS, tags=("midjourney",))
def imagine(body: MidjourneyImagineIn):
    params = {"model": body.model, "prompt": body.prompt, "operation": "imagine", "mode": body.mode}
    generation = flow.run_in_background(generation_caller(), "midjourney",
                                        {k: v for k, v in params.items() if v is not None},
                                        idempotency_key=request.headers.get("Idempotency-Key"))
    return _answer(generation, 202)


@bp.post("/midjourney/action")
@endpoint("Press a button of a finished task (upscale, variation, reroll…); charged by its own operation",
          body=MidjourneyActionIn, response=MidjourneyTaskOut, status=202, auth=AUTH, errors=ERRORS,
          tags=("midjourney",))
def action(body: MidjourneyActionIn):
    caller = generation_caller()
    source = videos.get_video(caller.tenant.id, body.generation_id, user_id=own_only(), kind="midjourney")
    if source.status != "COMPLETED" or not source.upstream_task_id:
        raise Conflict("That task has not finished; act on it once it has.", code="task_not_finished")
    buttons = {button["custom_id"] for button in (source.output or {}).get("buttons", [])}
    if body.custom_id not in buttons:
        raise InvalidInput("custom_id is not one of that task's buttons.", param="custom_id", code="unknown_button")
    params = {"model": source.model, "operation": midjourney.operation_of(body.custom_id),
              "mode": body.mode or source.params.get("mode"), "custom_id": body.custom_id,
              "message_id": source.upstream_task_id}
    generation = flow.run_in_background(caller, "midjourney", {k: v for k, v in params.items() if v is not None},
                                        idempotency_key=request.headers.get("Idempotency-Key"), parent_id=source.id)
    return _answer(generation, 202)


@bp.get("/midjourney/tasks/<task_id>")
@endpoint("A Midjourney task: its status, progress, image and buttons", response=MidjourneyTaskOut, auth=AUTH,
          errors=(404,), tags=("midjourney",))
def show_task(task_id: str):
    return _answer(videos.get_video(current_principal().tenant_id, task_id, user_id=own_only(), kind="midjourney"))
