"""The operator's credit commands (`flask ledger|holds|catalog|credits|idempotency …`) through Flask's runner."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import service as catalog
from app.catalog.seed import MODELS
from app.core.transaction import atomic
from app.extensions import db
from app.models import AiModel, CreditHold, IdempotencyKey, LedgerEntry, PriceRule, Tenant, utcnow
from tests.conftest import TEST_ACTOR


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def failed(result, words: str):
    """Exit 1 with the reason, never a traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit)
    assert words in result.output and "Traceback" not in result.output
    return result


@pytest.fixture
def acme(make):
    return make.tenant("Acme")


def test_catalog_seed_adds_the_contracts_models_once(runner):
    first = ok(runner.invoke(args=["catalog", "seed"]))
    assert f"Added {len(MODELS)} model(s)." in first.output and "midjourney-v7" in first.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AiModel)) == len(MODELS)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PriceRule)) == len(MODELS)
    second = ok(runner.invoke(args=["catalog", "seed"]))
    assert "Added 0 model(s)." in second.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AiModel)) == len(MODELS)


def test_catalog_seed_keeps_an_operators_prices_and_restores_a_deleted_model(runner):
    ok(runner.invoke(args=["catalog", "seed"]))
    sora = db.session.scalar(sa.select(AiModel).where(AiModel.model_id == "sora-image"))
    catalog.update_model(sora.id, TEST_ACTOR, prices={"credits": 99}, is_active=False)
    with atomic():
        db.session.execute(sa.delete(AiModel).where(AiModel.model_id == "veo3.1"))
    result = ok(runner.invoke(args=["catalog", "seed"]))
    assert "Added 1 model(s). veo3.1" in result.output
    model, rule = catalog.get_model(sora.id)
    assert rule.prices["credits"] == 99 and model.is_active is False


def test_ledger_verify_passes_on_a_clean_ledger(runner, acme):
    billing.recharge(acme.tenant.id, 100, TEST_ACTOR)
    with atomic():
        hold = ledger.hold(acme.tenant.id, 40)
    with atomic():
        ledger.settle(hold.id, 25, TEST_ACTOR)
    result = ok(runner.invoke(args=["ledger", "verify"]))
    assert "verified" in result.output


def test_ledger_verify_passes_with_no_tenants(runner):
    assert "verified" in ok(runner.invoke(args=["ledger", "verify"])).output


def test_ledger_verify_fails_naming_a_tenant_whose_balance_was_changed_behind_its_back(runner, make, acme):
    globex = make.tenant("Globex")
    billing.recharge(acme.tenant.id, 100, TEST_ACTOR)
    billing.recharge(globex.tenant.id, 100, TEST_ACTOR)
    with atomic():
        db.session.execute(sa.text("UPDATE tenants SET balance = balance + 5 WHERE name = 'Acme'"))
    result = failed(runner.invoke(args=["ledger", "verify"]), "Acme")
    assert str(acme.tenant.id) in result.output and "balance 105 != sum of entries 100" in result.output
    assert "Globex" not in result.output
    assert "1 problem(s) found." in result.stderr


def test_ledger_verify_fails_on_held_credits_without_a_hold(runner, acme):
    billing.recharge(acme.tenant.id, 100, TEST_ACTOR)
    with atomic():
        db.session.execute(sa.update(Tenant).where(Tenant.id == acme.tenant.id).values(held=7)
                           .execution_options(synchronize_session=False))
    result = failed(runner.invoke(args=["ledger", "verify"]), "Acme")
    assert "held 7 != sum of HELD holds 0" in result.output


def test_ledger_verify_fails_on_a_hold_charged_twice(runner, acme):
    billing.recharge(acme.tenant.id, 100, TEST_ACTOR)
    with atomic():
        hold = ledger.hold(acme.tenant.id, 10)
    with atomic():
        entry = ledger.settle(hold.id, 10, TEST_ACTOR)
    with atomic():  # a second CONSUME for the same hold, with the balance kept in step
        db.session.add(LedgerEntry(tenant_id=acme.tenant.id, type="CONSUME", amount=-10, balance_after=80,
                                   actor_type="system", hold_id=entry.hold_id))
        db.session.execute(sa.update(Tenant).where(Tenant.id == acme.tenant.id).values(balance=80)
                           .execution_options(synchronize_session=False))
    result = failed(runner.invoke(args=["ledger", "verify"]), f"hold {hold.id}: charged 2 times")
    assert "Acme" not in result.output


def test_holds_expire_releases_holds_past_their_expiry_only(runner, acme):
    billing.recharge(acme.tenant.id, 100, TEST_ACTOR)
    with atomic():
        dead = ledger.hold(acme.tenant.id, 30, ttl=timedelta(seconds=-1))
        live = ledger.hold(acme.tenant.id, 20)
    result = ok(runner.invoke(args=["holds", "expire"]))
    assert "Expired 1 hold(s)." in result.output
    assert ledger.account(acme.tenant.id) == ledger.Account(100, 20)
    statuses = dict(db.session.execute(sa.select(CreditHold.id, CreditHold.status)).all())
    assert statuses == {dead.id: "EXPIRED", live.id: "HELD"}
    assert "Expired 0 hold(s)." in ok(runner.invoke(args=["holds", "expire"])).output
    assert ledger.verify() == []


def test_holds_expire_gets_through_a_large_backlog_in_one_run(runner, acme):
    billing.recharge(acme.tenant.id, 10_000, TEST_ACTOR)
    with atomic():
        for _ in range(510):  # more than one sweep batch
            ledger.hold(acme.tenant.id, 1, ttl=timedelta(seconds=-1))
    assert "Expired 510 hold(s)." in ok(runner.invoke(args=["holds", "expire"])).output
    assert ledger.account(acme.tenant.id).held == 0
    assert ledger.verify() == []


def test_credits_recharge_adds_credits_as_the_cli(runner, acme):
    result = ok(runner.invoke(args=["credits", "recharge", str(acme.tenant.id), "100"]))
    assert "Balance 100, held 0, available 100." in result.output
    ok(runner.invoke(args=["credits", "recharge", str(acme.tenant.id), "50", "--description", "Invoice 9"]))
    entries = db.session.scalars(sa.select(LedgerEntry).order_by(LedgerEntry.created_at)).all()
    assert [(e.type, e.amount, e.actor_name) for e in entries] == [("RECHARGE", 100, "cli"), ("RECHARGE", 50, "cli")]
    assert entries[1].description == "Invoice 9"
    assert ledger.verify() == []


@pytest.mark.parametrize(("args", "words"), [
    (["0"], "Amount must be"),
    (["--", "-5"], "Amount must be"),
    (["100000000000"], "Amount must be"),
])
def test_credits_recharge_refuses_a_bad_amount(runner, acme, args, words):
    failed(runner.invoke(args=["credits", "recharge", str(acme.tenant.id), *args]), words)
    assert ledger.account(acme.tenant.id).balance == 0


def test_credits_recharge_refuses_an_unknown_tenant(runner):
    failed(runner.invoke(args=["credits", "recharge", str(uuid.uuid4()), "100"]), "No such tenant")
    failed(runner.invoke(args=["credits", "recharge", "acme", "100"]), "No such tenant")


def test_credits_recharge_refuses_a_non_number(runner, acme):
    result = runner.invoke(args=["credits", "recharge", str(acme.tenant.id), "ten"])
    assert result.exit_code == 2 and "ten" in result.output


def test_idempotency_purge_deletes_only_expired_keys(runner, acme):
    billing.recharge(acme.tenant.id, 10, TEST_ACTOR, idempotency_key="old")
    billing.recharge(acme.tenant.id, 10, TEST_ACTOR, idempotency_key="fresh")
    with atomic():
        db.session.execute(sa.update(IdempotencyKey).where(IdempotencyKey.key == "old")
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
    assert "Purged 1 key(s)." in ok(runner.invoke(args=["idempotency", "purge"])).output
    assert list(db.session.scalars(sa.select(IdempotencyKey.key))) == ["fresh"]
    assert "Purged 0 key(s)." in ok(runner.invoke(args=["idempotency", "purge"])).output
    # A purged key is free again: the same key with another body is a new recharge, not a 422.
    billing.recharge(acme.tenant.id, 15, TEST_ACTOR, idempotency_key="old")
    assert ledger.account(acme.tenant.id).balance == 35
    assert ledger.verify() == []
