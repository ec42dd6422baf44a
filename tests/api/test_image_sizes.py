"""Image sizes: OpenAI's `size` reaches the gateway as an aspect ratio and a resolution the model offers,
the estimate prices that same resolution, and a size we cannot map is refused before anything is held.
What the sandbox gateway was asked shows in the image it draws (its long side follows image_size:
1K 512, 2K 768, 4K 1024 pixels; its shape follows the ratio)."""
from __future__ import annotations

import struct
import uuid

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.extensions import db
from app.generation import kinds
from app.models import Generation
from tests.conftest import assert_error, key_headers

SEEDREAM = "doubao-seedream-4-0-250828"   # image_sizes 2K, 4K; 20 per 2K image, 40 per 4K
FLASH = "gemini-2.5-flash-image"          # image_sizes 1K; 30 per image
GEMINI_PRO = "gemini-3-pro-image-preview" # image_sizes 1K, 2K, 4K; 40, 40, 80


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def generate(client, created, **body):
    body = {"model": SEEDREAM, "prompt": "a lighthouse", **body}
    return client.post("/api/v1/images/generations", headers=key_headers(created), json=body)


def estimate(client, created, **body):
    body = {"model": SEEDREAM, "prompt": "a lighthouse", **body}
    return client.post("/api/v1/billing/estimate", headers=key_headers(created), json=body)


def png_size(client, url: str) -> tuple[int, int]:
    data = client.get(url.replace("http://localhost", "")).data
    assert data.startswith(b"\x89PNG")
    return struct.unpack(">II", data[16:24])


def sent_to_gateway(generation_id: str) -> dict:
    generation = db.session.get(Generation, uuid.UUID(generation_id))
    return kinds.payload(kinds.image, generation.params, "/images/generations")


@pytest.mark.parametrize("model,size,ratio,resolution,pixels,credits", [
    (SEEDREAM, "1024x1024", "1:1", "2K", (768, 768), 20),        # Seedream's smallest resolution is 2K
    (SEEDREAM, "1792x1024", "16:9", "2K", (768, 432), 20),
    (SEEDREAM, "1024x1536", "2:3", "2K", (512, 768), 20),
    (FLASH, "1792x1024", "16:9", "1K", (512, 288), 30),          # 1K is all it offers
    (GEMINI_PRO, "512x512", "1:1", "1K", (512, 512), 40),
    (GEMINI_PRO, "1536x1024", "3:2", "2K", (768, 512), 40),
])
def test_openai_sizes_become_a_ratio_and_a_resolution_the_estimate_prices_too(client, acme, model, size, ratio,
                                                                             resolution, pixels, credits):
    quoted = estimate(client, acme, model=model, size=size).get_json()
    response = generate(client, acme, model=model, size=size)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    sent = sent_to_gateway(body["generation_id"])
    assert (sent["size"], sent["image_size"]) == (ratio, resolution)
    assert png_size(client, body["data"][0]["url"]) == pixels
    assert quoted["credits"] == credits == body["usage"]["credits"]
    assert ledger.account(acme.tenant.id).balance == 1000 - credits


@pytest.mark.parametrize("size", ["4K", "2K", "1000x1000", "1024X", "banana", "16:0", ""])
def test_a_size_we_cannot_map_is_refused_naming_the_valid_ones_before_anything_is_held(client, acme, size):
    for response in (generate(client, acme, size=size), estimate(client, acme, size=size)):
        error = assert_error(response, 400, "invalid_size")
        assert error["param"] == "size"
        assert "1024x1024" in error["message"] and "1792x1024" in error["message"] and "auto" in error["message"]
        assert "image_size" in error["message"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0
    account = ledger.account(acme.tenant.id)
    assert (account.balance, account.held) == (1000, 0)


def test_auto_leaves_the_choice_to_the_gateway(client, acme):
    body = generate(client, acme, size="auto").get_json()
    assert {"size", "image_size"}.isdisjoint(sent_to_gateway(body["generation_id"]))


def test_aspect_ratio_and_image_size_pass_through_and_win_over_size(client, acme):
    quoted = estimate(client, acme, aspect_ratio="21:9", image_size="4K").get_json()
    body = generate(client, acme, aspect_ratio="21:9", image_size="4K").get_json()
    sent = sent_to_gateway(body["generation_id"])
    assert (sent["size"], sent["image_size"]) == ("21:9", "4K")
    assert quoted["credits"] == body["usage"]["credits"] == 40
    body = generate(client, acme, size="1024x1024", aspect_ratio="16:9", image_size="4K").get_json()
    assert png_size(client, body["data"][0]["url"]) == (1024, 576)


def test_an_aspect_ratio_in_size_still_works(client, acme):
    body = generate(client, acme, size="16:9").get_json()
    assert sent_to_gateway(body["generation_id"])["size"] == "16:9"
