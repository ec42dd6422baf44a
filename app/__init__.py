"""The application factory: the only place that wires things together."""
from __future__ import annotations

import logging
import os
import uuid

import sqlalchemy as sa
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from app.core import cache, counters
from app.core.db import use_wal
from app.core.errors import DomainError
from app.extensions import csrf, db, jwt, login_manager
from config import load_config


def create_app(overrides: dict | None = None) -> Flask:
    # A config built for another instance folder (tests build one per test) brings its own.
    instance_path = (overrides or {}).get("INSTANCE_PATH") or os.environ.get("WAULE_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    if overrides and overrides.get("SKIP_ENV_CONFIG"):
        app.config.from_mapping(overrides)
    else:
        app.config.from_mapping(load_config(instance_path=app.instance_path))
        app.config.from_mapping(overrides or {})
    app.config.setdefault("JWT_TOKEN_LOCATION", ["headers"])
    app.config["PERMANENT_SESSION_LIFETIME"] = app.config["ADMIN_SESSION_MINUTES"] * 60
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # the session lifetime already bounds it
    app.json.sort_keys = False  # keep fields in the order the schemas declare them
    if app.config.get("TRUST_PROXY_HOPS"):
        hops = app.config["TRUST_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    cache.init_app(app)
    with app.app_context():
        use_wal(db.engine)
    jwt.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)

    from app import jobs
    from app.gateway import sandbox as sandbox_link
    from app.identity import throttle
    throttle.init_app(app)
    sandbox_link.init_app(app)
    jobs.init_app(app)

    _register_blueprints(app)
    _register_request_hooks(app)
    _register_error_handlers(app)

    from app import cli
    cli.init_app(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from app.admin import api_bp as admin_api_bp
    from app.admin import bp as admin_bp
    from app.api import bp as api_bp

    csrf.exempt(api_bp)       # token-authenticated, no cookies
    csrf.exempt(admin_api_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_api_bp)

    from app.api.files import bp as files_bp
    csrf.exempt(files_bp)  # signed URLs (GET, and the local disk's signed upload PUT): no cookies, no CSRF at stake
    app.register_blueprint(files_bp)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        try:
            db.session.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            logging.getLogger(__name__).exception("readiness check failed")
            return jsonify(status="unavailable", database="unreachable"), 503
        return jsonify(status="ok", database="ok")

    @app.get("/")
    def index():
        from flask import redirect, url_for
        return redirect(url_for("admin.dashboard"))


def _register_request_hooks(app: Flask) -> None:
    from app.api.errors import wants_json_errors
    from app.core import text

    def assign_request_id():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if 8 <= len(incoming) <= 64 and incoming.isalnum() else uuid.uuid4().hex

    def refuse_nul_characters():
        text.refuse_nul(request, json_body=wants_json_errors())

    # First of all hooks: an error raised by an earlier one (CSRF, say) must still carry the id. Then no
    # U+0000 gets past the edge, whoever is calling.
    app.before_request_funcs.setdefault(None, [])[:0] = [assign_request_id, refuse_nul_characters]

    @app.after_request
    def tag_response(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/"):
            counters.flush_all()
        return response


def _register_error_handlers(app: Flask) -> None:
    from app.api.errors import domain_error_response, http_error_response, internal_error_response, wants_json_errors

    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        db.session.rollback()
        if wants_json_errors():
            return domain_error_response(error)
        return error.message, error.status, {"Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        if wants_json_errors():
            return http_error_response(error)
        return error

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        db.session.rollback()
        if isinstance(error, HTTPException):
            return handle_http_error(error)
        if wants_json_errors():
            return internal_error_response(error)
        logging.getLogger(__name__).exception("unhandled error (request %s)", g.get("request_id", "-"))
        return "Internal server error", 500
