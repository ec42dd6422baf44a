"""The models a tenant may use, and what a request would cost."""
from __future__ import annotations

from flask import jsonify

from app.api import bp
from app.api.auth import AUTH, current_principal
from app.api.openapi import endpoint
from app.catalog import service as catalog
from app.generation import flow
from app.schemas.catalog import EstimateIn, EstimateOut, ModelListOut, ModelOut, model_dict


@bp.get("/models")
@endpoint("The models this tenant may use (OpenAI's list shape)", response=ModelListOut, auth=AUTH, tags=("models",))
def list_models():
    rows = catalog.models_for_tenant(current_principal().access)
    return jsonify(ModelListOut(data=[model_dict(m, r) for m, r in rows]).model_dump(mode="json"))


@bp.get("/models/<model_id>")
@endpoint("One model this tenant may use (OpenAI's model object)", response=ModelOut, auth=AUTH, errors=(404,),
          tags=("models",))
def retrieve_model(model_id: str):
    return jsonify(ModelOut(**model_dict(*catalog.visible_model(current_principal().access, model_id)))
                   .model_dump(mode="json"))


@bp.post("/billing/estimate")
@endpoint("What a generation would hold, with the breakdown", body=EstimateIn, response=EstimateOut, auth=AUTH,
          errors=(403, 404), tags=("billing",))
def estimate(body: EstimateIn):
    model, quote = flow.estimate(current_principal().access, body.model_dump())
    return jsonify(EstimateOut(model=model.model_id, credits=quote.credits, breakdown=quote.breakdown)
                   .model_dump(mode="json"))
