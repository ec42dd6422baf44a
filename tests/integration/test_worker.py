"""The job queue with a real worker process: what is enqueued runs there, Ctrl-C stops it at once."""
from __future__ import annotations

import time
import uuid

from app.billing import ledger
from app.extensions import db
from app.generation.models import Generation
from tests.conftest import key_headers
from tests.integration.conftest import wait_for

IMAGE = "doubao-seedream-4-0-250828"


def test_an_async_image_is_generated_by_the_worker_process(queued_app, make, worker):
    acme = make.funded_tenant("Acme")
    client = queued_app.test_client()
    response = client.post("/api/v1/images/generations", headers=key_headers(acme),
                           json={"model": IMAGE, "prompt": "a fox", "async": True})
    assert response.status_code == 202 and response.get_json()["status"] == "PENDING"
    generation_id = uuid.UUID(response.get_json()["id"])

    def finished():
        db.session.expire_all()
        generation = db.session.get(Generation, generation_id)
        return generation if generation.status in ("COMPLETED", "FAILED") else None

    time.sleep(1)
    assert db.session.get(Generation, generation_id).status == "PENDING"  # nothing runs it in the web process
    worker.start()
    generation = wait_for(finished)
    assert generation is not None, worker.output()
    assert generation.status == "COMPLETED" and generation.credits_charged == 20, worker.output()
    assert ledger.account(acme.tenant.id).balance == 980 and ledger.verify() == []


def test_ctrl_c_stops_the_worker_promptly(worker):
    worker.start()
    wait_for(lambda: "worker running" in worker.output(), seconds=30)
    began = time.monotonic()
    assert worker.stop() == 0
    assert time.monotonic() - began < 10, worker.output()
