"""The admin API's own OpenAPI document, behind the same admin token as every route it describes."""
from __future__ import annotations

from flask import jsonify

from app.admin.api import api_bp
from app.api.docs import document

DESCRIPTION = """\
The platform operator's JSON API at /admin/api: tenants, their API keys, members and devices, credits
(recharge with `Idempotency-Key`, adjust, the ledger), usage, models and prices, gateways, and the worker's
generations (cancel a queued or running one, retry a failed video or Midjourney task).

Every route, this document included, needs `Authorization: Bearer <admin token>`; `flask admins token
USERNAME` issues one (shown once). Errors are the tenant API's envelope,
`{"error": {"message", "type", "code", "param", "request_id"}}`; timestamps are RFC 3339 in UTC with a `Z`.
"""


@api_bp.get("/openapi.json")
def openapi():
    return jsonify(document("/admin/api", "Waule Server admin API", DESCRIPTION, auth=("admin",)))
