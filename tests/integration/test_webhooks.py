"""Webhook deliveries to a real local receiver that verifies each one with the `standardwebhooks` library:
retries (same webhook-id, fresh timestamp), 410, Retry-After, redirects, the SSRF guard, secret rotation,
credits.low, a generation's payload, and a real worker process."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError

from app import webhooks
from app.billing import accounts as billing
from app.core.db import utcnow
from app.core.transaction import atomic
from app.extensions import db
from app.generation.models import Generation
from app.identity import api_keys
from app.webhooks import endpoints
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import TEST_ACTOR, assert_error, key_headers
from tests.integration.conftest import wait_for

WEBHOOKS = "/api/v1/tenant/webhooks"
SETTINGS = "/api/v1/tenant/settings"


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def admin_key(created) -> dict:
    """The tenant's admin, as an admin-scoped API key."""
    _key, raw = api_keys.create_key(created.tenant.id, TEST_ACTOR, name="ops", scopes=["admin"])
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def admin(acme) -> dict:
    return admin_key(acme)


def register(client, headers, url, events=("credits.low",)) -> dict:
    response = client.post(WEBHOOKS, json={"url": url, "events": list(events)}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def fire_credits_low(client, headers, threshold: int = 5000):
    """Acme has 1000 credits: a threshold above that fires credits.low at once."""
    response = client.patch(SETTINGS, json={"low_credits_threshold": threshold}, headers=headers)
    assert response.status_code == 200, response.get_json()


def deliveries_of(client, headers, endpoint_id) -> list[dict]:
    response = client.get(f"{WEBHOOKS}/{endpoint_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def verified(secret: str, received) -> dict:
    return Webhook(secret).verify(received.body, received.headers)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_500_is_retried_with_the_same_webhook_id_and_a_fresh_timestamp_then_succeeds(client, runner, admin,
                                                                                          receiver):
    receiver.answer((500, {}, b"database is down"))
    endpoint = register(client, admin, receiver.url)
    assert endpoint["secret"].startswith("whsec_")

    fire_credits_low(client, admin)
    first = receiver.wait_for(1)[0]
    assert first.path == "/hooks/waule" and first.headers["Content-Type"] == "application/json"
    payload = verified(endpoint["secret"], first)
    assert payload["type"] == "credits.low" and payload["data"]["available"] == 1000
    assert payload["data"]["threshold"] == 5000 and payload["timestamp"].endswith("Z")

    [delivery] = deliveries_of(client, admin, endpoint["id"])
    assert delivery["status"] == "PENDING" and delivery["message_id"] == first.headers["webhook-id"]
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 500 and attempt["response_excerpt"] == "database is down"
    assert attempt["latency_ms"] >= 0 and attempt["error"] is None
    due = at(delivery["next_attempt_at"])
    assert timedelta(seconds=4) <= due - at(attempt["attempted_at"]) <= timedelta(seconds=6)

    # The first retry is due five seconds later: the retry sweep (`flask webhooks retry`) sends it then.
    assert "Enqueued 0" in runner.invoke(args=["webhooks", "retry"]).output
    wait_for(lambda: utcnow() > due + timedelta(seconds=0.2), seconds=10)
    assert "Enqueued 1" in runner.invoke(args=["webhooks", "retry"]).output
    second = receiver.wait_for(2)[1]

    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert second.headers["webhook-signature"] != first.headers["webhook-signature"]
    assert verified(endpoint["secret"], second) == payload and second.body == first.body
    with pytest.raises(WebhookVerificationError):  # a replayed signature does not fit the new timestamp
        Webhook(endpoint["secret"]).verify(second.body, {**second.headers,
                                                         "webhook-signature": first.headers["webhook-signature"]})

    [delivery] = deliveries_of(client, admin, endpoint["id"])
    assert delivery["status"] == "SUCCEEDED" and delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    assert "Enqueued 0" in runner.invoke(args=["webhooks", "retry"]).output
    assert len(receiver.received) == 2


def test_a_410_disables_the_endpoint_and_nothing_more_is_sent_to_it(client, admin, receiver):
    receiver.answer((410, {}, b"gone"))
    endpoint = register(client, admin, receiver.url)
    fire_credits_low(client, admin)
    receiver.wait_for(1)

    shown = client.get(f"{WEBHOOKS}/{endpoint['id']}", headers=admin).get_json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    [delivery] = deliveries_of(client, admin, endpoint["id"])
    assert delivery["status"] == "DISABLED" and [a["status_code"] for a in delivery["attempts"]] == [410]

    fire_credits_low(client, admin, threshold=6000)  # a new threshold fires again: not to a disabled endpoint
    assert len(deliveries_of(client, admin, endpoint["id"])) == 1 and len(receiver.received) == 1
    redeliver = client.post(f"{WEBHOOKS}/{endpoint['id']}/deliveries/{delivery['id']}/redeliver", headers=admin)
    assert_error(redeliver, 409, "webhook_endpoint_disabled")

    # Enabled again by the tenant, a redelivery goes out with the same webhook-id.
    assert client.patch(f"{WEBHOOKS}/{endpoint['id']}", json={"enabled": True},
                        headers=admin).get_json()["disabled_reason"] is None
    redeliver = client.post(f"{WEBHOOKS}/{endpoint['id']}/deliveries/{delivery['id']}/redeliver", headers=admin)
    assert redeliver.status_code == 202, redeliver.get_json()
    again = receiver.wait_for(2)[1]
    assert again.headers["webhook-id"] == delivery["message_id"]
    assert verified(endpoint["secret"], again)["type"] == "credits.low"
    [delivery] = deliveries_of(client, admin, endpoint["id"])
    assert delivery["status"] == "SUCCEEDED" and [a["status_code"] for a in delivery["attempts"]] == [410, 200]


@pytest.mark.parametrize("status,retry_after,seconds", [
    (429, "120", 120),
    (503, lambda: (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 600),
])
def test_429_and_503_wait_for_retry_after(client, admin, receiver, status, retry_after, seconds):
    header = retry_after() if callable(retry_after) else retry_after
    receiver.answer((status, {"Retry-After": header}, b"slow down"))
    endpoint = register(client, admin, receiver.url)
    fire_credits_low(client, admin)
    receiver.wait_for(1)
    [delivery] = deliveries_of(client, admin, endpoint["id"])
    waited = at(delivery["next_attempt_at"]) - at(delivery["attempts"][0]["attempted_at"])
    assert delivery["status"] == "PENDING"
    assert timedelta(seconds=seconds - 2) <= waited <= timedelta(seconds=seconds + 2), waited


def test_a_redirect_is_not_followed(client, admin, receiver):
    receiver.answer((302, {"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"}, b""))
    endpoint = register(client, admin, receiver.url)
    fire_credits_low(client, admin)
    receiver.wait_for(1)
    time.sleep(0.3)
    assert [r.path for r in receiver.received] == ["/hooks/waule"]
    [delivery] = deliveries_of(client, admin, endpoint["id"])
    assert delivery["status"] == "PENDING" and delivery["attempts"][0]["status_code"] == 302


@pytest.mark.parametrize("host", ["localhost", "127.0.0.2", "[::1]", "169.254.169.254"])
def test_a_private_address_is_refused_at_registration(client, admin, receiver, host):
    response = client.post(WEBHOOKS, json={"url": f"http://{host}:{receiver.port}/hooks", "events": ["credits.low"]},
                           headers=admin)
    error = assert_error(response, 400, "webhook_url_refused")
    assert error["param"] == "url" and "public address" in error["message"]
    changed = client.patch(f"{WEBHOOKS}/{register(client, admin, receiver.url)['id']}",
                           json={"url": f"http://{host}:{receiver.port}/hooks"}, headers=admin)
    assert_error(changed, 400, "webhook_url_refused")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 1
    assert receiver.received == []


def test_a_host_no_longer_allowlisted_is_refused_at_delivery(app, client, admin, receiver):
    endpoint = register(client, admin, receiver.url)
    app.config["FETCH_ALLOWLIST"] = ()
    fire_credits_low(client, admin)
    [delivery] = deliveries_of(client, admin, endpoint["id"])
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] is None and attempt["error"].startswith("Refused by the SSRF guard")
    assert delivery["status"] == "PENDING" and receiver.received == []


def test_during_a_rotation_both_secrets_sign_then_only_the_new_one(client, admin, receiver):
    endpoint = register(client, admin, receiver.url)
    old = endpoint["secret"]
    rotated = client.post(f"{WEBHOOKS}/{endpoint['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200, rotated.get_json()
    new = rotated.get_json()["secret"]
    assert new.startswith("whsec_") and new != old
    until = at(rotated.get_json()["previous_secret_signs_until"])
    assert timedelta(hours=23) < until - utcnow() <= timedelta(hours=24)

    fire_credits_low(client, admin)
    received = receiver.wait_for(1)[0]
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert verified(old, received) == verified(new, received)  # a receiver still holding the old secret is fine

    stored = db.session.get(WebhookEndpoint, uuid.UUID(endpoint["id"]))
    assert len(endpoints.signing_secrets(stored, utcnow())) == 2
    assert endpoints.signing_secrets(stored, until + timedelta(seconds=1)) == [new]
    assert old not in json.dumps(client.get(WEBHOOKS, headers=admin).get_json())


def test_credits_low_fires_once_per_crossing(client, acme, admin, receiver):
    endpoint = register(client, admin, receiver.url)
    fire_credits_low(client, admin, threshold=500)  # 1000 available: not low
    assert receiver.received == []
    for amount in (-600, -100):  # 400, then 300: one alert
        billing.adjust(acme.tenant.id, amount, "usage elsewhere", TEST_ACTOR)
    billing.recharge(acme.tenant.id, 500, TEST_ACTOR)  # 800: re-armed, no alert
    billing.adjust(acme.tenant.id, -500, "usage elsewhere", TEST_ACTOR)  # 300: the second alert
    alerts = [verified(endpoint["secret"], r)["data"] for r in receiver.wait_for(2)]
    assert [(a["available"], a["threshold"]) for a in alerts] == [(400, 500), (300, 500)]
    assert len(deliveries_of(client, admin, endpoint["id"])) == 2

    assert client.get(SETTINGS, headers=admin).get_json() == {"low_credits_threshold": 500}
    fire_credits_low(client, admin, threshold=None)  # off
    billing.recharge(acme.tenant.id, 1000, TEST_ACTOR)
    billing.adjust(acme.tenant.id, -1200, "usage elsewhere", TEST_ACTOR)
    assert len(receiver.received) == 2


def test_events_written_in_a_transaction_that_rolls_back_are_never_sent(acme, client, admin, receiver):
    register(client, admin, receiver.url)
    with pytest.raises(RuntimeError), atomic():
        webhooks.emit(acme.tenant.id, "credits.low", {"available": 1})
        raise RuntimeError("the caller's work failed")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)) == 0
    with atomic():
        assert len(webhooks.emit(acme.tenant.id, "credits.low", {"available": 2})) == 1
        assert receiver.received == []  # not before the commit
    assert json.loads(receiver.wait_for(1)[0].body)["data"] == {"available": 2}


def test_a_finished_generation_is_sent_as_the_api_generation_object(app, client, acme, admin, receiver):
    endpoint = register(client, admin, receiver.url, events=("generation.completed", "generation.failed"))
    response = client.post("/api/v1/images/generations", headers=key_headers(acme),
                           json={"model": "doubao-seedream-4-0-250828", "prompt": "a lighthouse"})
    assert response.status_code == 200, response.get_json()
    generation = db.session.scalars(sa.select(Generation)).one()  # the flow sent it when it settled

    payload = verified(endpoint["secret"], receiver.wait_for(1)[0])
    assert payload["type"] == "generation.completed"
    data = payload["data"]
    api_view = client.get(f"/api/v1/generations/{generation.id}", headers=key_headers(acme)).get_json()
    assert data["id"] == api_view["id"] and data["status"] == "COMPLETED" and data["object"] == "generation"
    assert {k: v for k, v in data.items() if k != "results"} == {k: v for k, v in api_view.items() if k != "results"}
    [result] = data["results"]
    link = urlsplit(result["url"])
    assert f"{link.scheme}://{link.netloc}" == app.config["PUBLIC_BASE_URL"] == "http://127.0.0.1:5000"
    image = client.get(f"{link.path}?{link.query}")
    assert image.status_code == 200 and image.mimetype == "image/png"


def test_a_real_worker_process_delivers_and_retries(queued_app, make, worker, receiver):
    queued_app.config["FETCH_ALLOWLIST"] = (f"http://127.0.0.1:{receiver.port}",)
    worker.env["FETCH_ALLOWLIST"] = f"http://127.0.0.1:{receiver.port}"
    client = queued_app.test_client()
    admin = admin_key(make.funded_tenant("Acme"))
    receiver.answer((500, {}, b"not yet"))
    endpoint = register(client, admin, receiver.url)
    fire_credits_low(client, admin)
    time.sleep(0.5)
    assert receiver.received == []  # enqueued after the commit; nothing runs it in the web process

    worker.start()
    received = receiver.wait_for(2, seconds=60)
    assert len(received) == 2, worker.output()
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
    assert received[0].headers["webhook-timestamp"] != received[1].headers["webhook-timestamp"]
    assert verified(endpoint["secret"], received[0]) == verified(endpoint["secret"], received[1])

    def succeeded():
        db.session.expire_all()
        return db.session.scalar(sa.select(WebhookDelivery.status)) == "SUCCEEDED"

    assert wait_for(succeeded, seconds=30), worker.output()
    assert worker.stop() == 0


def test_a_finished_video_is_sent_as_the_video_object_and_a_failed_one_with_its_error(client, acme, admin, receiver):
    endpoint = register(client, admin, receiver.url, events=("generation.completed", "generation.failed"))
    ok = client.post("/api/v1/videos/generations", headers=key_headers(acme),
                     json={"model": "viduq2-turbo", "prompt": "a fox", "duration": 4}).get_json()
    failed = client.post("/api/v1/videos/generations", headers=key_headers(acme),
                         json={"model": "viduq2-turbo", "prompt": "a fox [sandbox:fail]", "duration": 4}).get_json()
    first, second = (verified(endpoint["secret"], delivery) for delivery in receiver.wait_for(2))
    assert (first["type"], first["data"]["id"], first["data"]["object"]) == ("generation.completed", ok["id"], "video")
    assert first["data"]["status"] == "completed" and first["data"]["video_url"].startswith("http://127.0.0.1:5000/")
    assert (second["type"], second["data"]["id"]) == ("generation.failed", failed["id"])
    assert second["data"]["error"]["code"] == "upstream_error"
