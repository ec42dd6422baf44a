"""Midjourney: the only pollable API; each poll advances the task one step."""
import io

import pytest
from PIL import Image

from tests.sandbox.conftest import AUTH, fetch, post


def imagine(sandbox_client, prompt="a castle on a hill"):
    response = post(sandbox_client, "/v1/midjourney/imagine", {"prompt": prompt})
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    return body["taskId"]


def poll(sandbox_client, task_id):
    response = sandbox_client.get(f"/v1/midjourney/task/{task_id}", headers=AUTH)
    assert response.status_code == 200
    return response.get_json()


def finish(sandbox_client, task_id):
    for _ in range(5):
        task = poll(sandbox_client, task_id)
        if task["status"] in ("SUCCESS", "FAILURE"):
            return task
    raise AssertionError("the task never finished")


def test_the_lifecycle_advances_with_each_poll(sandbox_client):
    task_id = imagine(sandbox_client, "a castle --ar 16:9")
    seen = [poll(sandbox_client, task_id) for _ in range(4)]
    assert [(t["status"], t["progress"]) for t in seen] == [
        ("SUBMITTED", "0%"), ("IN_PROGRESS", "50%"), ("SUCCESS", "100%"), ("SUCCESS", "100%")]
    assert seen[0]["imageUrl"] is None and seen[0]["buttons"] == [] and seen[0]["failReason"] is None
    done = seen[2]
    assert done["taskId"] == task_id
    assert done["failReason"] is None
    labels = [button["label"] for button in done["buttons"]]
    assert {"U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4"} <= set(labels)
    assert all(set(button) == {"customId", "label", "emoji"} for button in done["buttons"])
    grid = fetch(sandbox_client, done["imageUrl"])
    assert grid.mimetype == "image/png"
    width, height = Image.open(io.BytesIO(grid.data)).size
    assert width / height == pytest.approx(16 / 9, rel=0.02)
    assert seen[3]["imageUrl"] == done["imageUrl"]


def test_an_upscale_action_gives_a_single_image(sandbox_client):
    parent = finish(sandbox_client, imagine(sandbox_client))
    upscale = next(b for b in parent["buttons"] if b["label"] == "U2")
    response = post(sandbox_client, "/v1/midjourney/action",
                    {"messageId": parent["taskId"], "customId": upscale["customId"]})
    assert response.status_code == 200
    child = finish(sandbox_client, response.get_json()["taskId"])
    assert child["status"] == "SUCCESS"
    assert child["imageUrl"] != parent["imageUrl"]
    assert Image.open(io.BytesIO(fetch(sandbox_client, child["imageUrl"]).data)).size == (512, 512)
    assert child["buttons"] and not any(b["label"].startswith("U") for b in child["buttons"])


def test_a_variation_gives_a_new_grid(sandbox_client):
    parent = finish(sandbox_client, imagine(sandbox_client))
    variation = next(b for b in parent["buttons"] if b["label"] == "V3")
    response = post(sandbox_client, "/v1/midjourney/action",
                    {"messageId": parent["taskId"], "customId": variation["customId"]})
    child = finish(sandbox_client, response.get_json()["taskId"])
    assert {"U1", "V4"} <= {b["label"] for b in child["buttons"]}


def test_actions_must_name_a_button_of_a_finished_task(sandbox_client):
    task_id = imagine(sandbox_client)
    upscale_first = f"MJ::JOB::upsample::1::{task_id}"
    response = post(sandbox_client, "/v1/midjourney/action", {"messageId": task_id, "customId": upscale_first})
    assert response.status_code == 400  # not finished yet: no buttons
    finish(sandbox_client, task_id)
    response = post(sandbox_client, "/v1/midjourney/action",
                    {"messageId": task_id, "customId": "MJ::JOB::upsample::9::x"})
    assert response.status_code == 400
    response = post(sandbox_client, "/v1/midjourney/action",
                    {"messageId": "nope", "customId": "MJ::JOB::upsample::1::nope"})
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"
    assert post(sandbox_client, "/v1/midjourney/action", {"messageId": task_id}).status_code == 400


def test_an_unknown_task_is_404(sandbox_client):
    response = sandbox_client.get("/v1/midjourney/task/does-not-exist", headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "not_found"


def test_imagine_needs_a_prompt(sandbox_client):
    response = post(sandbox_client, "/v1/midjourney/imagine", {"prompt": ""})
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request"


def test_task_fail_marker_ends_in_failure(sandbox_client):
    task = finish(sandbox_client, imagine(sandbox_client, "a castle [sandbox:task_fail]"))
    assert task["status"] == "FAILURE"
    assert task["failReason"]
    assert task["imageUrl"] is None and task["buttons"] == []


def test_concurrent_polls_see_each_step_once(sandbox_client, sandbox_app):
    from concurrent.futures import ThreadPoolExecutor

    task_id = imagine(sandbox_client)

    def one_poll(_):
        with sandbox_app.test_client() as client:
            return client.get(f"/v1/midjourney/task/{task_id}", headers=AUTH).get_json()["status"]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one_poll, range(8)))
    assert statuses.count("SUBMITTED") == 1 and statuses.count("IN_PROGRESS") == 1
    assert statuses.count("SUCCESS") == 6
