"""The worker's generations in the JSON admin API: cancel a queued or running one, retry a failed one.
The same services as the dashboard's Jobs page, audited the same way."""
from __future__ import annotations

from flask import jsonify

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.openapi import endpoint
from app.generation import queries, removal, videos
from app.schemas.generation import AdminGenerationOut, admin_generation_out
from app.schemas.webhooks import NothingIn


@api_bp.post("/generations/<generation_id>/cancel")
@endpoint("Cancel a queued or running generation of any tenant: it fails with `cancelled`, its hold is released "
          "and nothing is charged (409 when it is already over)", body=NothingIn, response=AdminGenerationOut,
          errors=(401, 404, 409), tags=TAGS)
def cancel_generation(generation_id: str, body: NothingIn):
    generation = removal.cancel(queries.any_generation(generation_id), admin_actor(),
                               reason=removal.CANCELLED_BY_ADMIN)
    return jsonify(admin_generation_out(generation))


@api_bp.post("/generations/<generation_id>/retry")
@endpoint("Retry a failed video or Midjourney task: a new generation with the same request, held and queued "
          "for its tenant, with `parent_id` naming the first (refused like any request: 402 without the credits, "
          "403 when the model is no longer enabled, 409 when it is not a failed long job or is already retried)",
          body=NothingIn, response=AdminGenerationOut, status=201, errors=(401, 402, 403, 404, 409, 413, 429),
          tags=TAGS)
def retry_generation(generation_id: str, body: NothingIn):
    retried = videos.retry(queries.any_generation(generation_id), admin_actor())
    return jsonify(admin_generation_out(retried)), 201
