"""`@endpoint`: a view declares its request and response schemas (app/schemas), and the OpenAPI document
is built from those declarations.

Pydantic validates; each view declares its body, query and response models with `@endpoint`, and
the OpenAPI document is assembled from those declarations by walking the URL map, so the docs cannot
drift from what the code accepts.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from flask import Flask, request
from pydantic import BaseModel, ValidationError

from app.core.errors import InvalidInput


@dataclass
class Spec:
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)
    media: tuple[str, ...] = ()  # other media types the success answer may take (bytes, server-sent events)
    also: dict[int, type[BaseModel]] = field(default_factory=dict)  # other success statuses and their bodies


def _describe(error: ValidationError) -> InvalidInput:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return InvalidInput(f"Malformed JSON body: {first['msg']}.", code="invalid_json")
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "Unknown field"
    count = len(error.errors())
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    return InvalidInput(f"{location}: {message}{more}" if location else f"{message}{more}", param=location or None)


def parse_body(model: type[BaseModel]):
    """Read the body as JSON whatever its Content-Type says (curl -d sends form encoding), then validate it
    strictly. Safe because no cookie authenticates the API, so a cross-site form post carries no credentials.
    An empty body reads as {}, so a missing field is reported by name. A multipart/form-data body (what
    the openai SDK sends with a file) is read as its fields and files."""
    try:
        if request.mimetype == "multipart/form-data":
            return model.model_validate({**request.form.to_dict(), **request.files.to_dict()})
        return model.model_validate_json(request.get_data(cache=True) or b"{}")
    except ValidationError as error:
        raise _describe(error) from None


def parse_query(model: type[BaseModel]):
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise _describe(error) from None


def endpoint(summary: str, *, body=None, query=None, response=None, status: int = 200,
             auth: tuple[str, ...] = (), errors: tuple[int, ...] = (), tags: tuple[str, ...] = (),
             media: tuple[str, ...] = (), also: dict[int, type[BaseModel]] | None = None):
    """Declare a view's schemas. The parsed body and query reach the view as `body=` and `query=`.
    `response` is the JSON body of `status`; `media` names other types that answer may come as (audio
    bytes, server-sent events); `also` gives other success statuses with their bodies."""
    spec = Spec(summary, body, query, response, status, auth, errors, tags, media, also or {})

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if body is not None:
                kwargs["body"] = parse_body(body)
            if query is not None:
                kwargs["query"] = parse_query(query)
            return view(*args, **kwargs)

        wrapper.openapi = spec
        return wrapper

    return decorate


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"},
        "param": {"type": ["string", "null"]}, "request_id": {"type": "string"}},
        "required": ["message", "type", "code"]}},
    "required": ["error"],
}
_STATUS_TEXT = {202: "Accepted: it runs in the background; poll the generation", 400: "Invalid request",
                401: "Not authenticated", 402: "Insufficient credits", 403: "Forbidden", 404: "Not found",
                409: "Conflict", 422: "Unprocessable", 429: "Too many requests", 502: "Upstream failure",
                503: "Service unavailable", 504: "Upstream timeout"}
_SECURITY = {
    "api_key": [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}],
    "member": [{"MemberJWT": []}],
    "admin": [{"AdminToken": []}],
}
_SCHEMES = {
    "ApiKeyBearer": {"type": "http", "scheme": "bearer", "description": "A tenant API key, wk_live_… or wk_test_…"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "MemberJWT": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                  "description": "An access token from POST /api/v1/auth/login"},
    "AdminToken": {"type": "http", "scheme": "bearer",
                   "description": "A platform admin's personal access token (flask admins token USERNAME)"},
}


def _media_schema(media_type: str) -> dict:
    if media_type == "text/event-stream":
        return {"type": "string", "description": "Server-sent events: `data: {json}` lines, `data: [DONE]` last"}
    return {"type": "string", "format": "binary", "contentMediaType": media_type}


def _allows_null(schema: dict) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(option) for option in schema.get("anyOf", []) + schema.get("oneOf", []))


def _drop_impossible_defaults(schema: dict) -> dict:
    """A field declared `is_active: bool = None` may be left out but not sent as null; its `default: null`
    would contradict its own type, which OpenAPI validators reject. Left out, it is simply optional."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None and not _allows_null(prop):
            del prop["default"]
    return schema


def _path(rule: str) -> tuple[str, list[dict]]:
    params = []

    def replace(match):
        name = match.group(2)
        params.append({"name": name, "in": "path", "required": True,
                       "schema": {"type": "string", "format": "uuid"} if match.group(1) == "uuid" else {"type": "string"}})
        return "{" + name + "}"

    return re.sub(r"<(?:(\w+):)?(\w+)>", replace, rule), params


def build_openapi(app: Flask, prefix: str, *, title: str, version: str, description: str,
                  auth: tuple[str, ...] = ()) -> dict:
    """The document of every @endpoint under `prefix`. `auth`: the credentials of operations that
    declare none and are not @public (the admin API's guard covers all of its routes)."""
    components: dict = {}

    def ref(model, mode):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            components[name] = _drop_impossible_defaults(definition)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(prefix):
            continue
        spec: Spec | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if spec is None:
            continue
        path, params = _path(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = {"summary": spec.summary, "operationId": rule.endpoint.replace(".", "_"),
                         "tags": list(spec.tags) or [rule.rule[len(prefix):].strip("/").split("/")[0]],
                         "parameters": list(params), "responses": {}}
            if spec.query is not None:
                schema = spec.query.model_json_schema()
                for name, prop in schema.get("properties", {}).items():
                    operation["parameters"].append({"name": name, "in": "query", "schema": prop,
                                                    "required": name in schema.get("required", [])})
            if spec.body is not None:
                operation["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": ref(spec.body, "validation")}}}
            ok = {"description": "No content" if spec.status == 204 else "OK"}
            content = {"application/json": {"schema": ref(spec.response, "serialization")}} if spec.response else {}
            content |= {media: {"schema": _media_schema(media)} for media in spec.media}
            if content:
                ok["content"] = content
            operation["responses"][str(spec.status)] = ok
            for status, model in spec.also.items():
                operation["responses"][str(status)] = {"description": _STATUS_TEXT.get(status, "OK"), "content": {
                    "application/json": {"schema": ref(model, "serialization")}}}
            kinds = spec.auth or (() if getattr(app.view_functions[rule.endpoint], "public", False) else auth)
            for status in sorted({400, *spec.errors, *((401,) if kinds else ())}):
                operation["responses"][str(status)] = {
                    "description": _STATUS_TEXT.get(status, "Error"),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            operation["security"] = [s for kind in kinds for s in _SECURITY[kind]]
            paths.setdefault(path, {})[method.lower()] = operation
    components["Error"] = _ERROR_SCHEMA
    used = {name for item in paths.values() for operation in item.values()
            for requirement in operation["security"] for name in requirement}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {name: scheme for name, scheme in _SCHEMES.items() if name in used}},
    }
