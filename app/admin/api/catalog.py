"""The catalog in the JSON admin API: every model with its price rule."""
from __future__ import annotations

from flask import jsonify

from app.admin.api import TAGS, admin_actor, api_bp
from app.api.openapi import endpoint
from app.catalog import service as catalog
from app.schemas.catalog import AdminModelListOut, AdminModelOut, ModelUpdateIn, model_dict


def _admin_model(model, rule) -> dict:
    return {**model_dict(model, rule), "uuid": str(model.id), "is_active": model.is_active}


@api_bp.get("/models")
@endpoint("Every model in the catalog, with its price rule", response=AdminModelListOut, errors=(401,), tags=TAGS)
def list_models():
    return jsonify({"object": "list", "data": [_admin_model(m, r) for m, r in catalog.list_models()]})


@api_bp.patch("/models/<model_uuid>")
@endpoint("Enable or disable a model, or change its capabilities or price rule", body=ModelUpdateIn,
          response=AdminModelOut, errors=(401, 404), tags=TAGS)
def update_model(model_uuid: str, body: ModelUpdateIn):
    model, rule = catalog.update_model(model_uuid, admin_actor(), **body.model_dump(exclude_unset=True))
    return jsonify(_admin_model(model, rule))
