"""How every dashboard screen answers: the navigation, a page or its htmx fragment from one URL, the
blueprint's error pages, and the template filters."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import make_response, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.admin import bp
from app.admin.auth import is_htmx, safe_next, sign_in_required
from app.admin.forms import Form
from app.core.errors import Conflict, DomainError, InvalidInput
from app.storage.quota import human_size

# A form error the admin can fix; anything else (a foreign or missing id above all) keeps its own answer.
FIXABLE = (InvalidInput, Conflict)


# The dashboard's sections. Later issues give the disabled ones an endpoint.
NAV = (
    ("dashboard", "Dashboard", "admin.dashboard"),
    ("tenants", "Tenants", "admin.tenant_list"),
    ("models", "Models & prices", "admin.model_list"),
    ("billing", "Billing", "admin.billing_overview"),
    ("generations", "Generations", "admin.generation_list"),
    ("jobs", "Jobs", "admin.job_list"),
    ("storage", "Storage", "admin.storage_overview"),
    ("gateways", "Gateways", "admin.gateway_list"),
    ("admins", "Admins", "admin.admin_list"),
    ("audit", "Audit log", "admin.audit_log"),
    ("settings", "Settings", "admin.settings"),
)


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


@bp.app_template_filter("admin_time")
def admin_time(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


@bp.app_template_filter("size")
def size_filter(value: int | None) -> str:
    return "—" if value is None else human_size(value)


@bp.app_template_filter("duration")
def duration(value: timedelta | None) -> str:
    """A short span as people say it: 45 s, 3 min, 2 h 5 min (a negative one counts as none)."""
    if value is None:
        return "—"
    seconds = max(0, int(value.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@bp.app_template_filter("credits")
def credits_filter(value: int | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+,}" if signed and value else f"{value:,}"
