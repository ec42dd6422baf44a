"""Dashboard sign-in: the Flask-Login user loader, the blueprint guard and the acting admin."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import redirect, request, url_for
from flask_login import current_user

from app.core.db import parse_uuid
from app.extensions import db, login_manager
from app.identity.audit import Actor
from app.identity.models import PlatformAdmin

PUBLIC_ENDPOINTS = ("admin.login",)


@login_manager.user_loader
def load_admin(session_id: str) -> PlatformAdmin | None:
    """The session names the admin *and* their session version, so deactivating an admin (which bumps
    the version) ends every dashboard session they have at once."""
    admin_id, _, version = (session_id or "").partition(":")
    admin_uuid = parse_uuid(admin_id)
    if admin_uuid is None or not version.isdigit():
        return None
    admin = db.session.get(PlatformAdmin, admin_uuid)
    if admin is None or not admin.is_active or admin.session_version != int(version):
        return None
    return admin


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: a `next` pointing elsewhere would be an open redirect."""
    target = (target or "").strip()
    parts = urlsplit(target)
    inside = parts.path == "/admin" or parts.path.startswith("/admin/")
    if (parts.scheme or parts.netloc or not inside or "\\" in target
            or parts.path.startswith(("/admin/login", "/admin/api"))):
        return url_for("admin.dashboard")
    return target


def _page_the_admin_was_on() -> str:
    if is_htmx():
        # The fragment URL is useless after signing in; come back to the page that asked for it.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        return current.path + (f"?{current.query}" if current.query else "")
    return request.full_path.rstrip("?")


def sign_in_required():
    login_url = url_for("admin.login", next=safe_next(_page_the_admin_was_on()))
    if is_htmx():
        # Never a login page inside a table cell: htmx follows HX-Redirect with a full page load.
        return "Your session has ended; sign in again.", 401, {"HX-Redirect": login_url}
    return redirect(login_url)


def guard():
    """Runs before every dashboard view: only a signed-in, active admin gets through."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return sign_in_required()


def acting_admin() -> Actor:
    admin = current_user
    return Actor("platform_admin", str(admin.id), admin.username, None, request.remote_addr)
