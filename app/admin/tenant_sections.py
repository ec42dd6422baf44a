"""The sections of a tenant's detail page, in one explicit registry: each names its fragment and
builds its context. A request for one section (htmx) answers its fragment; a browser gets the whole
page with every section built."""
from __future__ import annotations

import uuid
from datetime import timedelta

from werkzeug.datastructures import MultiDict

from app.admin.charts import size_chart, usage_chart
from app.admin.forms import Form, day, text
from app.admin.rendering import respond, wants_fragment
from app.billing import accounts as billing
from app.billing import ledger
from app.billing.models import ENTRY_TYPES
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.generation import usage
from app.identity import api_keys, devices, users
from app.identity.models import KEY_MODES, KEY_SCOPES, USER_ROLES
from app.storage import billing as storage_billing
from app.storage import buckets
from app.webhooks import deliveries as webhook_deliveries
from app.webhooks import endpoints as webhook_endpoints
from app.webhooks.models import EVENT_TYPES


def info_section(tenant, **extra):
    return {"tenant": tenant, "info_form": Form(), **extra}


def members_section(tenant, **extra):
    return {"tenant": tenant, "users": users.list_users(tenant.id), "seats_used": users.seats_used(tenant.id),
            "roles": USER_ROLES, "member_form": Form(), "member_notice": None, "row_error": None, **extra}


def devices_section(tenant, **extra):
    return {"tenant": tenant, "devices": devices.list_devices(tenant.id), "device_notice": None, **extra}


def keys_section(tenant, **extra):
    return {"tenant": tenant, "keys": api_keys.list_keys(tenant.id), "key_modes": KEY_MODES,
            "key_scopes": KEY_SCOPES, "key_form": Form({"mode": "live", "scopes": "generate"}), "new_key": None,
            "key_notice": None, **extra}


LEDGER_PER_PAGE = 25


LEDGER_FILTERS = ("type", "date_from", "date_to")


def ledger_filters(values) -> dict:
    """The ledger filters as list_entries takes them; raises InvalidInput beside the bad one."""
    return {"type_": text(values, "type") or None, "date_from": day(values, "date_from", "From"),
            "date_to": day(values, "date_to", "To")}


def recharge_form() -> Form:
    # One key per rendered form: posting this form twice (double click, browser resubmit) recharges once.
    return Form({"idempotency_key": str(uuid.uuid4())})


def credits_section(tenant, *, ledger_values=None, **extra):
    ledger_values = MultiDict(ledger_values or {})
    typed = {name: text(ledger_values, name) for name in LEDGER_FILTERS}
    ledger_form = Form(typed)
    try:
        entries = billing.list_entries(tenant.id, **ledger_filters(ledger_values),
                                       cursor=text(ledger_values, "cursor") or None, limit=LEDGER_PER_PAGE)
    except InvalidInput as error:
        ledger_form = Form.failed(typed, error, LEDGER_FILTERS + ("cursor",))
        entries = billing.Page([], None)
    filters = {name: value for name, value in typed.items() if value}
    return {"tenant": tenant, "account": ledger.account(tenant.id), "entries": entries,
            "ledger_form": ledger_form, "ledger_filters": filters, "paged": bool(text(ledger_values, "cursor")),
            "entry_types": ENTRY_TYPES, "recharge_form": recharge_form(), "adjust_form": Form(),
            "credits_notice": None, **extra}


USAGE_PERIODS = (7, 30, 90)


def usage_section(tenant, *, usage_values=None, **extra):
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


RECENT_DELIVERIES = 20


def webhook_form() -> Form:
    return Form([("events", event) for event in EVENT_TYPES])


def webhooks_section(tenant, **extra):
    return {"tenant": tenant, "webhook_endpoints": webhook_endpoints.list_endpoints(tenant.id),
            "webhook_deliveries": webhook_deliveries.list_deliveries(tenant.id, limit=RECENT_DELIVERIES).deliveries,
            "event_types": EVENT_TYPES, "webhook_form": webhook_form(), "threshold_form": Form(), "new_secret": None,
            "webhook_notice": None, "webhook_error": None, "now": utcnow(), **extra}


QUOTA_UNITS = {"MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


def quota_form(tenant) -> Form:
    """The quota in the largest unit that holds it exactly (empty: no quota)."""
    quota = tenant.storage_quota_bytes
    if quota is None:
        return Form({"quota": "", "unit": "GiB"})
    unit = next((unit for unit, scale in reversed(QUOTA_UNITS.items()) if quota % scale == 0), "MiB")
    return Form({"quota": str(quota // QUOTA_UNITS[unit]), "unit": unit})


def storage_section(tenant, **extra):
    report = storage_billing.tenant_report(tenant.id)
    return {"tenant": tenant, "storage": report, "storage_chart": size_chart(report["days"]),
            "quota_form": quota_form(tenant), "quota_units": QUOTA_UNITS, "storage_notice": None, **extra}


def bucket_section(tenant, **extra):
    return {"tenant": tenant, "bucket": buckets.find_config(tenant.id), "bucket_form": Form(), "bucket_notice": None,
            "bucket_error": None, **extra}


SECTIONS = {
    "info": ("admin/partials/tenant_info.html", info_section),
    "members": ("admin/partials/members.html", members_section),
    "devices": ("admin/partials/devices.html", devices_section),
    "keys": ("admin/partials/keys.html", keys_section),
    "credits": ("admin/partials/tenant_credits.html", credits_section),
    "usage": ("admin/partials/tenant_usage.html", usage_section),
    "storage": ("admin/partials/tenant_storage.html", storage_section),
    "webhooks": ("admin/partials/webhooks.html", webhooks_section),
    "bucket": ("admin/partials/tenant_bucket.html", bucket_section),
}


def tenant_section(tenant, name: str, status: int = 200, headers: dict | None = None, **extra):
    """One section's fragment for htmx; the whole detail page (with that section's state) otherwise."""
    fragment, build = SECTIONS[name]
    context = {}
    if not wants_fragment():
        for _fragment, build_other in SECTIONS.values():
            context |= build_other(tenant)
    context |= build(tenant, **extra)
    return respond(fragment, "admin/tenant_detail.html", status, headers, **context)
