"""Tenants: the list, creating one, and its detail page's info, members, devices and keys."""
from __future__ import annotations

from datetime import datetime, time, timezone

from flask import render_template, request

from app.admin import bp
from app.admin.auth import acting_admin
from app.admin.forms import Form, Page, checkbox, day, optional_text, page_number, text, typed_back, whole_number
from app.admin.rendering import FIXABLE, respond
from app.admin.tenant_sections import tenant_section
from app.identity import api_keys, devices, tenants, users

TENANTS_PER_PAGE = 20


@bp.get("/tenants")
def tenant_list():
    search, page = text(request.args, "q"), page_number(request.args)
    rows, total = tenants.list_tenants(search=search, page=page, per_page=TENANTS_PER_PAGE)
    return respond("admin/partials/tenant_table.html", "admin/tenants.html",
                   tenants=Page(rows, total, page, TENANTS_PER_PAGE), search=search)


TENANT_CREATE_FIELDS = ("name", "contact_name", "contact_phone", "contact_email", "max_seats", "admin_username",
                        "admin_password")


@bp.get("/tenants/new")
def tenant_new():
    return render_template("admin/tenant_new.html", form=Form({"max_seats": "5", "require_device": "on"}))


@bp.post("/tenants/new")
def tenant_create():
    values = request.form
    try:
        created = tenants.create_tenant(
            acting_admin(), name=text(values, "name"), contact_name=optional_text(values, "contact_name"),
            contact_phone=optional_text(values, "contact_phone"), contact_email=optional_text(values, "contact_email"),
            max_seats=whole_number(values, "max_seats", "Max seats"), require_device=checkbox(values, "require_device"),
            admin_username=optional_text(values, "admin_username"), admin_password=values.get("admin_password") or None)
    except FIXABLE as error:
        form = Form.failed(typed_back(values), error, TENANT_CREATE_FIELDS)
        return respond("admin/partials/tenant_create_form.html", "admin/tenant_new.html", error.status, form=form)
    # The key and secret exist in plain text only in this response: never redirect, never store.
    return respond("admin/partials/tenant_created.html", "admin/tenant_created.html",
                   headers={"HX-Retarget": "#content", "HX-Reswap": "innerHTML", "Cache-Control": "no-store"},
                   created=created)


@bp.get("/tenants/<tenant_id>")
def tenant_detail(tenant_id):
    return tenant_section(tenants.find_tenant(tenant_id), "info")


@bp.get("/tenants/<tenant_id>/members")
def member_list(tenant_id):
    return tenant_section(tenants.find_tenant(tenant_id), "members")


TENANT_EDIT_FIELDS = ("name", "contact_name", "contact_phone", "contact_email", "max_seats")


@bp.post("/tenants/<tenant_id>/edit")
def tenant_edit(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        tenants.update_tenant(tenant.id, acting_admin(), {
            "name": text(values, "name"), "contact_name": optional_text(values, "contact_name"),
            "contact_phone": optional_text(values, "contact_phone"),
            "contact_email": optional_text(values, "contact_email"),
            "max_seats": whole_number(values, "max_seats", "Max seats"),
            "require_device": checkbox(values, "require_device")})
    except FIXABLE as error:
        return tenant_section(tenant, "info", error.status,
                              info_form=Form.failed(typed_back(values), error, TENANT_EDIT_FIELDS))
    # Seats may have changed: the members section listens for this and refreshes its count.
    return tenant_section(tenant, "info", headers={"HX-Trigger": "tenant-changed"}, info_notice="Saved.")


@bp.post("/tenants/<tenant_id>/active")
def tenant_set_active(tenant_id):
    tenant = tenants.find_tenant(tenant_id)
    active = checkbox(request.form, "active")
    tenants.update_tenant(tenant.id, acting_admin(), {"is_active": active})
    return tenant_section(tenant, "info", info_notice="Tenant reactivated." if active else "Tenant deactivated.")


MEMBER_FIELDS = ("username", "password", "nickname", "role")


@bp.post("/tenants/<tenant_id>/members")
def member_add(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        user = users.create_user(tenant.id, acting_admin(), username=text(values, "username"),
                                 password=values.get("password", ""), nickname=optional_text(values, "nickname"),
                                 role=text(values, "role") or "member")
    except FIXABLE as error:
        return tenant_section(tenant, "members", error.status,
                              member_form=Form.failed(typed_back(values), error, MEMBER_FIELDS))
    return tenant_section(tenant, "members", member_notice=f"Added {user.username}.")


@bp.post("/tenants/<tenant_id>/members/<member_id>/active")
def member_set_active(tenant_id, member_id):
    tenant = tenants.find_tenant(tenant_id)
    active = checkbox(request.form, "active")
    try:
        user = users.update_user(tenant.id, member_id, acting_admin(), {"is_active": active})
    except FIXABLE as error:
        return tenant_section(tenant, "members", error.status, row_error=(member_id, error.message))
    notice = f"Reactivated {user.username}." if active else f"Deactivated {user.username}; their sessions ended."
    return tenant_section(tenant, "members", member_notice=notice)


@bp.post("/tenants/<tenant_id>/members/<member_id>/password")
def member_reset_password(tenant_id, member_id):
    tenant = tenants.find_tenant(tenant_id)
    try:
        user = users.update_user(tenant.id, member_id, acting_admin(), {"password": request.form.get("password", "")})
    except FIXABLE as error:
        return tenant_section(tenant, "members", error.status, row_error=(member_id, error.message))
    return tenant_section(tenant, "members", member_notice=f"New password set for {user.username}; "
                                                           "their sessions ended.")


@bp.post("/tenants/<tenant_id>/devices/<device_id>/unbind")
def device_unbind(tenant_id, device_id):
    tenant = tenants.find_tenant(tenant_id)
    devices.unbind_device(tenant.id, device_id, acting_admin())
    return tenant_section(tenant, "devices", device_notice="Device unbound; the next login binds a new one.")


KEY_FIELDS = ("name", "mode", "scopes", "expires_at")


@bp.post("/tenants/<tenant_id>/keys")
def key_create(tenant_id):
    tenant, values = tenants.find_tenant(tenant_id), request.form
    try:
        expires_on = day(values, "expires_at", "Expiry date")
        key, raw = api_keys.create_key(
            tenant.id, acting_admin(), name=text(values, "name"), mode=text(values, "mode") or "live",
            scopes=values.getlist("scopes"),
            expires_at=datetime.combine(expires_on, time.min, tzinfo=timezone.utc) if expires_on else None)
    except FIXABLE as error:
        return tenant_section(tenant, "keys", error.status,
                              key_form=Form.failed(typed_back(values), error, KEY_FIELDS))
    return tenant_section(tenant, "keys", headers={"Cache-Control": "no-store"}, new_key=(key, raw))


@bp.post("/tenants/<tenant_id>/keys/<key_id>/revoke")
def key_revoke(tenant_id, key_id):
    tenant = tenants.find_tenant(tenant_id)
    key = api_keys.revoke_key(tenant.id, key_id, acting_admin())
    return tenant_section(tenant, "keys", key_notice=f"Revoked {key.prefix}…; it no longer authenticates.")
