"""Storage: the platform bucket's settings (never a secret), the billing rules with one active, the
tenants storing the most; and on a tenant's page its Storage section with the editable quota."""
from __future__ import annotations

from flask import current_app, request

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, checkbox, text, typed_back, whole_number
from app.admin.rendering import FIXABLE, respond
from app.admin.tenant_sections import QUOTA_UNITS, tenant_section
from app.core.errors import InvalidInput
from app.identity import tenants
from app.schemas.storage import MAX_BYTES
from app.storage import billing, metering

RULE_FIELDS = billing.RULE_FIELDS
PRICE_FIELDS = tuple(name for name in RULE_FIELDS if name != "name")
# Settings named like these hold a secret: the page says whether one is set, never what it is.
SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "PRIVATE", "CREDENTIAL")
SETTING_PREFIXES = ("STORAGE_", "S3_", "OSS_")
TOP_TENANTS = 10


def bucket_settings(config) -> list[tuple[str, str]]:
    """The platform bucket's settings as the environment gave them, secrets as "set (hidden)"."""
    settings = {name: value for name, value in config.items()
                if name.startswith(SETTING_PREFIXES) and name != "STORAGE_BUCKET"}
    settings |= config.get("STORAGE_BUCKET") or {}  # the chosen cloud backend's OSS_… or S3_… settings
    shown = []
    for name in sorted(settings):
        value = settings[name]
        secret = any(word in name for word in SECRET_WORDS) or (name.endswith("KEY") and not name.endswith("KEY_ID"))
        if value in (None, "", ()):
            shown.append((name, "not set"))
        else:
            shown.append((name, "set (hidden)" if secret else str(value)))
    return shown


def _rule_values(values) -> dict:
    fields = {"name": text(values, "name")}
    for name in PRICE_FIELDS:
        fields[name] = whole_number(values, name, name.replace("_", " ").capitalize())
    return fields


def _new_rule_form() -> Form:
    return Form({"name": "", **{name: str(value) for name, value in billing.RULE_DEFAULTS.items()}})


def storage_page(status: int = 200, **extra):
    context = {"settings": bucket_settings(current_app.config), "backend": current_app.config["STORAGE_BACKEND"],
               "rules": billing.list_rules(), "rule_form": _new_rule_form(), "rule_notice": None, "rule_error": None,
               "top_tenants": metering.top_tenants(TOP_TENANTS), "totals": metering.platform_totals(),
               "days_per_month": billing.DAYS_PER_MONTH, **extra}
    return respond("admin/partials/storage_rules.html", "admin/storage.html", status, **context)


@bp.get("/storage")
def storage_overview():
    return storage_page()


@bp.post("/storage/rules")
def storage_rule_create():
    values = request.form
    try:
        rule = billing.create_rule(acting_admin(), active=checkbox(values, "is_active"), **_rule_values(values))
    except FIXABLE as error:
        return storage_page(error.status, rule_form=Form.failed(typed_back(values), error, RULE_FIELDS))
    notice = f"Added {rule.name}" + ("; it bills from the next day on." if rule.is_active else ".")
    return storage_page(rule_notice=notice)


def _edit_form(rule) -> Form:
    return Form({name: str(getattr(rule, name)) for name in RULE_FIELDS})


def rule_editor(rule, form: Form, status: int = 200, **extra):
    context = {"rule": rule, "form": form, "rule_notice": None, "days_per_month": billing.DAYS_PER_MONTH, **extra}
    return respond("admin/partials/storage_rule_form.html", "admin/storage_rule_edit.html", status, **context)


@bp.get("/storage/rules/<rule_id>")
def storage_rule_edit(rule_id):
    rule = billing.get_rule(rule_id)
    return rule_editor(rule, _edit_form(rule))


@bp.post("/storage/rules/<rule_id>")
def storage_rule_save(rule_id):
    values = request.form
    try:
        rule = billing.update_rule(rule_id, acting_admin(), _rule_values(values))
    except FIXABLE as error:
        return rule_editor(billing.get_rule(rule_id), Form.failed(typed_back(values), error, RULE_FIELDS),
                           error.status)
    return rule_editor(rule, _edit_form(rule), rule_notice="Saved: days billed from now on use these prices.")


@bp.post("/storage/rules/<rule_id>/active")
def storage_rule_set_active(rule_id):
    active = checkbox(request.form, "active")
    try:
        rule = billing.set_active(rule_id, acting_admin(), active)
    except FIXABLE as error:
        return storage_page(error.status, rule_error=error.message)
    notice = (f"{rule.name} is the active rule now." if active
              else f"{rule.name} is off: no rule is active, so storage is metered but not charged.")
    return storage_page(rule_notice=notice)



@bp.get("/tenants/<tenant_id>/storage")
def tenant_storage(tenant_id):
    return tenant_section(tenants.find_tenant(tenant_id), "storage")


@bp.post("/tenants/<tenant_id>/storage/quota")
def tenant_storage_quota(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        quota = _quota_bytes(values)
        billing.set_quota(tenant.id, quota, acting_admin())
    except FIXABLE as error:
        return tenant_section(tenant, "storage", error.status,
                              quota_form=Form.failed(typed_back(values), error, ("quota",)))
    notice = "No storage quota." if quota is None else f"Storage quota set to {text(values, 'quota')} {values['unit']}."
    return tenant_section(tenant, "storage", storage_notice=notice)


def _quota_bytes(values) -> int | None:
    if not text(values, "quota"):
        return None
    amount, unit = whole_number(values, "quota", "Quota"), text(values, "unit")
    if unit not in QUOTA_UNITS:
        raise InvalidInput("Choose MiB, GiB or TiB.", param="quota")
    if not 0 <= amount * QUOTA_UNITS[unit] <= MAX_BYTES:
        raise InvalidInput(f"Quota must be from 0 to {MAX_BYTES // QUOTA_UNITS[unit]:,} {unit}.", param="quota")
    return amount * QUOTA_UNITS[unit]
