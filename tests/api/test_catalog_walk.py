"""Every model in the seeded catalog generates end to end against the sandbox, through the endpoint
its kind and route call for, and is charged."""
from __future__ import annotations

import pytest

from app.billing import ledger
from app.catalog.seed import MODELS
from tests.conftest import key_headers


def request_for(spec: dict) -> tuple[str, dict]:
    model, kind, route = spec["model_id"], spec["kind"], spec["route"]
    if kind == "image":
        return "/api/v1/images/generations", {"model": model, "prompt": "a lighthouse"}
    if kind == "audio":
        return "/api/v1/audio/speech", {"model": model, "input": "Hello from the catalog."}
    if kind == "chat":
        return "/api/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if kind == "midjourney":
        return "/api/v1/midjourney/imagine", {"model": model, "prompt": "a lighthouse"}
    if route == "/videos/upscale":
        return "/api/v1/videos/upscale", {"model": model, "video_url": "https://cdn.example.com/clip.mp4"}
    if route == "/videos/commercial":
        return "/api/v1/videos/commercial", {"model": model, "prompt": "a lighthouse", "duration": 5}
    return "/api/v1/videos/generations", {"model": model, "prompt": "a lighthouse"}


@pytest.mark.parametrize("spec", MODELS, ids=[spec["model_id"] for spec in MODELS])
def test_every_seeded_model_is_generatable(client, make, spec):
    acme = make.funded_tenant("Acme", credits=100_000)
    path, body = request_for(spec)
    response = client.post(path, headers=key_headers(acme), json=body)
    assert response.status_code in (200, 202), response.get_data(as_text=True)[:500]
    account = ledger.account(acme.tenant.id)
    assert account.held == 0 and 0 < 100_000 - account.balance, spec["model_id"]
    assert ledger.verify() == []
