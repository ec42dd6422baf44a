"""The OpenAPI document at /api/v1/openapi.json and the docs page at /api/v1/docs: a valid OpenAPI 3.1
document that covers every route, and a page that renders it from vendored assets only."""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import pytest
from openapi_spec_validator import validate

from tests.conftest import require

SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
NOT_DOCUMENTED = {"/api/v1/openapi.json", "/api/v1/docs"}


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")  # public: no credentials
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def _api_operations(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.rule not in NOT_DOCUMENTED:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method.lower()


def _resolve(document: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises with the offending path when invalid


def test_every_api_route_is_documented(app, document):
    operations = list(_api_operations(app))
    assert len(operations) >= 10
    for rule, method in operations:
        path = _openapi_path(rule.rule)
        assert path in document["paths"], f"{rule.rule} is missing from the OpenAPI document"
        assert method in document["paths"][path], f"{method.upper()} {rule.rule} is missing"
        operation = document["paths"][path][method]
        assert operation["summary"] and operation["responses"]
        declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert declared == set(rule.arguments), (rule.rule, declared)
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    routed = {(_openapi_path(rule.rule), method) for rule, method in operations}
    assert documented == routed, "the document names operations that do not exist"
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_post_and_patch_documents_its_request_body(app, document):
    seen = 0
    for rule, method in _api_operations(app):
        if method not in ("post", "patch", "put"):
            continue
        operation = document["paths"][_openapi_path(rule.rule)][method]
        body = operation.get("requestBody")
        assert body, f"{method.upper()} {rule.rule} has no request body schema"
        schema = _resolve(document, body["content"]["application/json"]["schema"])
        assert schema["type"] == "object" and "properties" in schema, rule.rule
        # Bodies refuse unknown fields (or, like a pass-through body, say they accept them): documented either way.
        assert "additionalProperties" in schema, f"{rule.rule}: say whether unknown fields are accepted"
        seen += 1
    assert seen >= 5


def test_login_body_schema_matches_what_the_endpoint_requires(document):
    schema = _resolve(document, document["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
                      ["application/json"]["schema"])
    assert set(schema["required"]) == {"api_key", "username", "password"}
    assert {"device_id", "device_info"} <= set(schema["properties"])


def test_property_and_parameter_names_are_snake_case(document):
    names = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                names.append(key)
            names.extend(node.get("required", []) if isinstance(node.get("required"), list) else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document["components"]["schemas"])
    walk(document["paths"])
    for item in document["paths"].values():
        for operation in item.values():
            names.extend(p["name"] for p in operation["parameters"])
    assert names
    offenders = sorted({name for name in names if not SNAKE.fullmatch(name)})
    assert not offenders, offenders


def test_security_schemes_are_declared_and_used(app, document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["MemberJWT"]["scheme"] == "bearer" and schemes["MemberJWT"]["bearerFormat"] == "JWT"
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["ApiKeyBearer"]["type"] == "http"
    for rule, method in _api_operations(app):
        operation = document["paths"][_openapi_path(rule.rule)][method]
        public = getattr(app.view_functions[rule.endpoint], "public", False)
        if public:
            assert operation["security"] == [], rule.rule
            continue
        assert operation["security"], f"{rule.rule} needs credentials but documents none"
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes)
        assert "401" in operation["responses"], rule.rule


def test_error_schema_is_the_envelope_and_error_responses_use_it(document):
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    inner = error["properties"]["error"]
    assert {"message", "type", "code", "param"} <= set(inner["properties"])
    assert set(inner["required"]) >= {"message", "type", "code"}
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.spec: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if attrs.get("data-spec"):
            self.spec = attrs["data-spec"]


def test_docs_page_uses_only_local_assets_that_are_served(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and "text/html" in response.content_type
    html = response.get_data(as_text=True)
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), "no CDN or remote asset"
    parser = _Assets()
    parser.feed(html)
    assert parser.spec == "/api/v1/openapi.json"
    assert len(parser.urls) >= 3
    for url in parser.urls:
        assert url.startswith("/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content_type.split(";")[0] in ("text/css", "text/javascript", "application/javascript"), url


def test_docs_page_answers_without_credentials_or_a_session(app):
    response = app.test_client(use_cookies=False).get("/api/v1/docs")
    assert response.status_code == 200


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _render_docs(base_url: str, operations: int) -> tuple[list[str], list[str]]:
    from playwright.sync_api import sync_playwright

    elsewhere, page_errors = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: elsewhere.append(r.url)
                    if not r.url.startswith((base_url, "data:", "blob:")) else None)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(f"{base_url}/api/v1/docs")
            login = page.locator(".opblock-summary-path[data-path='/api/v1/auth/login']")
            login.wait_for(timeout=15000)
            assert page.locator(".opblock").count() == operations
            assert page.get_by_text("/api/v1/tenant/members/{member_id}").count() >= 1
            login.click()
            page.get_by_text("Request body").first.wait_for(timeout=5000)
            page.get_by_text("Authorize").first.wait_for(timeout=5000)  # the security schemes are there
        finally:
            browser.close()
    return elsewhere, page_errors


def test_swagger_ui_renders_every_operation_in_a_real_browser(live_server, document):
    require(os.path.exists(CHROMIUM), "needs Debian's chromium at /usr/bin/chromium")
    operations = sum(len(item) for item in document["paths"].values())
    # A thread of its own: the sync API refuses a thread where another test's Playwright still runs.
    with ThreadPoolExecutor(max_workers=1) as pool:
        elsewhere, page_errors = pool.submit(_render_docs, live_server, operations).result(timeout=120)
    assert not page_errors, page_errors
    assert not elsewhere, f"the docs page reached outside the server: {elsewhere}"


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


@pytest.fixture
def admin_document(client, make) -> dict:
    response = client.get("/admin/api/openapi.json", headers=make.admin_token_headers())
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def test_both_documents_describe_themselves(document, admin_document):
    for doc in (document, admin_document):
        assert len(doc["info"]["description"]) > 200
    assert "/admin/api/openapi.json" in document["info"]["description"]
    assert "admin token" in admin_document["info"]["description"]


def test_every_success_answer_documents_its_body(document, admin_document):
    for doc in (document, admin_document):
        for name, operation in _operations(doc):
            for status, response in operation["responses"].items():
                if status.startswith("2") and status != "204":
                    assert response.get("content"), f"{name} {status} documents no body"


def test_generation_answers_are_documented_in_openai_shapes(document):
    def schema(path, status="200", media="application/json"):
        return _resolve(document, document["paths"][path]["post"]["responses"][status]["content"][media]["schema"])

    images = schema("/api/v1/images/generations")
    assert {"created", "data", "generation_id", "usage"} <= set(images["properties"])
    assert set(_resolve(document, images["properties"]["usage"])["properties"]) == {"images", "credits"}
    assert "status" in schema("/api/v1/images/generations", "202")["properties"]
    chat = schema("/api/v1/chat/completions")
    assert {"id", "object", "created", "model", "choices", "usage"} <= set(chat["properties"])
    assert "credits" in _resolve(document, chat["properties"]["usage"])["properties"]
    assert "text/event-stream" in document["paths"]["/api/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    speech = document["paths"]["/api/v1/audio/speech"]["post"]["responses"]["200"]["content"]
    assert {"audio/mpeg", "audio/wav", "audio/ogg", "audio/aac", "audio/flac", "audio/pcm"} <= set(speech)
    assert all(item["schema"]["format"] == "binary" for item in speech.values())


def _validator(document, path, method, status, media="application/json"):
    from jsonschema import Draft202012Validator
    target = document["paths"][path][method]["responses"][status]["content"][media]["schema"]
    return Draft202012Validator({**target, "components": document["components"]})


def test_real_answers_match_their_documented_schemas(client, make, document):
    from tests.conftest import key_headers
    acme = make.funded_tenant("Acme")
    headers = key_headers(acme)
    answers = [
        ("/api/v1/images/generations", "post", "200",
         client.post("/api/v1/images/generations", headers=headers, json={"model": "doubao-seedream-4-0-250828",
                                                                          "prompt": "a fox", "size": "1024x1024"})),
        ("/api/v1/images/generations", "post", "202",
         client.post("/api/v1/images/generations", headers=headers, json={"model": "doubao-seedream-4-0-250828",
                                                                          "prompt": "a fox", "async": True})),
        ("/api/v1/chat/completions", "post", "200",
         client.post("/api/v1/chat/completions", headers=headers,
                     json={"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]})),
        ("/api/v1/models/{model_id}", "get", "200", client.get("/api/v1/models/gemini-2.5-pro", headers=headers)),
        ("/api/v1/models", "get", "200", client.get("/api/v1/models", headers=headers)),
    ]
    for path, method, status, response in answers:
        assert str(response.status_code) == status, (path, response.get_json())
        validator = _validator(document, path, method, status)
        errors = [error.message for error in validator.iter_errors(response.get_json())]
        assert not errors, (path, status, errors)
    speech = client.post("/api/v1/audio/speech", headers=headers,
                         json={"model": "speech-2.6-hd", "input": "hello", "response_format": "mp3"})
    assert speech.mimetype in document["paths"]["/api/v1/audio/speech"]["post"]["responses"]["200"]["content"]


ADMIN_NOT_DOCUMENTED = {"/admin/api/openapi.json"}


def test_the_admin_document_needs_an_admin_token(client, make):
    from tests.conftest import assert_error, key_headers
    assert_error(client.get("/admin/api/openapi.json"), 401)
    assert_error(client.get("/admin/api/openapi.json", headers=key_headers(make.tenant())), 401)


def test_the_admin_document_is_valid_and_covers_every_admin_route(app, admin_document, document):
    validate(admin_document)
    routed = {(_openapi_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/admin/api/") and rule.rule not in ADMIN_NOT_DOCUMENTED
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in admin_document["paths"].items() for method in item}
    assert len(routed) >= 20 and documented == routed
    assert not any(path.startswith("/admin") for path in document["paths"])  # each document its own API
    assert set(admin_document["components"]["securitySchemes"]) == {"AdminToken"}
    for name, operation in _operations(admin_document):
        assert operation["security"] == [{"AdminToken": []}], name
        assert "401" in operation["responses"] and operation["summary"], name
        assert operation["tags"] == ["admin"], name
