"""Every tenant's generations, filtered and paged, and one generation's detail with its results."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flask import render_template, request

from app.admin import bp
from app.admin.forms import Form, day, text
from app.admin.rendering import respond
from app.catalog.models import MODEL_KINDS
from app.core.errors import InvalidInput
from app.generation import queries
from app.generation.models import GENERATION_STATUSES
from app.storage import service as storage
from app.storage import signing

GENERATIONS_PER_PAGE = 50


GENERATION_FILTERS = ("q", "tenant", "kind", "status", "model", "date_from", "date_to")


@bp.get("/generations")
def generation_list():
    values = request.args
    typed = {name: text(values, name) for name in GENERATION_FILTERS}
    form, status = Form(typed), 200
    try:
        found = queries.list_all_generations(
            generation_id=typed["q"] or None, tenant=typed["tenant"] or None, kind=typed["kind"] or None,
            status=typed["status"] or None, model=typed["model"] or None,
            date_from=day(values, "date_from", "From"), date_to=day(values, "date_to", "To"),
            cursor=text(values, "cursor") or None, limit=GENERATIONS_PER_PAGE)
    except InvalidInput as error:
        form, status = Form.failed(typed, error, GENERATION_FILTERS + ("cursor",)), error.status
        found = queries.PlatformGenerationPage([], None)
    return respond("admin/partials/generation_table.html", "admin/generations.html", status, form=form,
                   found=found, filters={k: v for k, v in typed.items() if v}, paged=bool(text(values, "cursor")),
                   kinds=MODEL_KINDS, statuses=GENERATION_STATUSES)


@dataclass
class Preview:
    """A result as the detail page shows it: a signed URL and the element that plays it."""

    url: str
    element: str  # img | audio | video | file
    content_type: str
    size_bytes: int | None


def _previews(files) -> list[Preview]:
    previews = []
    for stored in files:
        element = {"image": "img", "audio": "audio", "video": "video"}.get(stored.content_type.split("/")[0], "file")
        previews.append(Preview(signing.signed_url(stored), element, stored.content_type, stored.size_bytes))
    return previews


def _steps(timeline: list[dict]) -> list[dict]:
    """The timeline with the time each step took after the one before it."""
    steps, previous = [], None
    for step in timeline or []:
        try:
            at = datetime.fromisoformat(step["at"])
        except (KeyError, TypeError, ValueError):
            at = None
        after = (at - previous).total_seconds() * 1000 if at and previous else None
        steps.append({"status": step.get("status"), "at": at, "after_ms": int(after) if after is not None else None})
        previous = at or previous
    return steps


@bp.get("/generations/<generation_id>")
def generation_detail(generation_id):
    detail = queries.generation_detail(generation_id)
    generation = detail.generation
    return render_template("admin/generation_detail.html", detail=detail,
                   generation=generation, previews=_previews(storage.files_of([generation.id])[generation.id]), steps=_steps(generation.timeline),
                   params=json.dumps(generation.params, indent=2, ensure_ascii=False))
