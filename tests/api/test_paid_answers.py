"""Every answer that cost credits says what it cost: images in `usage: {images, credits}`, chat in
`usage.credits` beside its tokens (streamed too), both equal to what the ledger took."""
from __future__ import annotations

import json

import pytest

from app.billing import ledger
from app.identity import api_keys
from tests.conftest import TEST_ACTOR, key_headers

IMAGE = "doubao-seedream-4-0-250828"   # 20 per 2K image, 40 per 4K
CHAT = "gemini-2.5-pro"


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def spent(created) -> int:
    return 1000 - ledger.account(created.tenant.id).balance


def test_an_image_answer_says_how_many_images_and_what_they_cost(client, acme):
    response = client.post("/api/v1/images/generations", headers=key_headers(acme),
                           json={"model": IMAGE, "prompt": "two foxes", "n": 2, "image_size": "4K"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["usage"] == {"images": 2, "credits": 80} and spent(acme) == 80
    replayed = client.post("/api/v1/images/generations", headers={**key_headers(acme), "Idempotency-Key": "k-1"},
                           json={"model": IMAGE, "prompt": "one fox"})
    again = client.post("/api/v1/images/generations", headers={**key_headers(acme), "Idempotency-Key": "k-1"},
                        json={"model": IMAGE, "prompt": "one fox"})
    assert replayed.get_json()["usage"] == again.get_json()["usage"] == {"images": 1, "credits": 20}
    assert spent(acme) == 100


def test_a_test_key_answer_says_it_cost_nothing(client, acme):
    _key, raw = api_keys.create_key(acme.tenant.id, TEST_ACTOR, name="test", mode="test")
    response = client.post("/api/v1/images/generations", headers={"Authorization": f"Bearer {raw}"},
                           json={"model": IMAGE, "prompt": "a free fox"})
    assert response.get_json()["usage"] == {"images": 1, "credits": 0} and spent(acme) == 0


def test_a_chat_answer_says_what_it_cost_beside_its_tokens(client, acme):
    response = client.post("/api/v1/chat/completions", headers=key_headers(acme),
                           json={"model": CHAT, "messages": [{"role": "user", "content": "What is a fox?"}]})
    usage = response.get_json()["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["credits"] == spent(acme) > 0


def test_the_streamed_usage_chunk_says_what_it_cost(client, acme):
    response = client.post("/api/v1/chat/completions", headers=key_headers(acme),
                           json={"model": CHAT, "messages": [{"role": "user", "content": "Tell me a story"}],
                                 "stream": True, "stream_options": {"include_usage": True}})
    events = [line[len("data: "):] for line in response.get_data(as_text=True).splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    usage = json.loads(events[-1])["usage"]
    assert usage["credits"] == spent(acme) > 0
