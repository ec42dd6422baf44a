"""Images: real PNGs at the requested aspect ratio, served from the sandbox's own /files."""
import io

import pytest
from PIL import Image

from tests.sandbox.conftest import fetch, post


def generate(sandbox_client, **body):
    body = {"model": "doubao-seedream-4-0-250828", "prompt": "a fox", **body}
    return post(sandbox_client, "/v1/images/generations", body)


def png(sandbox_client, url: str) -> Image.Image:
    response = fetch(sandbox_client, url)
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    return Image.open(io.BytesIO(response.data))


def test_answers_the_contract_shape(sandbox_client):
    response = generate(sandbox_client)
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body["created"], int)
    assert len(body["data"]) == 1
    assert body["data"][0]["revised_prompt"] is None
    assert body["data"][0]["url"].startswith("http://localhost/files/")


@pytest.mark.parametrize("size, image_size, expected", [
    ("16:9", None, (512, 288)),
    ("9:16", "2K", (432, 768)),
    ("1:1", "4K", (1024, 1024)),
    ("4:3", "1k", (512, 384)),
    ("1024x1536", None, (341, 512)),  # an OpenAI pixel size keeps its ratio
    (None, None, (512, 512)),
])
def test_the_png_follows_the_requested_ratio(sandbox_client, size, image_size, expected):
    body = {k: v for k, v in {"size": size, "image_size": image_size}.items() if v}
    image = png(sandbox_client, generate(sandbox_client, **body).get_json()["data"][0]["url"])
    assert image.format == "PNG"
    assert image.size == expected


def test_aspect_ratio_is_accepted_in_place_of_size(sandbox_client):
    image = png(sandbox_client, generate(sandbox_client, aspect_ratio="21:9").get_json()["data"][0]["url"])
    assert image.size == (512, 219)


def test_max_images_gives_that_many_distinct_images(sandbox_client):
    data = generate(sandbox_client, max_images=4).get_json()["data"]
    assert len({item["url"] for item in data}) == 4
    pixels = {png(sandbox_client, item["url"]).tobytes() for item in data}
    assert len(pixels) == 4


def test_n_is_accepted_too(sandbox_client):
    assert len(generate(sandbox_client, n=3).get_json()["data"]) == 3


def test_the_prompt_shapes_the_picture_and_repeats_are_identical(sandbox_client):
    first = generate(sandbox_client, prompt="a red fox").get_json()["data"][0]["url"]
    again = generate(sandbox_client, prompt="a red fox").get_json()["data"][0]["url"]
    other = generate(sandbox_client, prompt="a blue whale").get_json()["data"][0]["url"]
    assert first == again
    assert png(sandbox_client, first).tobytes() != png(sandbox_client, other).tobytes()


def test_reference_images_are_accepted(sandbox_client):
    response = generate(sandbox_client, reference_images=["https://example.com/a.png", "data:image/png;base64,AAAA"])
    assert response.status_code == 200


@pytest.mark.parametrize("body", [
    {"prompt": None},
    {"prompt": "   "},
    {"model": None},
    {"model": "not a model"},
    {"size": "banana"},
    {"size": "20:1"},
    {"image_size": "8K"},
    {"max_images": 0},
    {"max_images": 16},
    {"reference_images": "https://example.com/a.png"},
])
def test_invalid_requests_are_refused(sandbox_client, body):
    response = generate(sandbox_client, **body)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"
    assert response.get_json()["error"]["message"]


def test_a_body_that_is_not_a_json_object_is_refused(sandbox_client):
    response = sandbox_client.post("/v1/images/generations", data="prompt=a", headers={
        "Authorization": "Bearer sandbox-test-secret", "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"


def test_files_outside_the_store_are_not_served(sandbox_client):
    assert sandbox_client.get("/files/..%2Fsecret.png").status_code == 404
    assert sandbox_client.get("/files/missing.png").status_code == 404
    assert sandbox_client.get("/files/notes.txt").status_code == 404


def test_result_urls_use_the_public_url_when_configured(tmp_path):
    from sandbox import create_app
    from tests.sandbox.conftest import SECRET

    client = create_app(secret=SECRET, files_dir=tmp_path, public_url="https://sandbox.example/").test_client()
    url = post(client, "/v1/images/generations", {"model": "m", "prompt": "p"}).get_json()["data"][0]["url"]
    assert url.startswith("https://sandbox.example/files/image-")
