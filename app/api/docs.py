from flask import current_app, jsonify, render_template

from app.api import bp
from app.api.auth import public
from app.api.openapi import build_openapi

API_VERSION = "1.0.0"


@bp.get("/openapi.json")
@public
def openapi():
    document = current_app.extensions.get("waule.openapi")
    if document is None:  # built once: the URL map does not change after start-up
        document = build_openapi(current_app, "/api/v1", title="Waule Server API", version=API_VERSION)
        current_app.extensions["waule.openapi"] = document
    return jsonify(document)


@bp.get("/docs")
@public
def docs():
    return render_template("api_docs.html")
