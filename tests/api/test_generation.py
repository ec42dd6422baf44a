"""Generations end to end through the HTTP API, against the in-process sandbox gateway: what a
tenant is charged, what it gets back, and that every failure releases the hold."""
from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.extensions import db
from app.identity import tenants
from app.models import Generation, UsageRecord
from tests.conftest import TEST_ACTOR, assert_error, key_headers

IMAGE = "doubao-seedream-4-0-250828"   # PER_IMAGE: 20 per 2K image, 40 per 4K
SPEECH = "speech-2.6-hd"               # PER_CHARACTER: 20 per 1000 characters, minimum 1
CHAT = "gemini-2.5-pro"                # PER_TOKEN: 2 in / 8 out per 1k


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def balance(created):
    return ledger.account(created.tenant.id)


def image(client, created, prompt="a red fox in snow", headers=None, **extra):
    return client.post("/api/v1/images/generations", headers=headers or key_headers(created),
                       json={"model": IMAGE, "prompt": prompt, **extra})


def test_images_are_generated_stored_and_charged_exactly(client, acme):
    response = image(client, acme, n=2, image_size="4K")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert len(body["data"]) == 2
    assert (balance(acme).balance, balance(acme).held) == (920, 0)  # 2 × 40
    picture = client.get(body["data"][0]["url"].replace("http://localhost", ""))
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert picture.data.startswith(b"\x89PNG")
    generation = db.session.get(Generation, uuid.UUID(body["generation_id"]))
    assert generation.status == "COMPLETED" and generation.credits_charged == 80
    assert [step["status"] for step in generation.timeline] == ["PENDING", "GENERATING", "UPLOADING", "COMPLETED"]
    assert tenants.find_tenant(acme.tenant.id).storage_used_bytes == sum(r["size_bytes"] for r in generation.results)
    assert ledger.verify() == []


def test_b64_json_returns_the_image_bytes(client, acme):
    body = image(client, acme, response_format="b64_json").get_json()
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(b"\x89PNG")


def test_insufficient_credits_is_402_before_any_gateway_call(client, make):
    catalog.seed_catalog(TEST_ACTOR)
    poor = make.tenant()
    billing.recharge(poor.tenant.id, 19, TEST_ACTOR)
    assert_error(image(client, poor), 402, "insufficient_credits")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Generation)) == 0
    assert balance(poor).balance == 19 and ledger.verify() == []


def test_models_not_enabled_or_unknown_are_refused(client, acme):
    tenants.update_tenant(acme.tenant.id, TEST_ACTOR, {"enabled_models": [CHAT]})
    assert_error(image(client, acme), 403, "model_not_enabled")
    response = client.post("/api/v1/images/generations", headers=key_headers(acme),
                           json={"model": "no-such-model", "prompt": "x"})
    assert_error(response, 404, "model_not_found")


@pytest.mark.parametrize("marker,status,code", [
    ("[sandbox:fail]", 502, "upstream_error"),
    ("[sandbox:reject]", 400, "upstream_rejected"),
    ("[sandbox:flat_error]", 400, "upstream_rejected"),
    ("[sandbox:badjson]", 502, "upstream_bad_response"),
    ("[sandbox:deny]", 502, "upstream_auth_failed"),
    ("[sandbox:result_url=http://127.0.0.1:1/secret.png]", 502, "upstream_bad_result"),
    ("[sandbox:result_url=http://169.254.169.254/latest/meta-data]", 502, "upstream_bad_result"),
])
def test_every_failure_releases_the_hold_and_charges_nothing(client, acme, marker, status, code):
    response = image(client, acme, prompt=f"a fox {marker}")
    assert_error(response, status, code)
    assert (balance(acme).balance, balance(acme).held) == (1000, 0)
    generation = db.session.scalar(sa.select(Generation))
    assert generation.status == "FAILED" and generation.error_code == code and generation.credits_charged == 0
    failure = db.session.scalar(sa.select(UsageRecord))
    assert failure.status == "failure" and failure.credits == 0
    assert ledger.verify() == []


def test_a_retry_with_the_same_idempotency_key_is_charged_once(client, acme):
    headers = {**key_headers(acme), "Idempotency-Key": "order-42"}
    first = image(client, acme, headers=headers).get_json()
    again = image(client, acme, headers=headers).get_json()
    assert again["generation_id"] == first["generation_id"]
    assert balance(acme).balance == 980
    assert_error(image(client, acme, prompt="something else", headers=headers), 422, "idempotency_key_reused")
    assert ledger.verify() == []


def test_a_failed_request_can_be_retried_with_its_key(client, acme):
    headers = {**key_headers(acme), "Idempotency-Key": "retry-me"}
    assert image(client, acme, prompt="fox [sandbox:fail]", headers=headers).status_code == 502
    retried = client.post("/api/v1/images/generations", headers=headers,
                          json={"model": IMAGE, "prompt": "fox [sandbox:fail]"})
    assert retried.status_code == 502  # ran again (not replayed as a success), still charged nothing
    assert balance(acme).balance == 1000


def test_test_keys_go_to_the_sandbox_and_never_touch_credits(client, make):
    catalog.seed_catalog(TEST_ACTOR)
    broke = make.tenant()
    from app.identity import api_keys
    _key, raw = api_keys.create_key(broke.tenant.id, TEST_ACTOR, name="test", mode="test")
    response = client.post("/api/v1/images/generations", headers={"Authorization": f"Bearer {raw}"},
                           json={"model": IMAGE, "prompt": "free fox"})
    assert response.status_code == 200, response.get_json()
    generation = db.session.get(Generation, uuid.UUID(response.get_json()["generation_id"]))
    assert generation.is_test and generation.credits_charged == 0 and generation.hold_id is None
    assert balance(broke).balance == 0 and db.session.scalar(sa.select(UsageRecord.is_test)) is True
    summary = client.get("/api/v1/usage?group_by=model", headers=key_headers(broke)).get_json()
    assert summary["data"] == []  # test usage stays out of the tenant's billable usage


def test_speech_answers_audio_bytes_and_charges_by_characters(client, acme):
    response = client.post("/api/v1/audio/speech", headers=key_headers(acme),
                           json={"model": SPEECH, "input": "Hello " * 300, "voice": "alloy"})
    assert response.status_code == 200
    assert response.mimetype.startswith("audio/") and response.data[:4] == b"RIFF"
    assert balance(acme).balance == 1000 - 40  # 1800 characters → 2 blocks of 1000 × 20


def test_chat_completion_has_usage_and_is_charged_by_tokens(client, acme):
    response = client.post("/api/v1/chat/completions", headers=key_headers(acme),
                           json={"model": CHAT, "messages": [{"role": "user", "content": "你好，介绍一下你自己"}],
                                 "max_tokens": 500})
    body = response.get_json()
    assert response.status_code == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == 4 + 10  # ten CJK characters, one token each, plus framing
    expected = -(-(usage["prompt_tokens"] * 2 + usage["completion_tokens"] * 8) // 1000)
    assert balance(acme).balance == 1000 - expected and balance(acme).held == 0


def test_chat_streams_chunks_then_usage_then_done(client, acme):
    response = client.post("/api/v1/chat/completions", headers=key_headers(acme),
                           json={"model": CHAT, "messages": [{"role": "user", "content": "Tell me a story"}],
                                 "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = [line[len("data: "):] for line in response.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("Sandbox answer")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_members_see_their_own_generations_admins_see_all_other_tenants_none(client, make, acme):
    alice, bob = make.user(acme, "alice"), make.user(acme, "bob")
    boss = make.user(acme, "boss", role="admin")
    alice_headers = make.auth(acme, alice, device_id="a")
    image(client, acme, headers=alice_headers)
    image(client, acme, headers=make.auth(acme, bob, device_id="b"))
    mine = client.get("/api/v1/generations", headers=alice_headers).get_json()["data"]
    assert len(mine) == 1
    assert len(client.get("/api/v1/generations", headers=make.auth(acme, boss, device_id="c")).get_json()["data"]) == 2
    assert len(client.get("/api/v1/generations", headers=key_headers(acme)).get_json()["data"]) == 2
    other = make.tenant("Other")
    assert_error(client.get(f"/api/v1/generations/{mine[0]['id']}", headers=key_headers(other)), 404)
    assert client.get("/api/v1/generations", headers=key_headers(other)).get_json()["data"] == []


def test_generations_list_filters_and_pages(client, acme):
    for _ in range(3):
        image(client, acme)
    image(client, acme, prompt="x [sandbox:fail]")
    failed = client.get("/api/v1/generations?status=FAILED", headers=key_headers(acme)).get_json()["data"]
    assert len(failed) == 1 and failed[0]["error"]["code"] == "upstream_error"
    seen, cursor = [], None
    while True:
        url = "/api/v1/generations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=key_headers(acme)).get_json()
        seen += [g["id"] for g in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == 4


def test_async_images_answer_202_and_complete_in_the_background(client, acme):
    response = image(client, acme, **{"async": True})
    assert response.status_code == 202 and response.get_json()["status"] == "PENDING"
    generation_id = response.get_json()["id"]
    for _ in range(100):
        db.session.expire_all()
        current = client.get(f"/api/v1/generations/{generation_id}", headers=key_headers(acme)).get_json()
        if current["status"] in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.05)
    assert current["status"] == "COMPLETED" and current["credits_charged"] == 20
    assert current["results"][0]["url"]
    assert ledger.verify() == []


def test_usage_summary_groups_by_model_and_member(client, make, acme):
    alice = make.user(acme, "alice")
    image(client, acme, headers=make.auth(acme, alice))
    image(client, acme)
    by_model = client.get("/api/v1/usage?group_by=model", headers=key_headers(acme)).get_json()
    assert by_model["data"][0]["key"] == IMAGE and by_model["data"][0]["requests"] == 2
    assert by_model["totals"]["credits"] == 40
    by_member = client.get("/api/v1/usage?group_by=member", headers=key_headers(acme)).get_json()
    assert sorted(item["username"] for item in by_member["data"]) == ["(API key)", "alice"]


def test_a_hold_outlives_its_generations_deadline_by_the_margin(app, client, acme):
    from app.models import CreditHold
    body = image(client, acme, "a fox [sandbox:fail]").get_json()  # the row and its hold stay behind
    generation = db.session.scalar(sa.select(Generation).where(Generation.tenant_id == acme.tenant.id))
    hold = db.session.get(CreditHold, generation.hold_id)
    assert body["error"] and hold.status == "RELEASED"
    timeouts = app.config["WAULEAPI_TIMEOUTS"]["image"] + app.config["FETCH_TIMEOUT_SECONDS"]
    assert abs((generation.deadline_at - generation.created_at).total_seconds() - timeouts) < 5
    # The sweep fails an overdue generation (releasing its hold) before the hold could expire blind.
    assert (hold.expires_at - generation.deadline_at).total_seconds() == pytest.approx(
        app.config["HOLD_TTL_SECONDS"], abs=5)
