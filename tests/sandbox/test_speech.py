"""Speech: a WAV whose length follows the input, in either answer shape of the contract."""
import io
import wave

import pytest

from tests.sandbox.conftest import fetch, post


def speak(sandbox_client, text: str, **extra):
    return post(sandbox_client, "/v1/audio/speech", {"model": "cosyvoice-v2", "input": text, "voice": "alloy", **extra})


def seconds(sandbox_client, url: str) -> float:
    response = fetch(sandbox_client, url)
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    with wave.open(io.BytesIO(response.data)) as audio:
        assert audio.getnchannels() == 1 and audio.getsampwidth() == 2
        return audio.getnframes() / audio.getframerate()


def test_answers_a_url_and_created(sandbox_client):
    response = speak(sandbox_client, "hello")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"created", "url"}
    assert body["url"].endswith(".wav")


def test_the_duration_grows_with_the_input(sandbox_client):
    short = seconds(sandbox_client, speak(sandbox_client, "Hello there, sandbox." * 2).get_json()["url"])
    long = seconds(sandbox_client, speak(sandbox_client, "Hello there, sandbox." * 8).get_json()["url"])
    assert short == pytest.approx(42 * 0.06, abs=0.01)
    assert long == pytest.approx(4 * short, abs=0.01)


def test_the_duration_has_a_floor_and_a_cap(sandbox_client):
    assert seconds(sandbox_client, speak(sandbox_client, "hi").get_json()["url"]) == pytest.approx(0.5)
    assert seconds(sandbox_client, speak(sandbox_client, "word " * 400).get_json()["url"]) == pytest.approx(60)


def test_speed_shortens_it(sandbox_client):
    text = "The quick brown fox jumps over the lazy dog."
    normal = seconds(sandbox_client, speak(sandbox_client, text).get_json()["url"])
    fast = seconds(sandbox_client, speak(sandbox_client, text, speed=2.0).get_json()["url"])
    assert fast == pytest.approx(normal / 2, abs=0.01)


def test_the_audio_is_not_silence(sandbox_client):
    response = fetch(sandbox_client, speak(sandbox_client, "abc").get_json()["url"])
    with wave.open(io.BytesIO(response.data)) as audio:
        frames = audio.readframes(audio.getnframes())
    assert max(frames) > 0


@pytest.mark.parametrize("extra", [{"response_shape": "data"}, {"model": "speech-2.6-hd-data"}])
def test_the_alternative_data_shape_can_be_asked_for(sandbox_client, extra):
    body = speak(sandbox_client, "hello", **extra).get_json()
    assert set(body) == {"created", "data"}
    assert seconds(sandbox_client, body["data"][0]["url"]) == pytest.approx(0.5)


@pytest.mark.parametrize("body", [{"input": ""}, {"input": None}, {"model": None}, {"speed": 10},
                                  {"speed": "fast"}, {"voice": 3}])
def test_invalid_speech_requests_are_refused(sandbox_client, body):
    response = speak(sandbox_client, "hello", **body)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"
