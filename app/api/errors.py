"""The API error envelope, OpenAI's shape: {"error": {"message", "type", "code", "param"}}.

Registered on the app (not a blueprint) so unmatched URLs, wrong methods, oversized bodies and
unexpected exceptions answer in it too: everywhere except the dashboard's pages under /admin/ (they keep
their HTML) and /files/ (its plain answers end up in <img> and <audio> tags, which read no JSON).
"""
from __future__ import annotations

import logging
import re

from flask import g, jsonify, request
from werkzeug.exceptions import HTTPException

from app.core.errors import DomainError, Throttled

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/admin/api/")

_HTTP_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "unauthenticated"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", "unprocessable"),
    429: ("rate_limit_error", "rate_limited"),
    500: ("api_error", "internal_error"),
    503: ("api_error", "service_unavailable"),
}
INTERNAL_ERROR_MESSAGE = "Internal server error; quote the request_id when reporting it."

# OpenAI's endpoints that we do not offer: an OpenAI client calling one hears so, not "no such endpoint".
NOT_OFFERED = {
    "embeddings": "embeddings", "audio/transcriptions": "audio transcriptions",
    "audio/translations": "audio translations", "moderations": "moderations", "responses": "the Responses API",
    "completions": "legacy completions (use chat/completions)", "images/edits": "image edits",
    "images/variations": "image variations", "files": "file uploads", "uploads": "file uploads",
    "batches": "batches", "fine_tuning": "fine-tuning", "assistants": "assistants", "threads": "threads",
    "vector_stores": "vector stores", "realtime": "the Realtime API",
}
_NOT_OFFERED_PATH = re.compile(r"(?:/api)?/v1/(" + "|".join(map(re.escape, NOT_OFFERED)) + r")(?:/.*)?")
OFFERED = "images/generations, audio/speech and chat/completions"


def wants_json_errors() -> bool:
    path = request.path
    if path.startswith(JSON_PREFIXES) or path in ("/api", "/admin/api"):
        return True
    return not (path == "/admin" or path.startswith(("/admin/", "/files/")))


def error_body(message: str, *, type: str, code: str, param: str | None = None) -> dict:
    body = {"message": message, "type": type, "code": code, "param": param}
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    return {"error": body}


def domain_error_body(error: DomainError) -> dict:
    """The envelope alone: a stream that fails after it began sends it as its last event."""
    return error_body(error.message, type=error.type, code=error.code, param=error.param)


def error_response(status: int, message: str, *, type: str, code: str, param: str | None = None,
                   headers: dict | None = None):
    response = jsonify(error_body(message, type=type, code=code, param=param))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def domain_error_response(error: DomainError):
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, Throttled) else None
    return error_response(error.status, error.message, type=error.type, code=error.code, param=error.param,
                          headers=headers)


def http_error_response(error: HTTPException):
    status = error.code or 500
    type_, code = _HTTP_TYPES.get(status, ("api_error", "http_error"))
    messages = {
        405: f"Method {request.method} is not allowed here.",
        413: "Request body is too large.",
        500: INTERNAL_ERROR_MESSAGE,
    }
    message = messages.get(status) or error.description or error.name
    if status == 404:
        message, code = _not_found(code)
    headers = {}
    if status == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    return error_response(status, message, type=type_, code=code, headers=headers)


def _not_found(code: str) -> tuple[str, str]:
    path = request.path
    offered = _NOT_OFFERED_PATH.fullmatch(path)
    if offered:
        return (f"This server does not offer {NOT_OFFERED[offered.group(1)]}; it offers {OFFERED} "
                "(see /api/v1/docs).", "endpoint_not_offered")
    if not path.startswith(JSON_PREFIXES) and path not in ("/api", "/admin/api"):
        example = f"/api{path}" if path.startswith("/v1/") else "/api/v1/models"
        return f"No such endpoint. The API is under /api/v1 (for example {example}).", code
    return "No such endpoint.", code


def internal_error_response(error: Exception):
    log.exception("unhandled error on %s %s (request %s)", request.method, request.path,
                  getattr(g, "request_id", "-"))
    return error_response(500, INTERNAL_ERROR_MESSAGE, type="api_error", code="internal_error")
