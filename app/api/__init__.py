"""The tenant-facing JSON API at /api/v1: one views module per domain. Every view is authenticated
(the blueprint's guard resolves the caller) unless marked @public."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# The routes register themselves.
from app.api import (auth, billing, buckets, catalog, docs, generation, identity, midjourney,  # noqa: E402,F401
                     storage, uploads, videos, webhooks)

bp.before_request(auth.load_principal)
