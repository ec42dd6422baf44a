"""A tenant's credits: balance, the ledger (filtered, paged, exported as CSV), recharge and adjust."""
from __future__ import annotations

import csv
import io
import re
import uuid

from flask import Response, request, stream_with_context

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, optional_text, text, typed_back, whole_number
from app.admin.rendering import FIXABLE, respond, wants_fragment
from app.admin.tenant_sections import credits_section, ledger_filters, tenant_section
from app.billing import accounts as billing
from app.billing.idempotency import KeyReused
from app.core.db import utcnow
from app.identity import tenants


@bp.get("/tenants/<tenant_id>/ledger")
def tenant_ledger(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    context = credits_section(tenant, ledger_values=request.args)
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
        form = Form(typed_back(values), message="This form was already used for a different recharge; check the "
                                            "ledger, then submit again to make a new one.")
        form.values["idempotency_key"] = str(uuid.uuid4())
        return tenant_section(tenant, "credits", 422, recharge_form=form)
    except FIXABLE as error:
        # Nothing was written, so the same key stays valid for the corrected form.
        return tenant_section(tenant, "credits", error.status,
                              recharge_form=Form.failed(typed_back(values), error, RECHARGE_FIELDS))
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
                              adjust_form=Form.failed(typed_back(values), error, ADJUST_FIELDS))
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
    entries = billing.iter_entries(tenant.id, **ledger_filters(request.args))

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
