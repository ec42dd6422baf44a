"""Every tenant's generations, filtered and paged, and one generation's detail with its results. A row
still running polls itself (GET …/row) until it is final; a video plays from …/content, which streams the
stored file with Range support."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flask import redirect, render_template, request, url_for

from app.admin import bp
from app.admin.forms import Form, day, text
from app.admin.rendering import respond, wants_fragment
from app.api.files import serve_stored
from app.catalog.models import MODEL_KINDS
from app.core.errors import InvalidInput, NotFound
from app.generation import queries, videos
from app.generation.kinds import midjourney
from app.generation.models import ACTIVE_STATUSES, GENERATION_STATUSES, LONG_KINDS
from app.storage import service as storage
from app.storage import signing

GENERATIONS_PER_PAGE = 50
# What the row template needs to tell a running generation (polled, with progress) from a final one.
ROW_CONTEXT = {"active_statuses": ACTIVE_STATUSES, "long_kinds": LONG_KINDS}


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
                   kinds=MODEL_KINDS, statuses=GENERATION_STATUSES, **ROW_CONTEXT)


@bp.get("/generations/<generation_id>/row")
def generation_row(generation_id):
    """One row of the list, as a running row polls for it; a final row comes back without the trigger."""
    generation, tenant_name = queries.platform_row(generation_id)
    if not wants_fragment():
        return redirect(url_for("admin.generation_detail", generation_id=generation.id))
    return respond("admin/partials/generation_row.html", "admin/partials/generation_row.html",
                   generation=generation, tenant_name=tenant_name, **ROW_CONTEXT)


@dataclass
class Preview:
    """A result as the detail page shows it: a URL and the element that plays it."""

    url: str
    element: str  # img | audio | video | file
    content_type: str
    size_bytes: int | None
    poster: str | None = None  # a video's first frame


def _previews(generation) -> list[Preview]:
    previews = []
    for stored in storage.files_of([generation.id])[generation.id]:
        element = {"image": "img", "audio": "audio", "video": "video"}.get(stored.content_type.split("/")[0], "file")
        if element == "video":
            # Through the dashboard's own route: seeking sends Range requests, and the page stays signed in.
            thumbnail = storage.files_of([generation.id], variant="thumbnail")[generation.id]
            previews.append(Preview(
                url_for("admin.generation_content", generation_id=generation.id), element, stored.content_type,
                stored.size_bytes, url_for("admin.generation_content", generation_id=generation.id,
                                           variant="thumbnail") if thumbnail else None))
            continue
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


def _buttons(generation) -> list[dict]:
    """A Midjourney task's buttons, each with the operation pressing it starts (some labels are only an emoji)."""
    if generation.kind != "midjourney":
        return []
    buttons = []
    for button in (generation.output or {}).get("buttons", []):
        try:
            operation = midjourney.operation_of(button.get("custom_id", ""))
        except InvalidInput:
            operation = None
        buttons.append({**button, "operation": operation})
    return buttons


@bp.get("/generations/<generation_id>")
def generation_detail(generation_id):
    detail = queries.generation_detail(generation_id)
    generation = detail.generation
    live_retry = videos.retry_of(generation.id) if generation.status == "FAILED" else None
    return render_template("admin/generation_detail.html", detail=detail, generation=generation,
                           previews=_previews(generation), steps=_steps(generation.timeline),
                           params=json.dumps(generation.params, indent=2, ensure_ascii=False),
                           buttons=_buttons(generation), live_retry=live_retry, **ROW_CONTEXT)


@bp.get("/generations/<generation_id>/content")
def generation_content(generation_id):
    """A generation's first result (or, with ?variant=thumbnail, a video's first frame), streamed with
    Range support so a <video> can seek."""
    generation = queries.any_generation(generation_id)
    variant = "thumbnail" if request.args.get("variant") == "thumbnail" else "result"
    files = storage.files_of([generation.id], variant=variant)[generation.id]
    if not files:
        raise NotFound("This generation has no such file.", code="content_not_found")
    return serve_stored(files[0], metered=False)  # a platform admin's look is not the tenant's traffic
