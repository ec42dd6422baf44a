"""Models and prices: enable or disable a model, edit its price rule with a live estimate, and choose
the gateway that serves it."""
from __future__ import annotations

import json

from flask import redirect, request, url_for

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, text, typed_back
from app.admin.rendering import FIXABLE, respond, wants_fragment
from app.catalog import pricing
from app.catalog import service as catalog
from app.catalog.models import BILLING_TYPES, MODEL_KINDS
from app.core.errors import InvalidInput
from app.gateway import registry as gateways


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
        return model_editor(model, rule, Form.failed(typed_back(values), error, MODEL_FIELDS), error.status)
    form = _model_form(model, rule)
    form.values["params"] = values.get("params", form.value("params"))  # keep the admin's sample
    return model_editor(model, rule, form, model_notice="Saved. New requests are priced with this rule.")


@bp.post("/models/<model_uuid>/preview")
def model_preview(model_uuid):
    model, rule = catalog.get_model(model_uuid)
    form = Form(typed_back(request.form))
    quote, preview_error = _preview(form.values)
    status = 400 if preview_error else 200
    if wants_fragment():
        return respond("admin/partials/price_preview.html", "admin/partials/price_preview.html", status,
                       quote=quote, preview_error=preview_error)
    return model_editor(model, rule, form, status)


@bp.post("/models/<model_uuid>/gateway")
def model_gateway_save(model_uuid):
    model = gateways.set_model_gateway(model_uuid, text(request.form, "gateway_id") or None, acting_admin())
    if not wants_fragment():
        return redirect(url_for("admin.model_edit", model_uuid=model.id))
    return respond("admin/partials/model_gateway.html", "admin/partials/model_gateway.html", model=model,
                   gateway_choices=gateways.gateway_names(), gateway_notice="Gateway saved.")
