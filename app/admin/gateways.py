"""The waule-api gateways: add, edit, test the connection, (de)activate. Secrets go in, never out."""
from __future__ import annotations

from flask import request

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, checkbox, text, typed_back, whole_number
from app.admin.rendering import FIXABLE, respond, wants_fragment
from app.gateway import registry as gateways

GATEWAY_FIELDS = ("name", "base_url", "files_origin", "secret", "path_prefix", "priority", "weight")


def _gateway_values(values) -> dict:
    return {"name": text(values, "name"), "base_url": text(values, "base_url"),
            "files_origin": text(values, "files_origin"), "secret": values.get("secret", ""),
            "path_prefix": text(values, "path_prefix"),
            "priority": whole_number(values, "priority", "Priority"),
            "weight": whole_number(values, "weight", "Weight"), "is_active": checkbox(values, "is_active")}


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
        return gateways_page(error.status, gateway_form=Form.failed(typed_back(values), error,
                                                                    GATEWAY_FIELDS))
    return gateways_page(gateway_notice=f"Added gateway {row.name}. Test its connection before relying on it.")


def gateway_editor(row, form: Form, status: int = 200, **extra):
    context = {"gateway": row, "form": form, "gateway_notice": None, **extra}
    return respond("admin/partials/gateway_form.html", "admin/gateway_edit.html", status, **context)


def _edit_form(row) -> Form:
    return Form({"name": row.name, "base_url": row.base_url, "files_origin": row.files_origin or "",
                 "path_prefix": row.path_prefix, "priority": str(row.priority), "weight": str(row.weight),
                 "is_active": "on" if row.is_active else ""})


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
        return gateway_editor(row, Form.failed(typed_back(values), error, GATEWAY_FIELDS), error.status)
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
