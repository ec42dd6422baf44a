"""The tenant-facing JSON API at /api/v1."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from app.api import auth, auth_views, billing_views, docs, generation_views, tenant_views  # noqa: E402,F401  (routes register themselves)

bp.before_request(auth.load_principal)
