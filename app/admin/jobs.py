"""The worker's jobs: how many wait on each queue, the videos and Midjourney tasks queued, running and
stuck, the last day's failures by error code; cancel a queued or running one, retry a failed one."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, redirect, request

from app import jobs
from app.admin import bp
from app.admin.auth import acting_admin, safe_next
from app.admin.generations import ROW_CONTEXT
from app.admin.rendering import respond, wants_fragment
from app.core.db import utcnow
from app.core.errors import DomainError
from app.generation import queries, removal, videos

FAILURES_SINCE = timedelta(hours=24)
# A refused action comes back as the page with the reason; htmx swaps a 409 (base.html), not a 402 or 403.
REFUSED = 409


def jobs_page(status: int = 200, **extra):
    now = utcnow()
    overview = queries.jobs_overview(
        now, pending_grace=timedelta(seconds=current_app.config["RECONCILE_PENDING_SECONDS"]),
        failed_since=now - FAILURES_SINCE)
    context = {"overview": overview, "queues": jobs.pending_counts(), "now": now, "jobs_notice": None,
               "jobs_error": None, "retried": None, **ROW_CONTEXT, **extra}
    return respond("admin/partials/jobs.html", "admin/jobs.html", status, **context)


@bp.get("/jobs")
def job_list():
    return jobs_page()


def _answer(status: int = 200, **extra):
    """A plain form (the generation's page) goes back where it came from; htmx gets the Jobs panel."""
    next_url = request.form.get("next")
    if next_url and status == 200 and not wants_fragment():
        return redirect(safe_next(next_url))
    return jobs_page(status, **extra)


@bp.post("/jobs/<generation_id>/cancel")
def job_cancel(generation_id):
    generation = queries.any_generation(generation_id)
    try:
        removal.cancel(generation, acting_admin(), reason=removal.CANCELLED_BY_ADMIN)
    except DomainError as error:
        return _answer(REFUSED, jobs_error=f"Not cancelled: {error.message}")
    return _answer(jobs_notice=f"Cancelled the {generation.kind} {str(generation.id)[:8]}…: its hold is released "
                               "and nothing is charged.")


@bp.post("/jobs/<generation_id>/retry")
def job_retry(generation_id):
    generation = queries.any_generation(generation_id)
    try:
        retried = videos.retry(generation, acting_admin())
    except DomainError as error:
        return _answer(REFUSED, jobs_error=f"Not retried: {error.message}")
    return _answer(retried=retried)
