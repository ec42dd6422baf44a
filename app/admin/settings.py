"""Platform settings an operator edits: the seat price."""
from __future__ import annotations

from flask import current_app, request

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, typed_back, whole_number
from app.admin.rendering import FIXABLE, respond
from app.billing import accounts as billing


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
        return settings_page(error.status, seat_form=Form.failed(typed_back(values), error, ("credits",)))
    return settings_page(settings_notice=f"Seat price set to {credits:,} credits.")
