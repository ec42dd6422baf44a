"""Midjourney through the HTTP API (jobs run at once here): imagine, then act on the grid's buttons,
each charged by its own operation × mode."""
from __future__ import annotations

import pytest

from app.billing import ledger
from tests.conftest import assert_error, key_headers


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme", credits=1000)


def imagine(client, created, prompt="a lighthouse --ar 16:9", **extra):
    return client.post("/api/v1/midjourney/imagine", headers=key_headers(created), json={"prompt": prompt, **extra})


def test_imagine_polls_to_success_with_buttons_then_an_upscale_is_charged_by_its_own_rule(client, acme):
    response = imagine(client, acme)
    assert response.status_code == 202, response.get_json()
    task = client.get(f"/api/v1/midjourney/tasks/{response.get_json()['id']}", headers=key_headers(acme)).get_json()
    assert task["status"] == "COMPLETED" and task["operation"] == "imagine" and task["progress"] == 100
    assert task["credits_charged"] == 40 and task["image_url"]  # imagine 40 × fast 100 %
    labels = [button["label"] for button in task["buttons"]]
    assert labels[:4] == ["U1", "U2", "U3", "U4"] and "V1" in labels
    grid = client.get(task["image_url"].replace("http://localhost", ""))
    assert grid.status_code == 200 and grid.mimetype == "image/png"

    upscale = next(b["custom_id"] for b in task["buttons"] if b["label"] == "U2")
    acted = client.post("/api/v1/midjourney/action", headers=key_headers(acme),
                        json={"generation_id": task["id"], "custom_id": upscale, "mode": "relax"})
    assert acted.status_code == 202, acted.get_json()
    done = client.get(f"/api/v1/midjourney/tasks/{acted.get_json()['id']}", headers=key_headers(acme)).get_json()
    assert done["status"] == "COMPLETED" and done["operation"] == "upscale" and done["parent_id"] == task["id"]
    assert done["credits_charged"] == 10  # upscale 20 × relax 50 %
    assert [b["label"] for b in done["buttons"]] == ["Vary (Strong)", "Vary (Subtle)"]
    assert ledger.account(acme.tenant.id).balance == 950 and ledger.verify() == []


def test_a_failed_task_releases_its_hold(client, acme):
    task = imagine(client, acme, "a storm [sandbox:task_fail]").get_json()
    shown = client.get(f"/api/v1/midjourney/tasks/{task['id']}", headers=key_headers(acme)).get_json()
    assert shown["status"] == "FAILED" and shown["error"]["code"] == "midjourney_failed"
    assert ledger.account(acme.tenant.id).balance == 1000 and ledger.verify() == []


def test_actions_need_a_finished_task_of_ones_own_and_one_of_its_buttons(client, make, acme):
    task = imagine(client, acme).get_json()
    other = make.funded_tenant("Globex")
    button = client.get(f"/api/v1/midjourney/tasks/{task['id']}", headers=key_headers(acme)).get_json()["buttons"][0]
    assert_error(client.post("/api/v1/midjourney/action", headers=key_headers(other),
                             json={"generation_id": task["id"], "custom_id": button["custom_id"]}), 404)
    assert_error(client.get(f"/api/v1/midjourney/tasks/{task['id']}", headers=key_headers(other)), 404)
    assert_error(client.post("/api/v1/midjourney/action", headers=key_headers(acme),
                             json={"generation_id": task["id"], "custom_id": "MJ::JOB::upsample::9::nope"}), 400,
                 "unknown_button")
    assert ledger.account(other.tenant.id).held == 0
