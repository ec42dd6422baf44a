"""The API error envelope, OpenAI's shape: {"error": {"message", "type", "code", "param"}}.

Registered on the app (not a blueprint) so unmatched URLs, wrong methods, oversized bodies and
unexpected exceptions under /api/ and /admin/api answer in it too.
"""
from __future__ import annotations

import logging

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


def wants_json_errors() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.path in ("/api", "/admin/api")


def error_response(status: int, message: str, *, type: str, code: str, param: str | None = None,
                   headers: dict | None = None):
    body = {"message": message, "type": type, "code": code, "param": param}
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    response = jsonify({"error": body})
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
        404: "No such endpoint.",
        405: f"Method {request.method} is not allowed here.",
        413: "Request body is too large.",
        500: INTERNAL_ERROR_MESSAGE,
    }
    message = messages.get(status) or error.description or error.name
    headers = {}
    if status == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    return error_response(status, message, type=type_, code=code, headers=headers)


def internal_error_response(error: Exception):
    log.exception("unhandled error on %s %s (request %s)", request.method, request.path,
                  getattr(g, "request_id", "-"))
    return error_response(500, INTERNAL_ERROR_MESSAGE, type="api_error", code="internal_error")
