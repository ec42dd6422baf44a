"""The platform admin side: the HTMX dashboard at /admin, one module per screen, and the JSON admin
API at /admin/api (admin/api/). Each blueprint guards itself: every dashboard view needs a signed-in
admin (auth.guard), every admin API route an admin token (api.authenticate_admin)."""
from flask import Blueprint

from app.admin.auth import guard

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(guard)

from app.admin import (  # noqa: E402,F401
                       admins,
                       audit_log,
                       billing,
                       catalog,
                       dashboard,
                       gateways,
                       generations,
                       jobs,
                       rendering,
                       settings,
                       sign_in,
                       storage,
                       tenant_bucket,
                       tenant_credits,
                       tenant_usage,
                       tenant_webhooks,
                       tenants,
)
from app.admin.api import api_bp  # noqa: E402,F401
