"""Prompt markers drive every failure mode of the gateway contract (documented in sandbox/README.md)."""
import json
import time

import pytest

from tests.sandbox.conftest import post

# One representative request per endpoint, with the marker placed where that endpoint reads text.
REQUESTS = {
    "image": ("/v1/images/generations", lambda m: {"model": "m", "prompt": f"a fox {m}"}),
    "video": ("/v1/videos/generations", lambda m: {"model": "veo3.1", "prompt": f"waves {m}"}),
    "upscale": ("/v1/videos/upscale", lambda m: {"video_url": f"https://example.com/v.mp4{m}"}),
    "commercial": ("/v1/videos/commercial", lambda m: {"prompt": f"ad {m}"}),
    "speech": ("/v1/audio/speech", lambda m: {"model": "cosyvoice-v2", "input": f"hello {m}"}),
    "chat": ("/v1/chat/completions",
             lambda m: {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": f"hi {m}"}]}),
    "sora": ("/v1/sora/chat/completions",
             lambda m: {"model": "sora-image", "messages": [{"role": "user", "content": f"hi {m}"}]}),
    "midjourney": ("/v1/midjourney/imagine", lambda m: {"prompt": f"castle {m}"}),
}


def send(sandbox_client, kind: str, marker: str):
    path, body = REQUESTS[kind]
    return post(sandbox_client, path, body(marker))


@pytest.mark.parametrize("kind", REQUESTS)
def test_fail_is_a_500_generation_error(sandbox_client, kind):
    response = send(sandbox_client, kind, "[sandbox:fail]")
    assert response.status_code == 500
    assert response.get_json()["error"]["type"] == "generation_error"
    assert response.get_json()["error"]["message"]


@pytest.mark.parametrize("kind", REQUESTS)
def test_reject_is_a_400_invalid_request(sandbox_client, kind):
    response = send(sandbox_client, kind, "[sandbox:reject]")
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"


@pytest.mark.parametrize("kind", REQUESTS)
def test_deny_is_the_contract_401(sandbox_client, kind):
    response = send(sandbox_client, kind, "[sandbox:deny]")
    assert response.status_code == 401
    assert response.get_json() == {"success": False, "error": "Unauthorized"}


@pytest.mark.parametrize("kind", ["image", "chat", "speech"])
def test_flat_error_is_the_newer_gateways_400(sandbox_client, kind):
    response = send(sandbox_client, kind, "[sandbox:flat_error]")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert isinstance(error, str) and error


@pytest.mark.parametrize("kind", ["image", "video", "chat", "speech"])
def test_badjson_is_a_200_that_does_not_parse(sandbox_client, kind):
    response = send(sandbox_client, kind, "[sandbox:badjson]")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.get_data(as_text=True))


def test_slow_waits_then_answers_normally(sandbox_client):
    started = time.perf_counter()
    response = send(sandbox_client, "image", "[sandbox:slow=0.3]")
    assert time.perf_counter() - started >= 0.3
    assert response.status_code == 200
    assert response.get_json()["data"][0]["url"]


def test_slow_is_bounded_by_the_cap(sandbox_client):
    started = time.perf_counter()
    assert send(sandbox_client, "chat", "[sandbox:slow=30]").status_code == 200
    assert time.perf_counter() - started < 2  # the fixture's cap is 0.5 s


def test_timeout_holds_the_request_for_the_cap(sandbox_client):
    started = time.perf_counter()
    response = send(sandbox_client, "chat", "[sandbox:timeout]")
    assert time.perf_counter() - started >= 0.5
    assert response.status_code == 504


@pytest.mark.parametrize("kind, locate", [
    ("image", lambda body: body["data"][0]["url"]),
    ("video", lambda body: body["data"][0]["url"]),
    ("upscale", lambda body: body["data"][0]["url"]),
    ("speech", lambda body: body["url"]),
    ("sora", lambda body: body["choices"][0]["message"]["content"]),
])
def test_result_url_answers_with_the_given_url(sandbox_client, kind, locate):
    target = "http://169.254.169.254/latest/meta-data"
    response = send(sandbox_client, kind, f"[sandbox:result_url={target}]")
    assert response.status_code == 200
    assert target in locate(response.get_json())


def test_result_url_applies_to_every_image(sandbox_client):
    body = post(sandbox_client, "/v1/images/generations",
                {"model": "m", "prompt": "[sandbox:result_url=http://127.0.0.1:22/x.png]", "max_images": 2}).get_json()
    assert [item["url"] for item in body["data"]] == ["http://127.0.0.1:22/x.png"] * 2


def test_result_url_becomes_the_midjourney_image(sandbox_client):
    from tests.sandbox.conftest import AUTH

    task_id = send(sandbox_client, "midjourney", "[sandbox:result_url=http://10.0.0.1/grid.png]").get_json()["taskId"]
    for _ in range(3):
        task = sandbox_client.get(f"/v1/midjourney/task/{task_id}", headers=AUTH).get_json()
    assert task["status"] == "SUCCESS" and task["imageUrl"] == "http://10.0.0.1/grid.png"


def test_chat_markers_come_from_the_last_user_message_only(sandbox_client):
    body = {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "[sandbox:fail]"},
                                                    {"role": "assistant", "content": "failed"},
                                                    {"role": "user", "content": "try again"}]}
    assert post(sandbox_client, "/v1/chat/completions", body).status_code == 200


def test_markers_are_not_echoed_back(sandbox_client):
    content = send(sandbox_client, "chat", "[sandbox:slow=0]").get_json()["choices"][0]["message"]["content"]
    assert "[sandbox:" not in content


@pytest.mark.parametrize("marker", ["[sandbox:fial]", "[sandbox:slow=soon]", "[sandbox:slow]", "[sandbox:result_url=]"])
def test_a_misspelt_marker_is_refused_rather_than_ignored(sandbox_client, marker):
    response = send(sandbox_client, "image", marker)
    assert response.status_code == 400
    assert "sandbox" in response.get_json()["error"]["message"]
