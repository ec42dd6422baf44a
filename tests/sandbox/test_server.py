"""`python -m sandbox` as a real process: threaded, serving its files over HTTP."""
import threading
import time

import pytest
import requests

from tests.sandbox.conftest import AUTH, SECRET, LiveSandbox


def test_health_and_auth(live_sandbox):
    assert requests.get(f"{live_sandbox.url}/health", timeout=5).json() == {"status": "ok"}
    response = requests.post(f"{live_sandbox.url}/v1/images/generations", json={"model": "m", "prompt": "p"},
                             headers={"Authorization": "Bearer nope"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Unauthorized"}


@pytest.mark.parametrize("path, body, content_type", [
    ("/v1/images/generations", {"model": "m", "prompt": "live"}, "image/png"),
    ("/v1/videos/generations", {"model": "veo3.1", "prompt": "live", "duration": 2}, "video/mp4"),
])
def test_result_urls_point_at_the_process_own_files(live_sandbox, path, body, content_type):
    response = requests.post(f"{live_sandbox.url}{path}", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 200
    url = response.json()["data"][0]["url"]
    assert url.startswith(f"{live_sandbox.url}/files/")
    media = requests.get(url, timeout=5)
    assert media.status_code == 200
    assert media.headers["Content-Type"] == content_type
    assert len(media.content) > 1000


def test_speech_is_served_as_wav(live_sandbox):
    url = requests.post(f"{live_sandbox.url}/internal/v1/audio/speech",
                        json={"model": "cosyvoice-v2", "input": "hello"},
                        headers={"X-Internal-Secret": SECRET}, timeout=5).json()["url"]
    media = requests.get(url, timeout=5)
    assert media.headers["Content-Type"] == "audio/wav"
    assert media.content[:4] == b"RIFF" and media.content[8:12] == b"WAVE"


def test_a_slow_request_does_not_block_the_others(live_sandbox):
    slow_result = {}

    def slow_call():
        slow_result["response"] = requests.post(
            f"{live_sandbox.url}/v1/chat/completions", headers=AUTH, timeout=10,
            json={"model": "m", "messages": [{"role": "user", "content": "[sandbox:slow=1.5] hi"}]})

    slow = threading.Thread(target=slow_call)
    started = time.perf_counter()
    slow.start()
    time.sleep(0.2)
    quick = requests.post(f"{live_sandbox.url}/v1/chat/completions", headers=AUTH, timeout=5,
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    quick_elapsed = time.perf_counter() - started
    slow.join()
    assert quick.status_code == 200
    assert quick_elapsed < 1.0
    assert slow_result["response"].status_code == 200
    assert time.perf_counter() - started >= 1.5


def test_timeout_outlives_the_client_read_timeout(live_sandbox):
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{live_sandbox.url}/v1/images/generations", headers=AUTH, timeout=(2, 0.5),
                      json={"model": "m", "prompt": "[sandbox:timeout]"})
    assert requests.get(f"{live_sandbox.url}/health", timeout=2).ok


def test_the_secret_falls_back_to_wauleapi_secret(tmp_path):
    server = LiveSandbox(tmp_path, {"WAULEAPI_SECRET": "shared-secret"}, "--prefix", "/v1", "--quiet")
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        ok = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=5,
                           headers={"Authorization": "Bearer shared-secret"})
        assert ok.status_code == 200
        assert requests.post(f"{server.url}/internal/v1/chat/completions", json=body, timeout=5,
                             headers={"Authorization": "Bearer shared-secret"}).status_code == 404
    finally:
        server.stop()
    assert "development secret" not in server.log()
    assert "shared-secret" not in server.log()
