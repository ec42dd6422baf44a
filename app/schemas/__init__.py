"""Pydantic models for what the API accepts and answers, per domain and audience. Views parse with
the In models and answer through the Out models, and the OpenAPI document is built from the same
classes, so the document cannot drift from what is sent."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from app.core.db import rfc3339


# Every ISO timestamp in an answer (RFC 3339, UTC, `Z`): a row read back in another session time zone
# still answers in UTC. Fields OpenAI's shapes define as Unix seconds (`created`) are ints instead.
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json"),
                      WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")]


class Body(BaseModel):
    """Base for request bodies: unknown fields and wrong types are refused, not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Base for query strings: values arrive as text, so they are converted (leniently)."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base for responses, built from model objects."""

    model_config = ConfigDict(from_attributes=True)


class ListOf(Out):
    object: Literal["list"] = "list"


def dump(model: type[BaseModel], obj, **extra) -> dict:
    """`obj` (a row, a dataclass or a dict) as `model` sends it."""
    data = model.model_validate(obj).model_dump(mode="json")
    data.update(extra)
    return data
