"""Models and prices: what a tenant sees of the catalog, and what a platform admin edits."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas import Body, Out


class ModelOut(Out):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="When the model joined the catalog, in Unix seconds")
    owned_by: str
    kind: str
    display_name: str
    capabilities: dict
    pricing: dict


class ModelListOut(Out):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class EstimateIn(BaseModel):
    """The generation body you would send, with its `model`: other fields pass to the pricing rule."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=120)


class EstimateOut(Out):
    model: str
    credits: int
    breakdown: dict


def model_dict(model, rule) -> dict:
    return {"id": model.model_id, "created": int(model.created_at.timestamp()), "owned_by": model.provider,
            "kind": model.kind,
            "display_name": model.display_name, "capabilities": model.capabilities,
            "pricing": {"billing_type": rule.billing_type, **rule.prices}}


class AdminModelOut(Out):
    uuid: str
    id: str
    created: int = Field(description="When the model joined the catalog, in Unix seconds")
    kind: str
    display_name: str
    owned_by: str
    is_active: bool
    capabilities: dict
    pricing: dict


class AdminModelListOut(Out):
    object: str = "list"
    data: list[AdminModelOut]


class ModelUpdateIn(Body):
    is_active: bool | None = None
    display_name: str | None = Field(default=None, max_length=120)
    capabilities: dict | None = None
    billing_type: str | None = None
    prices: dict | None = None
