"""The HTMX dashboard. Each screen is one page template; what htmx swaps is a fragment under
partials/. A URL asked by htmx answers its fragment, asked by the browser the whole page."""
from __future__ import annotations

from datetime import datetime, time, timezone

from flask import make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError
from werkzeug.datastructures import MultiDict

from app.admin import bp
from app.admin.auth import acting_admin, guard, is_htmx, safe_next, sign_in_required
from app.admin.forms import Form, Page, checkbox, day, optional_text, page_number, text, whole_number
from app.core.errors import Conflict, DomainError, InvalidInput, Throttled, Unauthenticated
from app.generation import usage
from app.identity import admins, api_keys, audit, devices, tenants, users
from app.models import KEY_MODES, KEY_SCOPES, USER_ROLES, utcnow

TENANTS_PER_PAGE = 20
AUDIT_PER_PAGE = 50
# A form error the admin can fix; anything else (a foreign or missing id above all) keeps its own answer.
FIXABLE = (InvalidInput, Conflict)

# The dashboard's sections. Later issues give the disabled ones an endpoint.
NAV = (
    ("dashboard", "Dashboard", "admin.dashboard"),
    ("tenants", "Tenants", "admin.tenant_list"),
    ("models", "Models & prices", "admin.model_list"),
    ("billing", "Billing", "admin.billing_overview"),
    ("generations", "Generations", "admin.generation_list"),
    ("storage", "Storage", None),
    ("gateways", "Gateways", "admin.gateway_list"),
    ("admins", "Admins", "admin.admin_list"),
    ("audit", "Audit log", "admin.audit_log"),
    ("settings", "Settings", "admin.settings"),
)

bp.before_request(guard)


@bp.context_processor
def layout_context():
    return {"nav": NAV, "current_admin": current_user}


def wants_fragment() -> bool:
    # A history restore after a cache miss needs the whole page, even though htmx sends HX-Request.
    return (is_htmx() and request.headers.get("HX-History-Restore-Request") != "true"
            and request.headers.get("HX-Boosted") != "true")


def respond(fragment: str, page: str, status: int = 200, headers: dict | None = None, **context):
    """The fragment for htmx, the page for everyone else, from one URL."""
    response = make_response(render_template(fragment if wants_fragment() else page, **context), status)
    response.vary.add("HX-Request")
    response.headers.extend(headers or {})
    return response


@bp.errorhandler(DomainError)
def domain_error(error: DomainError):
    if is_htmx():
        return error.message, error.status  # not swapped; admin.js shows it as a notice
    return render_template("admin/error.html", error=error), error.status


@bp.errorhandler(CSRFError)
def csrf_error(error: CSRFError):
    # With the session gone the CSRF token goes with it: that is an ended session, not a forgery.
    if not current_user.is_authenticated and request.endpoint != "admin.login":
        return sign_in_required()
    message = "This form has expired; reload the page and try again."
    if is_htmx():
        return message, 400
    if request.endpoint == "admin.login":
        return render_template("admin/login.html", form=Form(message=message),
                               next=safe_next(request.values.get("next"))), 400
    return render_template("admin/error.html", error=DomainError(message)), 400


# --- sign-in ---------------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_url)
    form, status, headers = Form(), 200, {}
    if request.method == "POST":
        username = text(request.form, "username")
        form = Form({"username": username})
        try:
            admin = admins.sign_in(username, request.form.get("password", ""), request.remote_addr)
        except Throttled as error:
            form.message = f"Too many attempts, try again in {error.retry_after} s."
            status, headers = 429, {"Retry-After": str(error.retry_after)}
        except Unauthenticated:
            form.message = "Invalid username or password."
            status = 401
        else:
            session.clear()
            session.permanent = True  # expires after ADMIN_SESSION_MINUTES without a request
            login_user(admin)
            return redirect(next_url)
    return render_template("admin/login.html", form=form, next=next_url), status, headers


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"))


# --- dashboard home --------------------------------------------------------------------------------

@bp.get("/")
def dashboard():
    latest, _total = audit.list_entries(per_page=10)
    return render_template("admin/dashboard.html", counts=tenants.counts(), admin_count=len(admins.list_admins()),
                           latest=latest, today=usage.platform_day(utcnow().date()))


# --- tenants ---------------------------------------------------------------------------------------

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
        form = Form.failed(_without_secrets(values), error, TENANT_CREATE_FIELDS)
        return respond("admin/partials/tenant_create_form.html", "admin/tenant_new.html", error.status, form=form)
    # The key and secret exist in plain text only in this response: never redirect, never store.
    return respond("admin/partials/tenant_created.html", "admin/tenant_created.html",
                   headers={"HX-Retarget": "#content", "HX-Reswap": "innerHTML", "Cache-Control": "no-store"},
                   created=created)


def _without_secrets(values) -> MultiDict:
    """What to put back into a form that failed: never a password, never the old CSRF token."""
    return MultiDict([(name, value) for name, value in values.items(multi=True)
                      if "password" not in name and name != "csrf_token"])


def _info_section(tenant, **extra):
    return {"tenant": tenant, "info_form": Form(), **extra}


def _members_section(tenant, **extra):
    return {"tenant": tenant, "users": users.list_users(tenant.id), "seats_used": users.seats_used(tenant.id),
            "roles": USER_ROLES, "member_form": Form(), "member_notice": None, "row_error": None, **extra}


def _devices_section(tenant, **extra):
    return {"tenant": tenant, "devices": devices.list_devices(tenant.id), "device_notice": None, **extra}


def _keys_section(tenant, **extra):
    return {"tenant": tenant, "keys": api_keys.list_keys(tenant.id), "key_modes": KEY_MODES,
            "key_scopes": KEY_SCOPES, "key_form": Form({"mode": "live", "scopes": "generate"}), "new_key": None,
            "key_notice": None, **extra}


SECTIONS = {
    "info": ("admin/partials/tenant_info.html", _info_section),
    "members": ("admin/partials/members.html", _members_section),
    "devices": ("admin/partials/devices.html", _devices_section),
    "keys": ("admin/partials/keys.html", _keys_section),
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
                              info_form=Form.failed(_without_secrets(values), error, TENANT_EDIT_FIELDS))
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
                              member_form=Form.failed(_without_secrets(values), error, MEMBER_FIELDS))
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
                              key_form=Form.failed(_without_secrets(values), error, KEY_FIELDS))
    return tenant_section(tenant, "keys", headers={"Cache-Control": "no-store"}, new_key=(key, raw))


@bp.post("/tenants/<tenant_id>/keys/<key_id>/revoke")
def key_revoke(tenant_id, key_id):
    tenant = tenants.find_tenant(tenant_id)
    key = api_keys.revoke_key(tenant.id, key_id, acting_admin())
    return tenant_section(tenant, "keys", key_notice=f"Revoked {key.prefix}…; it no longer authenticates.")


# --- platform admins -------------------------------------------------------------------------------

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
        return admins_page(error.status, admin_form=Form.failed(_without_secrets(values), error, ADMIN_FIELDS))
    return admins_page(admin_notice=f"Created admin {admin.username}.")


@bp.post("/admins/<admin_id>/active")
def admin_set_active(admin_id):
    active = checkbox(request.form, "active")
    try:
        admin = admins.set_active(admin_id, acting_admin(), active)
    except FIXABLE as error:
        return admins_page(error.status, admin_form=Form(message=error.message))
    return admins_page(admin_notice=f"{'Reactivated' if active else 'Deactivated'} {admin.username}.")


# --- audit log -------------------------------------------------------------------------------------

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


@bp.app_template_filter("admin_time")
def admin_time(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else "—"
