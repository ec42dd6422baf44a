"""Video: a short, valid H.264 MP4 a browser can play, of about the requested duration."""
import io
import time

import av
import pytest

from tests.sandbox.conftest import fetch, post


def probe(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "width": stream.codec_context.width, "height": stream.codec_context.height,
                "seconds": container.duration / av.time_base, "frames": frames}


def top_level_boxes(data: bytes) -> list[str]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        boxes.append(data[offset + 4:offset + 8].decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def mp4(sandbox_client, url: str) -> bytes:
    assert url.endswith(".mp4")
    response = fetch(sandbox_client, url)
    assert response.status_code == 200
    assert response.mimetype == "video/mp4"
    return response.data


@pytest.mark.parametrize("duration, ratio, size", [(5, "16:9", (320, 180)), (3, "9:16", (180, 320)),
                                                   (2, "1:1", (320, 320))])
def test_generation_answers_a_playable_mp4_of_the_requested_duration(sandbox_client, duration, ratio, size):
    response = post(sandbox_client, "/v1/videos/generations",
                    {"model": "veo3.1", "prompt": "waves", "duration": duration, "aspect_ratio": ratio,
                     "resolution": "720p", "enhance_prompt": True})
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body["created"], int)
    assert body["data"][0]["duration"] == duration
    data = mp4(sandbox_client, body["data"][0]["url"])
    boxes = top_level_boxes(data)
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat")  # faststart: playback starts before the download ends
    info = probe(data)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == size
    assert info["seconds"] == pytest.approx(duration, abs=0.3)
    assert info["frames"] >= duration


def test_duration_defaults_to_five_seconds(sandbox_client):
    body = post(sandbox_client, "/v1/videos/generations", {"model": "viduq2-pro", "prompt": "x"}).get_json()
    assert body["data"][0]["duration"] == 5
    assert probe(mp4(sandbox_client, body["data"][0]["url"]))["seconds"] == pytest.approx(5, abs=0.3)


def test_repeated_requests_reuse_the_cached_clip(sandbox_client):
    body = {"model": "veo3.1", "prompt": "x", "duration": 4}
    first = post(sandbox_client, "/v1/videos/generations", body).get_json()["data"][0]["url"]
    started = time.perf_counter()
    second = post(sandbox_client, "/v1/videos/generations", {**body, "prompt": "another"}).get_json()["data"][0]["url"]
    assert time.perf_counter() - started < 0.05
    assert first == second


def test_upscale_answers_a_video(sandbox_client):
    response = post(sandbox_client, "/v1/videos/upscale",
                    {"video_url": "https://example.com/v.mp4", "upscale_resolution": "1080p"})
    assert response.status_code == 200
    assert probe(mp4(sandbox_client, response.get_json()["data"][0]["url"]))["codec"] == "h264"


def test_commercial_answers_a_video_of_the_requested_duration(sandbox_client):
    response = post(sandbox_client, "/v1/videos/commercial",
                    {"images": ["https://example.com/a.png"], "prompt": "ad", "duration": 3, "ratio": "9:16",
                     "language": "en"})
    assert response.status_code == 200
    info = probe(mp4(sandbox_client, response.get_json()["data"][0]["url"]))
    assert info["seconds"] == pytest.approx(3, abs=0.3)
    assert info["height"] > info["width"]


@pytest.mark.parametrize("path, body", [
    ("/v1/videos/generations", {"model": "veo3.1"}),
    ("/v1/videos/generations", {"prompt": "x"}),
    ("/v1/videos/generations", {"model": "veo3.1", "prompt": "x", "duration": 0}),
    ("/v1/videos/generations", {"model": "veo3.1", "prompt": "x", "duration": 600}),
    ("/v1/videos/generations", {"model": "veo3.1", "prompt": "x", "aspect_ratio": "wide"}),
    ("/v1/videos/upscale", {"upscale_resolution": "1080p"}),
    ("/v1/videos/commercial", {"duration": 5}),
])
def test_invalid_video_requests_are_refused(sandbox_client, path, body):
    response = post(sandbox_client, path, body)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"
