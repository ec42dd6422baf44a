"""Videos: long generations run by the worker. POST answers 202 with the video object and a Location to
poll (or wait for a webhook); GET /videos/{id}/content streams the file. Both the gateway's own route
(/videos/generations, JSON) and OpenAI's (/videos, multipart or JSON), so `client.videos.*` works."""
from __future__ import annotations

from flask import jsonify, request

from app.api import bp
from app.api.auth import AUTH, current_principal, generation_caller, own_only
from app.api.files import file_url, serve_stored
from app.api.openapi import endpoint
from app.api.uploads import with_uploads_resolved
from app.core.errors import InvalidInput, NotFound
from app.generation import flow, videos
from app.generation.kinds import sora
from app.generation.models import FINAL_STATUSES
from app.schemas.videos import (OpenAIVideoIn, VideoCommercialIn, VideoContentQuery, VideoDeletedOut, VideoIn,
                                VideoListOut, VideoListQuery, VideoOut, VideoUpscaleIn, video_out)
from app.storage import quota
from app.storage import service as storage

ERRORS = (402, 403, 404, 409, 422, 429)
# The gateway routes each endpoint's parameters are for: a model made on another one is refused.
GENERATE, UPSCALE, COMMERCIAL = ("/videos/generations", sora.ROUTE), ("/videos/upscale",), ("/videos/commercial",)
POLL_AFTER_MS = 2000  # what openai's create_and_poll waits between polls while a video runs


def _url(path: str) -> str:
    return request.host_url.rstrip("/") + path


def _answer(generation, status: int = 200):
    response = jsonify(video_out(generation, _url))
    response.status_code = status
    if status == 202:
        response.headers["Location"] = _url(f"/api/v1/videos/{generation.id}")
    if generation.status not in FINAL_STATUSES:
        response.headers["openai-poll-after-ms"] = str(POLL_AFTER_MS)
    return response


def _start(params: dict, routes: tuple[str, ...] = GENERATE):
    params = with_uploads_resolved(current_principal().tenant_id,
                                   {name: value for name, value in params.items() if value is not None})
    generation = flow.run_in_background(generation_caller(), "video", params, routes=routes,
                                        idempotency_key=request.headers.get("Idempotency-Key"))
    return _answer(generation, 202)


@bp.post("/videos/generations")
@endpoint("Generate a video on the worker; answers 202 with the video to poll", body=VideoIn, response=VideoOut,
          status=202, auth=AUTH, errors=ERRORS, tags=("videos",))
def create_video(body: VideoIn):
    return _start(body.model_dump())


@bp.post("/videos")
@endpoint("Generate a video, as OpenAI's videos.create sends it (multipart with input_reference, or JSON)",
          body=OpenAIVideoIn, response=VideoOut, status=202, auth=AUTH, errors=ERRORS, tags=("videos",))
def create_openai_video(body: OpenAIVideoIn):
    caller = generation_caller()
    params = {"model": body.model, "prompt": body.prompt, **videos.seconds_param(body.seconds),
              **videos.size_params(body.size)}
    upload = None
    reference = body.input_reference
    if hasattr(reference, "read"):  # an uploaded file: stored, then given to the gateway by a signed URL
        data = reference.read()
        quota.ensure_room(caller.tenant, len(data))
        upload = storage.store_upload(tenant_id=caller.tenant.id, caller=str(caller.user_id or "api"), data=data,
                                      content_type=videos.reference_image(data))
        params["image"] = file_url(upload)
    elif isinstance(reference, dict) and isinstance(reference.get("image_url"), str):
        params["image"] = reference["image_url"]
    elif isinstance(reference, str) and reference:
        params["image"] = reference
    elif reference is not None:
        raise InvalidInput("input_reference must be an image file, an image URL or {\"image_url\": …}.",
                           param="input_reference")
    response = _start(params)
    if upload is not None:
        videos.link_upload(upload.id, response.get_json()["id"])
    return response


@bp.post("/videos/upscale")
@endpoint("Upscale a video (the gateway's /videos/upscale); answers 202", body=VideoUpscaleIn, response=VideoOut,
          status=202, auth=AUTH, errors=ERRORS, tags=("videos",))
def upscale_video(body: VideoUpscaleIn):
    return _start(body.model_dump(), UPSCALE)


@bp.post("/videos/commercial")
@endpoint("A commercial from images (the gateway's /videos/commercial); answers 202", body=VideoCommercialIn,
          response=VideoOut, status=202, auth=AUTH, errors=ERRORS, tags=("videos",))
def commercial_video(body: VideoCommercialIn):
    if not body.images and not body.prompt:
        raise InvalidInput("Give images or a prompt.", param="images")
    return _start(body.model_dump(), COMMERCIAL)


@bp.get("/videos")
@endpoint("Videos, newest first (OpenAI's page shape): members see their own", query=VideoListQuery,
          response=VideoListOut, auth=AUTH, tags=("videos",))
def list_videos(query: VideoListQuery):
    page = videos.list_videos(current_principal().tenant_id, user_id=own_only(), after=query.after,
                              limit=query.limit, order=query.order)
    data = [video_out(video, _url) for video in page.videos]
    return jsonify({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None, "has_more": page.has_more})


@bp.get("/videos/<video_id>")
@endpoint("One video: its status, progress, file and charge", response=VideoOut, auth=AUTH, errors=(404,),
          tags=("videos",))
def show_video(video_id: str):
    return _answer(videos.get_video(current_principal().tenant_id, video_id, user_id=own_only()))


@bp.get("/videos/<video_id>/content")
@endpoint("The video's MP4 (Range requests answer 206), or ?variant=thumbnail its first frame (JPEG); from a cloud "
          "bucket, a 302 to a short-lived presigned URL of it",
          query=VideoContentQuery, media=("video/mp4", "image/jpeg"), auth=AUTH, errors=(404,), tags=("videos",))
def video_content(video_id: str, query: VideoContentQuery):
    video = videos.get_video(current_principal().tenant_id, video_id, user_id=own_only())
    variant = "thumbnail" if query.variant == "thumbnail" else "result"
    files = storage.files_of([video.id], variant=variant)[video.id]
    if not files:
        raise NotFound("This video has no content (yet)." if video.status != "COMPLETED" else "No such content.",
                       code="content_not_found")
    return serve_stored(files[0])


@bp.delete("/videos/<video_id>")
@endpoint("Cancel a running video (its hold is released) or delete a finished one (its files removed)",
          response=VideoDeletedOut, auth=AUTH, errors=(404,), tags=("videos",))
def delete_video(video_id: str):
    video = videos.remove(videos.get_video(current_principal().tenant_id, video_id, user_id=own_only()))
    return jsonify(VideoDeletedOut(id=str(video.id)).model_dump(mode="json"))
