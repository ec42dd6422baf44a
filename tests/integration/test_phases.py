"""The two spellings of a paid generation's money phases give the same books.

On PostgreSQL the hold and the settle are one statement each (app/generation/phases.py); SQLite, and
PostgreSQL with the phases switched off, run the portable path. Each scenario runs on a fresh tenant
and returns what it left (balances, entries, holds, generations, usage records and rollups, stored
files); on PostgreSQL it runs through both spellings and the two must match, on SQLite the portable
path must meet the scenario's own expectations (which the PostgreSQL runs meet too).
"""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import current_app

from app.billing import accounts as billing
from app.billing import ledger
from app.core.db import utcnow
from app.core.transaction import atomic
from app.extensions import db
from app.generation import flow, phases
from app.generation.models import Generation, UsageDaily, UsageRecord
from app.identity.models import Tenant
from app.models import CreditHold, IdempotencyKey, LedgerEntry
from app.storage.models import StoredFile
from tests.conftest import TEST_ACTOR, key_headers, make_app, require_postgres

IMAGE = "doubao-seedream-4-0-250828"  # 20 credits per 2K image
CHAT = "gemini-2.5-pro"
MESSAGES = [{"role": "user", "content": "What is a fox?"}]


def books(tenant_id: uuid.UUID) -> dict:
    """What a scenario left for its tenant, without ids and times (which differ from run to run)."""
    db.session.rollback()

    def rows(*columns, where):
        return sorted(tuple(row) for row in db.session.execute(sa.select(*columns).where(where)))

    tenant = db.session.get(Tenant, tenant_id, populate_existing=True)
    return {
        "tenant": (tenant.balance, tenant.held, tenant.storage_used_bytes),
        "entries": rows(LedgerEntry.type, LedgerEntry.amount, LedgerEntry.balance_after, LedgerEntry.description,
                        LedgerEntry.actor_type, LedgerEntry.hold_id.is_not(None), where=LedgerEntry.tenant_id == tenant_id),
        "holds": rows(CreditHold.status, CreditHold.amount, CreditHold.settled_amount, CreditHold.description,
                      CreditHold.resolved_at.is_not(None), where=CreditHold.tenant_id == tenant_id),
        "generations": sorted(
            (g.kind, g.model, g.status, g.credits_held, g.credits_charged, g.error_code, g.progress,
             tuple(step["status"] for step in g.timeline), len(g.results), g.output is not None,
             g.hold_id is not None, g.completed_at is not None, g.lease_until)
            for g in db.session.scalars(sa.select(Generation).where(Generation.tenant_id == tenant_id))),
        "usage": rows(UsageRecord.kind, UsageRecord.operation, UsageRecord.status, UsageRecord.credits,
                      UsageRecord.input_tokens, UsageRecord.output_tokens, UsageRecord.quantity,
                      where=UsageRecord.tenant_id == tenant_id),
        "daily": rows(UsageDaily.model, UsageDaily.caller, UsageDaily.kind, UsageDaily.requests, UsageDaily.failures,
                      UsageDaily.credits, UsageDaily.input_tokens, UsageDaily.output_tokens, UsageDaily.quantity,
                      where=UsageDaily.tenant_id == tenant_id),
        "files": rows(StoredFile.status, StoredFile.variant, StoredFile.size_bytes, where=StoredFile.tenant_id == tenant_id),
        "keys": rows(IdempotencyKey.scope, IdempotencyKey.key, IdempotencyKey.status, IdempotencyKey.result.is_not(None),
                     where=IdempotencyKey.tenant_id == tenant_id),
    }


def _set(tenant_id, **values):
    with atomic():
        db.session.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(**values))


def _error_code(response):
    return response.status_code, (response.get_json().get("error") or {}).get("code")


def success(client, created):
    chat = client.post("/api/v1/chat/completions", headers=key_headers(created), json={"model": CHAT, "messages": MESSAGES})
    image = client.post("/api/v1/images/generations", headers=key_headers(created),
                        json={"model": IMAGE, "prompt": "two foxes", "n": 2})
    assert chat.status_code == image.status_code == 200, (chat.get_json(), image.get_json())
    assert image.get_json()["usage"] == {"images": 2, "credits": 40}
    return chat.get_json()["usage"]["credits"], image.get_json()["usage"]["credits"]


def insufficient_credits(client, created):
    billing.adjust(created.tenant.id, -970, "leave 30", TEST_ACTOR)
    return _error_code(client.post("/api/v1/images/generations", headers=key_headers(created),
                                   json={"model": IMAGE, "prompt": "two foxes", "n": 2}))


def fees_owed(client, created):
    _set(created.tenant.id, storage_fees_owed=5)  # as a daily bill the tenant could not pay leaves it
    refused = _error_code(client.post("/api/v1/chat/completions", headers=key_headers(created),
                                      json={"model": CHAT, "messages": MESSAGES}))
    _set(created.tenant.id, storage_fees_owed=0)  # no bill behind the 5: ledger.verify() would name them
    return refused


def quota_exceeded(client, created):
    _set(created.tenant.id, storage_quota_bytes=1024 * 1024)
    image = _error_code(client.post("/api/v1/images/generations", headers=key_headers(created),
                                    json={"model": IMAGE, "prompt": "a fox"}))
    chat = client.post("/api/v1/chat/completions", headers=key_headers(created), json={"model": CHAT, "messages": MESSAGES})
    return image, chat.status_code  # a chat stores nothing: the quota does not stop it


def settle_loses_to_a_sweep(client, created):
    """A sweep fails the generation (in its own session) while its gateway call runs: the settle
    writes nothing, and the request answers with the sweep's failure."""
    key, app = created.api_key, current_app._get_current_object()
    caller = flow.Caller(db.session.get(Tenant, created.tenant.id), None, key.id, False, TEST_ACTOR)
    started = flow.start(caller, "chat", {"model": CHAT, "messages": MESSAGES}, generating=True)

    def sweep():
        with app.app_context():
            with atomic():
                flow.record_failure(flow.locked(Generation.id == started.generation.id), "deadline_exceeded",
                                    "The generation took too long.")
            db.session.remove()

    thread = threading.Thread(target=sweep)
    thread.start()
    thread.join(30)
    with pytest.raises(flow.GenerationStopped) as stopped:
        flow.execute(started)
    return stopped.value.code


def replayed_key(client, created):
    """An Idempotency-Key: the first request holds and writes the key's row; the retry replays it, and
    the same key with another body is refused, neither holding anything."""
    headers = {**key_headers(created), "Idempotency-Key": "once"}
    body = {"model": IMAGE, "prompt": "one fox"}
    first = client.post("/api/v1/images/generations", headers=headers, json=body)
    again = client.post("/api/v1/images/generations", headers=headers, json=body)
    other = client.post("/api/v1/images/generations", headers=headers, json={**body, "prompt": "two foxes"})
    return (first.status_code, again.status_code, again.get_json()["generation_id"] == first.get_json()["generation_id"],
            _error_code(other))


EXPECTED = {
    success: None,  # checked inside
    insufficient_credits: (402, "insufficient_credits"),
    fees_owed: (402, "storage_fees_owed"),
    quota_exceeded: ((413, "storage_quota_exceeded"), 200),
    settle_loses_to_a_sweep: "deadline_exceeded",
    replayed_key: (200, 200, True, (422, "idempotency_key_reused")),
}


def _run(client, make, scenario, *, one_statement: bool):
    phases.ENABLED = one_statement
    try:
        created = make.funded_tenant()
        outcome = scenario(client, created)
    finally:
        phases.ENABLED = True
    if EXPECTED[scenario] is not None:
        assert outcome == EXPECTED[scenario]
    assert ledger.verify() == []
    return outcome, books(created.tenant.id)


def _statements(app) -> list[str]:
    seen: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda _c, _cur, statement, *_a: seen.append(statement))
    return seen


@pytest.mark.parametrize("scenario", list(EXPECTED), ids=lambda s: s.__name__)
def test_both_spellings_leave_the_same_books(app, client, make, is_postgres, scenario):
    statements = _statements(app)
    portable = _run(client, make, scenario, one_statement=False)
    assert not any("WITH granted AS" in s or "WITH gen AS" in s for s in statements)
    if not is_postgres:
        return
    one_statement = _run(client, make, scenario, one_statement=True)
    assert any("WITH granted AS" in s for s in statements)  # the phases ran, not the portable path
    assert one_statement == portable


def test_the_books_of_each_scenario(app, client, make):
    """What the portable path leaves, spelled out (the comparison above holds the phases to it)."""
    (chat_credits, image_credits), left = _run(client, make, success, one_statement=False)
    assert left["tenant"][:2] == (1000 - chat_credits - image_credits, 0) and left["tenant"][2] > 0
    assert [e[:2] for e in left["entries"]] == sorted([("CONSUME", -chat_credits), ("CONSUME", -40),
                                                        ("RECHARGE", 1000)])
    assert sorted((h[0], h[2]) for h in left["holds"]) == sorted([("SETTLED", chat_credits), ("SETTLED", 40)])
    assert sorted((d[2], d[3], d[5]) for d in left["daily"]) == [("chat", 1, chat_credits), ("image", 1, 40)]
    assert [f[:2] for f in left["files"]] == [("STORED", "result")] * 2

    code, left = _run(client, make, settle_loses_to_a_sweep, one_statement=False)
    assert left["tenant"] == (1000, 0, 0) and [h[0] for h in left["holds"]] == ["RELEASED"]
    assert [g[2] for g in left["generations"]] == ["FAILED"] and [u[2] for u in left["usage"]] == ["failure"]


def test_the_phases_on_an_autocommitted_connection(app, make, is_postgres):
    """With no transaction open in the session (as a request on warm caches), each phase is one
    autocommitted statement: nothing else is sent, and a refused hold is read back once."""
    require_postgres(is_postgres)
    created = make.funded_tenant(credits=25)
    tenant_id = created.tenant.id
    db.session.commit()
    statements = _statements(app)
    generation, hold = _new_generation(tenant_id, 20)
    phases.hold(generation, hold, needs_bytes=0)
    assert [s.split()[0] for s in statements] == ["WITH"]
    with pytest.raises(ledger.InsufficientCredits):
        phases.hold(*_new_generation(tenant_id, 20), needs_bytes=0)
    assert len(statements) == 3  # the refused statement, then the read of why
    _finish(generation)
    settled = phases.settle(generation, 15, TEST_ACTOR, description="chat bench", event="generation.completed",
                            usage={"input_tokens": 10, "output_tokens": 5})
    assert len(statements) == 4, [s.split()[:6] for s in statements]
    assert (settled.balance, settled.held) == (10, 0) and not settled.low_credits_armed
    assert ledger.account(tenant_id) == ledger.Account(10, 0) and ledger.verify() == []
    assert db.session.get(Generation, generation.id, populate_existing=True).status == "COMPLETED"


def _new_generation(tenant_id, amount):
    now = utcnow()
    generation = Generation(id=uuid.uuid4(), tenant_id=tenant_id, user_id=None, api_key_id=None, model=CHAT,
                            kind="chat", is_test=False, params={"model": CHAT}, credits_held=amount,
                            status="GENERATING", timeline=[{"status": "GENERATING", "at": "now"}],
                            deadline_at=now + timedelta(minutes=5), started_at=now, progress=0)
    hold = CreditHold(id=uuid.uuid4(), tenant_id=tenant_id, amount=amount, status="HELD", reference=f"generation:{generation.id}",
                      description="chat", expires_at=now + timedelta(minutes=15), created_at=now)
    generation.hold_id = hold.id
    return generation, hold


def _finish(generation):
    generation.status, generation.progress, generation.completed_at = "COMPLETED", 100, utcnow()
    generation.credits_charged = 15


@pytest.fixture
def wide_app(test_env, tmp_path, is_postgres):
    require_postgres(is_postgres)
    wide = make_app(test_env, tmp_path / "wide", SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 40, "max_overflow": 10,
                                                                             "pool_timeout": 120})
    yield wide
    with wide.app_context():
        db.engine.dispose()


def test_200_concurrent_image_requests_against_a_balance_for_50_get_exactly_50(wide_app, make):
    created = make.funded_tenant(credits=50 * 20)
    barrier = threading.Barrier(200)
    statuses = [None] * 200

    def post(index):
        with wide_app.app_context():
            client = wide_app.test_client()
            barrier.wait(timeout=60)
            try:
                response = client.post("/api/v1/images/generations", headers=key_headers(created),
                                       json={"model": IMAGE, "prompt": f"fox {index}"})
                statuses[index] = _error_code(response) if response.status_code != 200 else 200
            finally:
                db.session.remove()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert statuses.count(200) == 50 and statuses.count((402, "insufficient_credits")) == 150, set(map(str, statuses))
    assert ledger.account(created.tenant.id) == ledger.Account(0, 0) and ledger.verify() == []
    assert sorted(db.session.scalars(sa.select(LedgerEntry.amount).where(LedgerEntry.tenant_id == created.tenant.id))) \
        == [-20] * 50 + [1000]


def test_a_hold_is_sent_again_on_a_new_connection_when_the_server_dropped_the_pooled_one(app, make, is_postgres,
                                                                                         caplog):
    """No pre-ping: a connection the server closed fails on use, and the hold (whose ids the client
    chose) is sent once more on a fresh connection, and held once."""
    require_postgres(is_postgres)
    tenant_id = make.funded_tenant(credits=25).tenant.id
    db.session.remove()  # the session's connection goes back to the pool, alive
    with db.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    outsider = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
    with outsider.connect() as connection:
        dropped = connection.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                             "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    outsider.dispose()
    assert dropped >= 1
    generation, hold = _new_generation(tenant_id, 20)
    phases.hold(generation, hold, needs_bytes=0)
    assert "sending the phase statement again" in caplog.text
    assert ledger.account(tenant_id) == ledger.Account(25, 20) and ledger.verify() == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditHold)) == 1
