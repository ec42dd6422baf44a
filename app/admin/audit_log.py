"""The audit log: every change, filtered by action, tenant, actor and date."""
from __future__ import annotations

from flask import request

from app.admin import bp
from app.admin.forms import Form, Page, day, page_number, text
from app.admin.rendering import respond
from app.core.errors import InvalidInput
from app.identity import audit

AUDIT_PER_PAGE = 50


AUDIT_FILTERS = ("action", "tenant", "actor", "date_from", "date_to")


@bp.get("/audit")
def audit_log():
    values, page = request.args, page_number(request.args)
    filters = {name: text(values, name) for name in AUDIT_FILTERS}
    form, status = Form(filters), 200
    try:
        rows, total = audit.list_entries(
            action=filters["action"], tenant=filters["tenant"], actor_name=filters["actor"],
            date_from=day(values, "date_from", "From"), date_to=day(values, "date_to", "To"),
            page=page, per_page=AUDIT_PER_PAGE)
    except InvalidInput as error:
        form, status = Form.failed(filters, error, AUDIT_FILTERS), error.status
        rows, total = [], 0
    return respond("admin/partials/audit_table.html", "admin/audit.html", status,
                   entries=Page(rows, total, page, AUDIT_PER_PAGE), form=form,
                   filters={k: v for k, v in filters.items() if v}, actions=audit.known_actions())
