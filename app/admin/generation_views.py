"""Dashboard screens for generation: every tenant's generations and their detail, the waule-api
gateways, a tenant's usage (chart and per-model table) and a model's gateway. Same patterns as
views.py and billing_views.py: one page per screen, fragments for what htmx swaps."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, checkbox, day, text, whole_number
from app.admin.views import FIXABLE, SECTIONS, respond, tenant_section, wants_fragment
from app.core.errors import InvalidInput
from app.gateway import registry as gateways
from app.generation import queries, usage
from app.identity import tenants
from app.models import GENERATION_STATUSES, MODEL_KINDS, utcnow
from app.storage import service as storage
from app.storage import signing

GENERATIONS_PER_PAGE = 50
USAGE_PERIODS = (7, 30, 90)

# --- generations -----------------------------------------------------------------------------------

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


# --- gateways --------------------------------------------------------------------------------------

GATEWAY_FIELDS = ("name", "base_url", "secret", "path_prefix", "priority", "weight")


def _gateway_values(values) -> dict:
    return {"name": text(values, "name"), "base_url": text(values, "base_url"),
            "secret": values.get("secret", ""), "path_prefix": text(values, "path_prefix"),
            "priority": whole_number(values, "priority", "Priority"),
            "weight": whole_number(values, "weight", "Weight"), "is_active": checkbox(values, "is_active")}


def _typed_without_secret(values) -> MultiDict:
    """What goes back into a form that failed: never the secret, never the old CSRF token."""
    return MultiDict([(k, v) for k, v in values.items(multi=True) if k not in ("secret", "csrf_token")])


def _new_gateway_form() -> Form:
    return Form({"path_prefix": "/v1", "priority": "100", "weight": "1", "is_active": "on"})


def gateways_page(status: int = 200, **extra):
    context = {"gateways": gateways.list_gateways(), "gateway_form": _new_gateway_form(), "gateway_notice": None,
               "tests": {}, **extra}
    return respond("admin/partials/gateway_list.html", "admin/gateways.html", status, **context)


@bp.get("/gateways")
def gateway_list():
    return gateways_page()


@bp.post("/gateways")
def gateway_create():
    values = request.form
    try:
        row = gateways.create_gateway(acting_admin(), **_gateway_values(values))
    except FIXABLE as error:
        return gateways_page(error.status, gateway_form=Form.failed(_typed_without_secret(values), error,
                                                                    GATEWAY_FIELDS))
    return gateways_page(gateway_notice=f"Added gateway {row.name}. Test its connection before relying on it.")


def gateway_editor(row, form: Form, status: int = 200, **extra):
    context = {"gateway": row, "form": form, "gateway_notice": None, **extra}
    return respond("admin/partials/gateway_form.html", "admin/gateway_edit.html", status, **context)


def _edit_form(row) -> Form:
    return Form({"name": row.name, "base_url": row.base_url, "path_prefix": row.path_prefix,
                 "priority": str(row.priority), "weight": str(row.weight), "is_active": "on" if row.is_active else ""})


@bp.get("/gateways/<gateway_id>")
def gateway_edit(gateway_id):
    row = gateways.get_gateway(gateway_id)
    return gateway_editor(row, _edit_form(row))


@bp.post("/gateways/<gateway_id>")
def gateway_save(gateway_id):
    values = request.form
    try:
        row = gateways.update_gateway(gateway_id, acting_admin(), _gateway_values(values))
    except FIXABLE as error:
        row = gateways.get_gateway(gateway_id)
        return gateway_editor(row, Form.failed(_typed_without_secret(values), error, GATEWAY_FIELDS), error.status)
    notice = "Saved; the new secret is stored." if values.get("secret", "").strip() else "Saved."
    return gateway_editor(row, _edit_form(row), gateway_notice=notice)


@bp.post("/gateways/<gateway_id>/test")
def gateway_test(gateway_id):
    result = gateways.test_connection(gateway_id, acting_admin())
    if wants_fragment():
        return respond("admin/partials/gateway_test.html", "admin/partials/gateway_test.html", test=result)
    return gateways_page(tests={gateway_id: result})


@bp.post("/gateways/<gateway_id>/active")
def gateway_set_active(gateway_id):
    active = checkbox(request.form, "active")
    row = gateways.update_gateway(gateway_id, acting_admin(), {"is_active": active})
    notice = (f"{row.name} is active again." if active
              else f"{row.name} is deactivated: no new calls go to it.")
    return gateways_page(gateway_notice=notice)


# --- a model's gateway -----------------------------------------------------------------------------

@bp.post("/models/<model_uuid>/gateway")
def model_gateway_save(model_uuid):
    model = gateways.set_model_gateway(model_uuid, text(request.form, "gateway_id") or None, acting_admin())
    if not wants_fragment():
        return redirect(url_for("admin.model_edit", model_uuid=model.id))
    return respond("admin/partials/model_gateway.html", "admin/partials/model_gateway.html", model=model,
                   gateway_choices=gateways.gateway_names(), gateway_notice="Gateway saved.")


# --- a tenant's usage ------------------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT = 760, 220
CHART_LEFT, CHART_BOTTOM, CHART_TOP = 56, 28, 12


def _nice_step(value: float) -> int:
    """The smallest 1, 2 or 5 × 10^k at or above `value`, so axis labels are round numbers."""
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def usage_chart(days: list[dict], metric: str = "credits") -> dict:
    """Bar geometry for an inline SVG: one bar per day, a y axis in round steps (at most five lines),
    at most ~10 date labels."""
    highest = max((d[metric] for d in days), default=0)
    step = _nice_step(highest / 4)
    top = max(step, -(-highest // step) * step)
    plot_w, plot_h = CHART_WIDTH - CHART_LEFT - 8, CHART_HEIGHT - CHART_BOTTOM - CHART_TOP
    slot = plot_w / max(1, len(days))
    label_every = max(1, -(-len(days) // 10))
    bars = []
    for index, item in enumerate(days):
        height = plot_h * item[metric] / top
        bars.append({"day": item["key"], "value": item[metric], "requests": item["requests"],
                     "failures": item["failures"], "credits": item["credits"],
                     "x": round(CHART_LEFT + index * slot + slot * 0.1, 2), "width": round(max(1.0, slot * 0.8), 2),
                     "y": round(CHART_TOP + plot_h - height, 2), "height": round(height, 2),
                     "label": item["key"][5:] if index % label_every == 0 else None,
                     "label_x": round(CHART_LEFT + index * slot + slot / 2, 2)})
    ticks = [{"value": value, "y": round(CHART_TOP + plot_h - plot_h * value / top, 2)}
             for value in range(0, top + 1, step)]
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT, "base": CHART_TOP + plot_h,
            "right": CHART_WIDTH - 8, "bars": bars, "ticks": ticks, "metric": metric}


def _usage_section(tenant, *, usage_values=None, **extra):
    usage_values = MultiDict(usage_values or {})
    typed = {"date_from": text(usage_values, "date_from"), "date_to": text(usage_values, "date_to")}
    usage_form, report = Form(typed), None
    try:
        report = usage.tenant_report(tenant.id, date_from=day(usage_values, "date_from", "From"),
                                     date_to=day(usage_values, "date_to", "To"))
    except InvalidInput as error:
        # The service names its range check "from", as the API's query parameter is called.
        field = "date_from" if error.param == "from" else error.param
        usage_form = Form(typed, {field: error.message}) if field in typed else Form(typed, message=error.message)
    today = utcnow().date()
    periods = [(n, (today - timedelta(days=n - 1)).isoformat(), today.isoformat()) for n in USAGE_PERIODS]
    return {"tenant": tenant, "usage_form": usage_form, "report": report,
            "chart": usage_chart(report["days"]) if report else None, "usage_periods": periods, **extra}


SECTIONS["usage"] = ("admin/partials/tenant_usage.html", _usage_section)


@bp.get("/tenants/<tenant_id>/usage")
def tenant_usage(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    context = _usage_section(tenant, usage_values=request.args)
    status = 400 if context["usage_form"].has_errors else 200
    if wants_fragment():
        return respond("admin/partials/tenant_usage.html", "admin/tenant_detail.html", status, **context)
    return tenant_section(tenant, "usage", status, usage_values=request.args)

