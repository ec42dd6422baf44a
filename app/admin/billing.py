"""The platform's billing overview: credits recharged, consumed and held, per tenant, over a period."""
from __future__ import annotations

from datetime import timedelta

from flask import request

from app.admin import bp
from app.admin.forms import Form, day, text
from app.admin.rendering import respond
from app.billing import accounts as billing
from app.core.db import utcnow
from app.core.errors import InvalidInput

OVERVIEW_DAYS = 30


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
