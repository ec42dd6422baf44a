"""A stand-in for waule-api, the vendor gateway: every endpoint of the contract with real media.

Waule Server runs and is tested against it with no vendor. It is a separate WSGI app and imports nothing
from `app/`, so it can run in its own process (`python -m sandbox`) or be mounted in-process.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from flask import Flask, send_from_directory
from werkzeug.exceptions import HTTPException

from sandbox.media import CONTENT_TYPES, MediaStore
from sandbox.midjourney import TaskBoard

DEFAULT_PREFIXES = ("/v1", "/internal/v1")  # the deployed gateway, and the planned one
DEFAULT_FILES_DIR = os.path.join("instance", "sandbox-files")
DEVELOPMENT_SECRET = "sandbox-secret"
DEFAULT_TIMEOUT_CAP = 600.0

log = logging.getLogger(__name__)


@dataclass
class Sandbox:
    media: MediaStore
    tasks: TaskBoard


def resolve_secret(environ=os.environ) -> str:
    """SANDBOX_SECRET, else WAULEAPI_SECRET (so a server and its sandbox agree by default), else a
    well-known development value, announced on stderr."""
    secret = environ.get("SANDBOX_SECRET") or environ.get("WAULEAPI_SECRET")
    if secret:
        return secret
    print(f"sandbox: SANDBOX_SECRET and WAULEAPI_SECRET are unset; using the development secret "
          f"{DEVELOPMENT_SECRET!r}", file=sys.stderr)
    return DEVELOPMENT_SECRET


def create_app(*, secret: str, files_dir: str | os.PathLike = DEFAULT_FILES_DIR, public_url: str | None = None,
               prefixes: tuple[str, ...] | list[str] = DEFAULT_PREFIXES,
               timeout_cap: float = DEFAULT_TIMEOUT_CAP) -> Flask:
    """The sandbox app. `public_url` is the base of result URLs (default: the request's own host);
    `timeout_cap` bounds how long `[sandbox:timeout]` and `[sandbox:slow=N]` hold a request."""
    if not secret:
        raise ValueError("the sandbox needs a secret")
    if timeout_cap < 0:
        raise ValueError("timeout_cap must not be negative")
    app = Flask(__name__)
    app.config.update(
        SANDBOX_SECRET=secret,
        SANDBOX_PUBLIC_URL=(public_url or "").rstrip("/") or None,
        SANDBOX_TIMEOUT_CAP=float(timeout_cap),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,  # reference images may arrive as data: URIs
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    store = MediaStore(files_dir)
    app.extensions["sandbox"] = Sandbox(media=store, tasks=TaskBoard())

    from sandbox.gateway import bp, error_response

    for index, prefix in enumerate(dict.fromkeys(prefixes)):
        app.register_blueprint(bp, url_prefix="/" + prefix.strip("/"), name=f"gateway_{index}")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/files/<name>")
    def result_file(name: str):
        extension = os.path.splitext(name)[1].lower()
        if extension not in CONTENT_TYPES or name.startswith("."):
            return error_response(404, "no such file", "not_found")
        return send_from_directory(store.root.resolve(), name, mimetype=CONTENT_TYPES[extension], max_age=3600)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        kinds = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "invalid_request"}
        return error_response(error.code or 500, error.description or error.name, kinds.get(error.code, "server_error"))

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("sandbox: unexpected error")
        return error_response(500, f"sandbox internal error: {type(error).__name__}", "server_error")

    return app


def create_app_from_env(environ=os.environ) -> Flask:
    """For WSGI servers: `gunicorn -w 1 -k gthread --threads 64 'sandbox:create_app_from_env()'`
    (one process: Midjourney tasks live in its memory)."""
    prefixes = [p for p in (environ.get("SANDBOX_PREFIXES") or "").split(",") if p.strip()]
    return create_app(
        secret=resolve_secret(environ),
        files_dir=environ.get("SANDBOX_FILES_DIR") or DEFAULT_FILES_DIR,
        public_url=environ.get("SANDBOX_PUBLIC_URL") or None,
        prefixes=prefixes or DEFAULT_PREFIXES,
        timeout_cap=_seconds(environ.get("SANDBOX_TIMEOUT_CAP"), "SANDBOX_TIMEOUT_CAP"),
    )


def _seconds(raw: str | None, name: str) -> float:
    if not raw:
        return DEFAULT_TIMEOUT_CAP
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, not {raw!r}")
    return value
