"""What a crash leaves behind, and the sweep (`flask holds expire`) that ends it.

A process killed mid-generation never runs the rest of the flow: its generation stays active, its hold
HELD, its Idempotency-Key IN_PROGRESS. The crash is written here by the real `flow.start` (the state a
SIGKILL during the gateway call leaves) and, where a request really is in flight, by a slow sandbox call
in another thread. Time passing is the one thing faked: the rows are aged by moving their timestamps.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.billing import ledger
from app.catalog import service as catalog
from app.core.transaction import atomic
from app.extensions import db
from app.generation import flow, sweep
from app.identity import api_keys
from app.models import CreditHold, Generation, IdempotencyKey, LedgerEntry, StoredFile, Tenant, UsageRecord
from app.storage import service as storage
from tests.conftest import TEST_ACTOR, key_headers, require_postgres

IMAGE = "doubao-seedream-4-0-250828"  # PER_IMAGE: 20 credits for one 2K image
CHAT = "gemini-2.5-pro"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def caller(created, *, test_key=None) -> flow.Caller:
    key = test_key or created.api_key
    return flow.Caller(created.tenant, None, key.id, key.mode == "test", TEST_ACTOR)


def crash_after_start(created, key: str | None, *, prompt="a lighthouse", test_key=None) -> uuid.UUID:
    """What a request killed during its gateway call leaves: start() committed, nothing after it ran."""
    params = {"model": IMAGE, "prompt": prompt, "max_images": 1, "n": 1}  # what POST {model, prompt} starts
    started = flow.start(caller(created, test_key=test_key), "image", params, idempotency_key=key,
                         generating=True)
    return started.generation.id


def age(generation_id: uuid.UUID, by: timedelta, *, deadline: bool = True) -> None:
    """Move a generation (and its hold) `by` into the past; `deadline=False` keeps its deadline and
    the hold's expiry where they are (only its start is older)."""
    generation = db.session.get(Generation, generation_id, populate_existing=True)
    hold = db.session.get(CreditHold, generation.hold_id) if generation.hold_id else None
    for row, moved in ((generation, ("created_at", "deadline_at")), (hold, ("created_at", "expires_at"))):
        for column in moved if deadline else moved[:1]:
            if row is not None:
                db.session.execute(sa.update(type(row)).where(type(row).id == row.id)
                                   .values({column: getattr(row, column) - by}))
    db.session.commit()


def image(client, created, headers, prompt="a lighthouse"):
    return client.post("/api/v1/images/generations", headers=headers, json={"model": IMAGE, "prompt": prompt})


def current(generation_id) -> Generation:
    return db.session.get(Generation, generation_id, populate_existing=True)


def hold_of(generation: Generation) -> CreditHold:
    return db.session.get(CreditHold, generation.hold_id, populate_existing=True)


def failures(generation_id) -> list[str]:
    return list(db.session.scalars(sa.select(UsageRecord.status).where(UsageRecord.generation_id == generation_id)))


def expire(runner, *args) -> str:
    result = runner.invoke(args=["holds", "expire", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_after_a_crash_holds_expire_fails_the_stuck_generation_and_a_retry_with_its_key_runs_again(
        runner, client, acme):
    headers = {**key_headers(acme), "Idempotency-Key": "order-7"}
    generation_id = crash_after_start(acme, "order-7")
    assert ledger.account(acme.tenant.id) == ledger.Account(1000, 20)
    blocked = image(client, acme, headers)
    assert blocked.status_code == 409 and blocked.get_json()["error"]["code"] == "idempotency_request_in_progress"

    age(generation_id, timedelta(hours=1))  # past its deadline and its hold's expiry
    output = expire(runner)

    generation = current(generation_id)
    assert (generation.status, generation.error_code) == ("FAILED", "deadline_exceeded")
    assert "nothing was charged" in generation.error_message and generation.completed_at is not None
    assert [step["status"] for step in generation.timeline] == ["PENDING", "GENERATING", "FAILED"]
    assert hold_of(generation).status == "EXPIRED"
    assert ledger.account(acme.tenant.id) == ledger.Account(1000, 0)
    assert failures(generation_id) == ["failure"]
    assert ledger.verify() == []
    assert "Expired 1 hold(s). Failed 1 stuck generation(s)." in output

    shown = client.get(f"/api/v1/generations/{generation_id}", headers=key_headers(acme)).get_json()
    assert shown["status"] == "FAILED"
    retried = image(client, acme, headers)  # the key was freed with the failure: it runs again
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["generation_id"] != str(generation_id)
    assert ledger.account(acme.tenant.id) == ledger.Account(980, 0)
    assert "Expired 0 hold(s). Failed 0 stuck generation(s)." in expire(runner)
    assert ledger.verify() == []


def test_a_generation_past_its_deadline_is_failed_before_its_hold_expires(runner, app, acme):
    generation_id = crash_after_start(acme, "k1")
    generation = current(generation_id)
    # Killed while copying its result: the object was recorded and written, never confirmed.
    pending = storage.record_pending(tenant_id=acme.tenant.id, generation_id=generation_id, caller="api", index=0,
                                     content_type="image/png", original_url=None)
    storage.write(pending, PNG)
    db.session.commit()
    written = Path(app.config["STORAGE_DIR"]) / pending.storage_key
    assert written.exists()
    past_deadline = (generation.deadline_at - generation.created_at) + timedelta(seconds=1)
    age(generation_id, past_deadline)

    output = expire(runner)
    generation = current(generation_id)
    assert (generation.status, generation.error_code) == ("FAILED", "deadline_exceeded")
    assert hold_of(generation).status == "RELEASED"  # released by the failure, not left to expire
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0 and not written.exists()
    assert ledger.account(acme.tenant.id) == ledger.Account(1000, 0) and ledger.verify() == []
    assert "Expired 0 hold(s). Failed 1 stuck generation(s)." in output


def test_a_test_mode_generation_past_its_deadline_is_failed_by_the_sweep(runner, client, make):
    catalog.seed_catalog(TEST_ACTOR)
    created = make.tenant()
    key, raw = api_keys.create_key(created.tenant.id, TEST_ACTOR, name="test", mode="test")
    headers = {"Authorization": f"Bearer {raw}", "Idempotency-Key": "try-1"}
    generation_id = crash_after_start(created, "try-1", test_key=key)
    assert current(generation_id).hold_id is None  # test mode: nothing held, nothing for a hold sweep to find
    assert image(client, created, headers).status_code == 409

    age(generation_id, timedelta(hours=1))
    output = expire(runner)
    generation = current(generation_id)
    assert (generation.status, generation.error_code) == ("FAILED", "deadline_exceeded")
    assert failures(generation_id) == ["failure"]
    assert image(client, created, headers).status_code == 200
    assert "Expired 0 hold(s). Failed 1 stuck generation(s)." in output


def test_holds_expire_leaves_a_generation_within_its_deadline_alone(runner, acme):
    generation_id = crash_after_start(acme, None)
    assert "Expired 0 hold(s). Failed 0 stuck generation(s)." in expire(runner)
    assert current(generation_id).status == "GENERATING"
    assert ledger.account(acme.tenant.id).held == 20


def test_older_than_releases_a_young_hold_and_fails_its_generation(runner, client, make, acme):
    headers = {**key_headers(acme), "Idempotency-Key": "after-crash"}
    generation_id = crash_after_start(acme, "after-crash")
    key, raw = api_keys.create_key(acme.tenant.id, TEST_ACTOR, name="test", mode="test")
    test_mode_id = crash_after_start(acme, None, test_key=key)
    just_started = crash_after_start(acme, None, prompt="a harbour")
    age(generation_id, timedelta(minutes=11), deadline=False)  # its hold expires in 17 minutes' time
    age(test_mode_id, timedelta(minutes=11), deadline=False)

    assert "Failed 0 stuck generation(s)." in expire(runner)
    assert "Failed 0 stuck generation(s)." in expire(runner, "--older-than", "12m")
    assert current(generation_id).status == "GENERATING"
    output = expire(runner, "--older-than", "10m")

    generation = current(generation_id)
    assert (generation.status, generation.error_code) == ("FAILED", "generation_abandoned")
    assert hold_of(generation).status == "EXPIRED"
    assert (current(test_mode_id).status, current(test_mode_id).error_code) == ("FAILED", "generation_abandoned")
    assert current(just_started).status == "GENERATING"
    assert ledger.account(acme.tenant.id) == ledger.Account(1000, 20) and ledger.verify() == []
    assert image(client, acme, headers).status_code == 200
    assert "Expired 1 hold(s). Failed 2 stuck generation(s)." in output


@pytest.mark.parametrize("value", ["10", "10x", "-5m", "0m", "1.5h", "m", "10 minutes", ""])
def test_older_than_refuses_what_is_not_a_duration(runner, acme, value):
    generation_id = crash_after_start(acme, None)
    age(generation_id, timedelta(hours=1), deadline=False)
    result = runner.invoke(args=["holds", "expire", "--older-than", value])
    assert result.exit_code == 2 and "is not a duration" in result.output, result.output
    assert current(generation_id).status == "GENERATING"


def test_a_hold_without_a_generation_simply_expires(runner, acme):
    with atomic():
        hold = ledger.hold(acme.tenant.id, 30, ttl=timedelta(seconds=-1))
    assert "Expired 1 hold(s). Failed 0 stuck generation(s)." in expire(runner)
    assert db.session.get(CreditHold, hold.id, populate_existing=True).status == "EXPIRED"
    assert ledger.verify() == []


def _in_thread(app, work):
    box = {}

    def run():
        with app.app_context():
            try:
                box["result"] = work()
            except Exception as error:  # noqa: BLE001 - the outcome is what the test reads
                box["result"] = error
            finally:
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def _wait_for(condition, what: str):
    for _ in range(600):
        db.session.rollback()  # a fresh snapshot each look
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"never saw {what}")


def test_a_request_still_running_past_its_deadline_loses_to_the_sweep(app, runner, acme, is_postgres):
    require_postgres(is_postgres)
    headers = {**key_headers(acme), "Idempotency-Key": "slow-1"}
    body = {"model": IMAGE, "prompt": "a slow lighthouse [sandbox:slow=3]"}
    thread, box = _in_thread(app, lambda: app.test_client().post("/api/v1/images/generations", headers=headers,
                                                                json=body))
    _wait_for(lambda: db.session.scalar(sa.select(Generation.id)) is not None, "the generation start")
    generation_id = db.session.scalar(sa.select(Generation.id))
    age(generation_id, timedelta(hours=1))
    assert "Failed 1 stuck generation(s)." in expire(runner)
    thread.join(60)

    response = box["result"]
    assert response.status_code == 504 and response.get_json()["error"]["code"] == "deadline_exceeded"
    generation = current(generation_id)
    assert generation.status == "FAILED" and generation.credits_charged == 0 and generation.results == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry).where(
        LedgerEntry.type == "CONSUME")) == 0
    assert failures(generation_id) == ["failure"]
    assert ledger.account(acme.tenant.id) == ledger.Account(1000, 0) and ledger.verify() == []


def _waiting_on_locks() -> int:
    return db.session.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND wait_event_type = 'Lock'"))


@pytest.mark.parametrize("first", ["worker", "sweep"])
def test_the_sweep_and_a_finishing_settle_racing_on_one_generation_end_in_one_outcome(app, acme, is_postgres,
                                                                                      first):
    """Both reach the generation's row while another transaction holds it, in the order given; when it
    lets go, exactly one of them ends the generation."""
    require_postgres(is_postgres)
    started = flow.start(caller(acme), "chat", {"model": CHAT, "messages": [{"role": "user", "content": "hi"}]},
                         idempotency_key="race", generating=True)
    generation_id = started.generation.id
    age(generation_id, timedelta(hours=1))

    tenant_id = acme.tenant.id

    def finish():
        generation = db.session.get(Generation, generation_id)
        model, rule = catalog.model_for_tenant(db.session.get(Tenant, tenant_id), generation.model)
        return flow.execute(flow.Started(generation, model, rule)).status

    works = {"worker": finish, "sweep": lambda: sweep.sweep()}
    with db.engine.connect() as blocker:
        blocker.execute(sa.text("SELECT 1 FROM generations WHERE id = :id FOR UPDATE"), {"id": generation_id})
        threads = {}
        for waiting, name in enumerate((first, "sweep" if first == "worker" else "worker"), start=1):
            threads[name] = _in_thread(app, works[name])
            _wait_for(lambda n=waiting: _waiting_on_locks() >= n, f"{name} waiting for the row")
        blocker.rollback()
    for thread, _box in threads.values():
        thread.join(60)
    worker, swept = threads["worker"][1]["result"], threads["sweep"][1]["result"]

    generation = current(generation_id)
    hold = hold_of(generation)
    consumed = db.session.scalars(sa.select(LedgerEntry.amount).where(LedgerEntry.hold_id == hold.id)).all()
    key = db.session.scalar(sa.select(IdempotencyKey))
    if first == "worker":
        assert worker == "COMPLETED" and swept == sweep.Swept(generations=0, holds=0)
        assert generation.status == "COMPLETED" and hold.status == "SETTLED" and len(consumed) == 1
        assert failures(generation_id) == ["success"] and key.status == "COMPLETED"
    else:
        assert isinstance(worker, flow.GenerationStopped) and worker.code == "deadline_exceeded"
        assert swept == sweep.Swept(generations=1, holds=1)
        assert generation.status == "FAILED" and hold.status == "EXPIRED" and consumed == []
        assert failures(generation_id) == ["failure"] and key is None
    assert ledger.account(acme.tenant.id).held == 0 and ledger.verify() == []
