"""The platform admin side: the HTMX dashboard at /admin and the JSON admin API at /admin/api."""
from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
api_bp = Blueprint("admin_api", __name__, url_prefix="/admin/api")

from app.admin import api, billing_api, billing_views, generation_views, usage_api, views  # noqa: E402,F401  (routes register themselves)
