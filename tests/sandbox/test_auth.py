"""Every /v1 route checks the secret and fails in the contract's exact 401 shape."""
import pytest

from sandbox import DEVELOPMENT_SECRET, create_app, resolve_secret
from tests.sandbox.conftest import AUTH, SECRET, post

UNAUTHORIZED = {"success": False, "error": "Unauthorized"}

POST_ROUTES = ["/images/generations", "/videos/generations", "/videos/upscale", "/videos/commercial",
               "/audio/speech", "/chat/completions", "/sora/chat/completions", "/midjourney/imagine",
               "/midjourney/action"]


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": SECRET},  # no scheme
    {"X-Internal-Secret": "wrong"},
], ids=["none", "wrong-bearer", "no-scheme", "wrong-internal"])
def test_routes_refuse_a_missing_or_wrong_secret(sandbox_client, route, headers):
    response = post(sandbox_client, f"/v1{route}", {"model": "m", "prompt": "p"}, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == UNAUTHORIZED


def test_get_routes_check_the_secret_too(sandbox_client):
    assert sandbox_client.get("/v1/midjourney/task/anything").get_json() == UNAUTHORIZED
    assert sandbox_client.get("/v1/models").status_code == 401


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {SECRET}"},
    {"Authorization": f"bearer {SECRET}"},
    {"X-Internal-Secret": SECRET},
    {"Authorization": f"Bearer {SECRET}", "X-Internal-Secret": SECRET},
])
def test_either_header_carries_the_secret(sandbox_client, headers):
    response = post(sandbox_client, "/v1/chat/completions",
                    {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_the_planned_internal_prefix_is_served_too(sandbox_client):
    response = post(sandbox_client, "/internal/v1/chat/completions",
                    {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"X-Internal-Secret": SECRET})
    assert response.status_code == 200


def test_prefixes_are_configurable(tmp_path):
    client = create_app(secret=SECRET, files_dir=tmp_path, prefixes=["/gw/v2"]).test_client()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert post(client, "/gw/v2/chat/completions", body).status_code == 200
    assert post(client, "/v1/chat/completions", body).status_code == 404


def test_health_needs_no_secret(sandbox_client):
    response = sandbox_client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_models_lists_the_contract_models(sandbox_client):
    ids = {model["id"] for model in sandbox_client.get("/v1/models", headers=AUTH).get_json()["data"]}
    assert {"gemini-2.5-pro", "sora-2", "midjourney-v7", "cosyvoice-v2"} <= ids


def test_unknown_routes_answer_in_the_error_shape(sandbox_client):
    response = sandbox_client.get("/v1/nowhere", headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "not_found"
    response = sandbox_client.get("/v1/images/generations", headers=AUTH)
    assert response.status_code == 405
    assert response.get_json()["error"]["type"] == "method_not_allowed"


def test_the_secret_comes_from_sandbox_secret_then_wauleapi_secret(capsys):
    assert resolve_secret({"SANDBOX_SECRET": "a", "WAULEAPI_SECRET": "b"}) == "a"
    assert resolve_secret({"WAULEAPI_SECRET": "b"}) == "b"
    assert capsys.readouterr().err == ""
    assert resolve_secret({}) == DEVELOPMENT_SECRET
    assert "development secret" in capsys.readouterr().err


def test_an_empty_secret_is_refused(tmp_path):
    with pytest.raises(ValueError):
        create_app(secret="", files_dir=tmp_path)
