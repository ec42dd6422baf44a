from flask import current_app, jsonify, render_template

from app.api import bp
from app.api.auth import public
from app.api.openapi import build_openapi

API_VERSION = "1.0.0"
DESCRIPTION = """\
The tenant API of Waule Server: AI images, speech and chat in OpenAI's shapes (the official `openai`
SDK works with `base_url` ending in `/api/v1`), with credits, members and devices.

- **Who is calling**: a tenant API key (`Authorization: Bearer wk_live_…` or `X-API-Key`), or a member's
  access token from `POST /api/v1/auth/login`. `wk_test_` keys call the sandbox and are never charged.
- **Credits** are held before a generation, settled at its real cost, released on any failure; every
  paid answer says what it cost. `Idempotency-Key` makes a retried POST safe.
- **Errors** are `{"error": {"message", "type", "code", "param", "request_id"}}` with the HTTP status,
  OpenAI's shape; unmatched URLs and OpenAI endpoints we do not offer answer it too (404).
- **Timestamps** are RFC 3339 in UTC with a `Z`; OpenAI's `created` fields are Unix seconds.

The platform admin API has its own document at `/admin/api/openapi.json` (send an admin token).
"""


def document(prefix: str, title: str, description: str, auth: tuple[str, ...] = ()) -> dict:
    """Built once per app and prefix: the URL map does not change after start-up."""
    key = f"waule.openapi:{prefix}"
    if key not in current_app.extensions:
        current_app.extensions[key] = build_openapi(current_app, prefix, title=title, version=API_VERSION,
                                                    description=description, auth=auth)
    return current_app.extensions[key]


@bp.get("/openapi.json")
@public
def openapi():
    return jsonify(document("/api/v1", "Waule Server API", DESCRIPTION))


@bp.get("/docs")
@public
def docs():
    return render_template("api_docs.html")
