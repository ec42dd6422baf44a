"""Platform admins: who may sign in to the dashboard."""
from __future__ import annotations

from flask import request

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, checkbox, text, typed_back
from app.admin.rendering import FIXABLE, respond
from app.identity import admins

ADMIN_FIELDS = ("username", "password")


def admins_page(status: int = 200, **extra):
    context = {"admins": admins.list_admins(), "admin_form": Form(), "admin_notice": None, **extra}
    return respond("admin/partials/admins.html", "admin/admins.html", status, **context)


@bp.get("/admins")
def admin_list():
    return admins_page()


@bp.post("/admins")
def admin_create():
    values = request.form
    try:
        admin = admins.create_admin(acting_admin(), username=text(values, "username"),
                                    password=values.get("password", ""))
    except FIXABLE as error:
        return admins_page(error.status, admin_form=Form.failed(typed_back(values), error, ADMIN_FIELDS))
    return admins_page(admin_notice=f"Created admin {admin.username}.")


@bp.post("/admins/<admin_id>/active")
def admin_set_active(admin_id):
    active = checkbox(request.form, "active")
    try:
        admin = admins.set_active(admin_id, acting_admin(), active)
    except FIXABLE as error:
        return admins_page(error.status, admin_form=Form(message=error.message))
    return admins_page(admin_notice=f"{'Reactivated' if active else 'Deactivated'} {admin.username}.")
