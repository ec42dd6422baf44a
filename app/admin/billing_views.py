"""Dashboard screens for credits: models and their prices, a tenant's balance and ledger, the
platform's billing overview and the seat price. Same patterns as views.py: one page per screen,
fragments for what htmx swaps, forms that come back with their errors."""
from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import timedelta

from flask import Response, current_app, request, stream_with_context
from werkzeug.datastructures import MultiDict

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, day, optional_text, text, whole_number
from app.admin.views import FIXABLE, SECTIONS, respond, tenant_section, wants_fragment
from app.billing import accounts as billing
from app.billing import ledger
from app.billing.idempotency import KeyReused
from app.catalog import pricing
from app.catalog import service as catalog
from app.core.errors import InvalidInput
from app.gateway import registry as gateways
from app.identity import tenants
from app.models import BILLING_TYPES, ENTRY_TYPES, MODEL_KINDS, utcnow

LEDGER_PER_PAGE = 25
OVERVIEW_DAYS = 30


@bp.app_template_filter("credits")
def credits_filter(value: int | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+,}" if signed and value else f"{value:,}"


def json_object(values, name: str, label: str) -> dict:
    """A textarea holding a JSON object (an empty one counts as {})."""
    raw = text(values, name)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as error:
        raise InvalidInput(f"{label} is not valid JSON: {error}.", param=name) from None
    if not isinstance(parsed, dict):
        raise InvalidInput(f"{label} must be a JSON object ({{…}}).", param=name)
    return parsed


def pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# --- models & prices -------------------------------------------------------------------------------

def _kind_groups(rows) -> list[tuple[str, list]]:
    return [(kind, [row for row in rows if row[0].kind == kind]) for kind in MODEL_KINDS
            if any(row[0].kind == kind for row in rows)]


def models_page(status: int = 200, **extra):
    context = {"groups": _kind_groups(catalog.list_models()), "model_notice": None, **extra}
    return respond("admin/partials/model_list.html", "admin/models.html", status, **context)


@bp.get("/models")
def model_list():
    return models_page()


@bp.post("/models/<model_uuid>/active")
def model_set_active(model_uuid):
    active = request.form.get("active") == "1"
    model, _rule = catalog.update_model(model_uuid, acting_admin(), is_active=active)
    notice = (f"{model.display_name} is enabled." if active
              else f"{model.display_name} is disabled: tenants can no longer use it.")
    return models_page(model_notice=notice)


def sample_params(model) -> dict:
    """A plausible request for this kind of model, so the preview shows a number straight away."""
    caps = model.capabilities or {}

    def first(name, default):
        return (caps.get(name) or [default])[0]

    if model.kind == "image":
        return {"n": 1, "image_size": first("image_sizes", "1K")}
    if model.kind == "video":
        params = {"duration": first("durations", 5), "resolution": first("resolutions", "720p")}
        if caps.get("modes"):
            params["mode"] = caps["modes"][0]
        return params
    if model.kind == "audio":
        return {"input": "Welcome to Waule. This sentence is read aloud to estimate the price."}
    if model.kind == "chat":
        return {"messages": [{"role": "user", "content": "Write a haiku about credits."}], "max_tokens": 512}
    return {"operation": "imagine", "mode": "fast"}


def price_fields() -> dict[str, list[tuple[str, str]]]:
    """Each billing type's price fields with their defaults, read from the pricing schemas."""
    fields = {}
    for billing_type, schema in pricing.SCHEMAS.items():
        fields[billing_type] = [
            (name, "required" if info.is_required() else f"default {json.dumps(info.get_default(call_default_factory=True))}")
            for name, info in schema.model_fields.items()]
    return fields


MODEL_FIELDS = ("display_name", "billing_type", "prices", "capabilities")


def _model_form(model, rule) -> Form:
    return Form({"display_name": model.display_name, "billing_type": rule.billing_type,
                 "prices": pretty(rule.prices), "capabilities": pretty(model.capabilities or {}),
                 "params": pretty(sample_params(model))})


def _preview(values) -> tuple[pricing.Quote | None, str | None]:
    """The estimate for the rule as typed (saved or not) and the sample request."""
    try:
        prices = json_object(values, "prices", "Prices")
        params = json_object(values, "params", "Sample request")
        return pricing.estimate(text(values, "billing_type"), prices, params), None
    except InvalidInput as error:
        where = "Price rule" if error.param in ("prices", "billing_type") else "Sample request"
        return None, f"{where}: {error.message}"


def model_editor(model, rule, form: Form, status: int = 200, **extra):
    quote, preview_error = _preview(form.values)
    context = {"model": model, "rule": rule, "form": form, "quote": quote, "preview_error": preview_error,
               "billing_types": BILLING_TYPES, "price_fields": price_fields(), "model_notice": None,
               "gateway_choices": gateways.gateway_names(), **extra}
    return respond("admin/partials/model_form.html", "admin/model_edit.html", status, **context)


@bp.get("/models/<model_uuid>")
def model_edit(model_uuid):
    model, rule = catalog.get_model(model_uuid)
    return model_editor(model, rule, _model_form(model, rule))


@bp.post("/models/<model_uuid>")
def model_save(model_uuid):
    values = request.form
    try:
        model, rule = catalog.update_model(
            model_uuid, acting_admin(), display_name=text(values, "display_name"),
            billing_type=text(values, "billing_type"), prices=json_object(values, "prices", "Prices"),
            capabilities=json_object(values, "capabilities", "Capabilities"))
    except FIXABLE as error:
        model, rule = catalog.get_model(model_uuid)
        return model_editor(model, rule, Form.failed(_typed(values), error, MODEL_FIELDS), error.status)
    form = _model_form(model, rule)
    form.values["params"] = values.get("params", form.value("params"))  # keep the admin's sample
    return model_editor(model, rule, form, model_notice="Saved. New requests are priced with this rule.")


@bp.post("/models/<model_uuid>/preview")
def model_preview(model_uuid):
    model, rule = catalog.get_model(model_uuid)
    form = Form(_typed(request.form))
    quote, preview_error = _preview(form.values)
    status = 400 if preview_error else 200
    if wants_fragment():
        return respond("admin/partials/price_preview.html", "admin/partials/price_preview.html", status,
                       quote=quote, preview_error=preview_error)
    return model_editor(model, rule, form, status)


def _typed(values) -> MultiDict:
    return MultiDict([(k, v) for k, v in values.items(multi=True) if k != "csrf_token"])


# --- a tenant's balance and ledger -----------------------------------------------------------------

LEDGER_FILTERS = ("type", "date_from", "date_to")


def _ledger_filters(values) -> dict:
    """The ledger filters as list_entries takes them; raises InvalidInput beside the bad one."""
    return {"type_": text(values, "type") or None, "date_from": day(values, "date_from", "From"),
            "date_to": day(values, "date_to", "To")}


def _recharge_form() -> Form:
    # One key per rendered form: posting this form twice (double click, browser resubmit) recharges once.
    return Form({"idempotency_key": str(uuid.uuid4())})


def _credits_section(tenant, *, ledger_values=None, **extra):
    ledger_values = MultiDict(ledger_values or {})
    typed = {name: text(ledger_values, name) for name in LEDGER_FILTERS}
    ledger_form = Form(typed)
    try:
        entries = billing.list_entries(tenant.id, **_ledger_filters(ledger_values),
                                       cursor=text(ledger_values, "cursor") or None, limit=LEDGER_PER_PAGE)
    except InvalidInput as error:
        ledger_form = Form.failed(typed, error, LEDGER_FILTERS + ("cursor",))
        entries = billing.Page([], None)
    filters = {name: value for name, value in typed.items() if value}
    return {"tenant": tenant, "account": ledger.account(tenant.id), "entries": entries,
            "ledger_form": ledger_form, "ledger_filters": filters, "paged": bool(text(ledger_values, "cursor")),
            "entry_types": ENTRY_TYPES, "recharge_form": _recharge_form(), "adjust_form": Form(),
            "credits_notice": None, **extra}


SECTIONS["credits"] = ("admin/partials/tenant_credits.html", _credits_section)


@bp.get("/tenants/<tenant_id>/ledger")
def tenant_ledger(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    context = _credits_section(tenant, ledger_values=request.args)
    status = 400 if context["ledger_form"].has_errors else 200
    if wants_fragment():
        return respond("admin/partials/ledger_table.html", "admin/tenant_detail.html", status, **context)
    return tenant_section(tenant, "credits", status, ledger_values=request.args)


RECHARGE_FIELDS = ("amount", "description")


@bp.post("/tenants/<tenant_id>/recharge")
def tenant_recharge(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        movement = billing.recharge(tenant.id, whole_number(values, "amount", "Amount"), acting_admin(),
                                   description=optional_text(values, "description"),
                                   idempotency_key=optional_text(values, "idempotency_key"))
    except KeyReused:
        # Only a form posted again with different values gets here: ask for a deliberate new submit.
        form = Form(_typed(values), message="This form was already used for a different recharge; check the "
                                            "ledger, then submit again to make a new one.")
        form.values["idempotency_key"] = str(uuid.uuid4())
        return tenant_section(tenant, "credits", 422, recharge_form=form)
    except FIXABLE as error:
        # Nothing was written, so the same key stays valid for the corrected form.
        return tenant_section(tenant, "credits", error.status,
                              recharge_form=Form.failed(_typed(values), error, RECHARGE_FIELDS))
    amount = movement.entry.amount
    if movement.replayed:
        notice = f"That recharge of {amount:,} credits was already recorded; it was not applied twice."
    else:
        notice = f"Recharged {amount:,} credits. Balance is now {movement.account.balance:,}."
    return tenant_section(tenant, "credits", credits_notice=notice)


ADJUST_FIELDS = ("amount", "reason")


@bp.post("/tenants/<tenant_id>/adjust")
def tenant_adjust(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        movement = billing.adjust(tenant.id, whole_number(values, "amount", "Amount"), text(values, "reason"),
                                  acting_admin())
    except FIXABLE as error:
        return tenant_section(tenant, "credits", error.status,
                              adjust_form=Form.failed(_typed(values), error, ADJUST_FIELDS))
    return tenant_section(tenant, "credits", credits_notice=f"Adjusted by {movement.entry.amount:+,} credits. "
                                                            f"Balance is now {movement.account.balance:,}.")


CSV_COLUMNS = ("created_at", "type", "amount", "balance_after", "description", "actor_type", "actor_name",
               "reference", "id")


def _cell(value) -> str:
    """Text as a spreadsheet shows it, never as a formula it runs (CSV injection)."""
    value = "" if value is None else str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/tenants/<tenant_id>/ledger.csv")
def tenant_ledger_csv(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    entries = billing.iter_entries(tenant.id, **_ledger_filters(request.args))

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for entry in entries:
            writer.writerow((entry.created_at.isoformat(), entry.type, entry.amount, entry.balance_after,
                             _cell(entry.description), entry.actor_type, _cell(entry.actor_name),
                             _cell(entry.reference), entry.id))
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    slug = re.sub(r"[^a-z0-9]+", "-", tenant.name.lower()).strip("-") or str(tenant.id)[:8]
    filename = f"ledger-{slug}-{utcnow():%Y%m%d}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


# --- billing overview ------------------------------------------------------------------------------

PERIODS = (7, 30, 90)


@bp.get("/billing")
def billing_overview():
    values, today = request.args, utcnow().date()
    typed = {"date_from": text(values, "date_from"), "date_to": text(values, "date_to")}
    form, status = Form(typed), 200
    try:
        date_to = day(values, "date_to", "To") or today
        date_from = day(values, "date_from", "From") or date_to - timedelta(days=OVERVIEW_DAYS - 1)
        summary = billing.overview(date_from, date_to)
    except InvalidInput as error:
        form, status, summary = Form.failed(typed, error, ("date_from", "date_to")), error.status, None
    periods = [(n, (today - timedelta(days=n - 1)).isoformat(), today.isoformat()) for n in PERIODS]
    return respond("admin/partials/billing_overview.html", "admin/billing.html", status, form=form,
                   summary=summary, periods=periods)


# --- settings --------------------------------------------------------------------------------------

def settings_page(status: int = 200, **extra):
    context = {"seat_price": billing.seat_price(), "seat_form": Form(), "settings_notice": None,
               "recharge_max": current_app.config["RECHARGE_MAX_CREDITS"], **extra}
    return respond("admin/partials/seat_price.html", "admin/settings.html", status, **context)


@bp.get("/settings")
def settings():
    return settings_page()


@bp.post("/settings/seat-price")
def seat_price_save():
    values = request.form
    try:
        credits = billing.set_seat_price(whole_number(values, "credits", "Seat price"), acting_admin())
    except FIXABLE as error:
        return settings_page(error.status, seat_form=Form.failed(_typed(values), error, ("credits",)))
    return settings_page(settings_notice=f"Seat price set to {credits:,} credits.")

