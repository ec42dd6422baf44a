"""The ledger's promises: holds resolve once, every movement has its entry, the database refuses
an overdraft, and the books balance after any sequence of operations — on PostgreSQL under load."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)
from sqlalchemy.exc import IntegrityError

from app.billing import accounts as billing
from app.billing import ledger
from app.core.transaction import atomic
from app.extensions import db
from app.generation import sweep
from app.identity import tenants
from app.models import CreditHold, LedgerEntry, Tenant
from tests.conftest import TEST_ACTOR, require_postgres


def fund(created, amount):
    billing.recharge(created.tenant.id, amount, TEST_ACTOR)


def account(created):
    return ledger.account(created.tenant.id)


def test_hold_settle_charges_actual_and_returns_the_rest(make):
    acme = make.tenant()
    fund(acme, 100)
    with atomic():
        hold = ledger.hold(acme.tenant.id, 30, reference="gen-1")
    assert (account(acme).balance, account(acme).held, account(acme).available) == (100, 30, 70)
    with atomic():
        entry = ledger.settle(hold.id, 12, TEST_ACTOR, description="image")
    assert (account(acme).balance, account(acme).held) == (88, 0)
    assert entry.type == "CONSUME" and entry.amount == -12 and entry.balance_after == 88
    assert entry.hold_id == hold.id and entry.reference == "gen-1"
    assert ledger.verify() == []


def test_release_and_expire_return_everything_and_write_no_entry(make):
    acme = make.tenant()
    fund(acme, 50)
    with atomic():
        first = ledger.hold(acme.tenant.id, 20)
        second = ledger.hold(acme.tenant.id, 30)
    assert account(acme).available == 0
    with atomic():
        assert ledger.release(first.id) is True
        assert ledger.expire(second.id) is True
    assert (account(acme).balance, account(acme).held) == (50, 0)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)
                             .where(LedgerEntry.type == "CONSUME")) == 0
    assert ledger.verify() == []


def test_a_hold_resolves_exactly_once(make):
    acme = make.tenant()
    fund(acme, 50)
    with atomic():
        hold = ledger.hold(acme.tenant.id, 20)
    with atomic():
        ledger.settle(hold.id, 20, TEST_ACTOR)
    with pytest.raises(ledger.HoldAlreadyResolved):
        with atomic():
            ledger.settle(hold.id, 5, TEST_ACTOR)
    with atomic():
        assert ledger.release(hold.id) is False
        assert ledger.expire(hold.id) is False
    assert (account(acme).balance, account(acme).held) == (30, 0)
    assert ledger.verify() == []


def test_settling_more_than_held_is_refused_and_changes_nothing(make):
    acme = make.tenant()
    fund(acme, 50)
    with atomic():
        hold = ledger.hold(acme.tenant.id, 10)
    with pytest.raises(Exception, match="Cannot settle 11"):
        with atomic():
            ledger.settle(hold.id, 11, TEST_ACTOR)
    assert db.session.get(CreditHold, hold.id, populate_existing=True).status == "HELD"
    assert (account(acme).balance, account(acme).held) == (50, 10)


def test_insufficient_credits_is_402_and_holds_nothing(make):
    acme = make.tenant()
    fund(acme, 9)
    with pytest.raises(ledger.InsufficientCredits) as caught:
        with atomic():
            ledger.hold(acme.tenant.id, 10)
    assert caught.value.status == 402
    assert account(acme).held == 0 and db.session.scalar(sa.select(sa.func.count()).select_from(CreditHold)) == 0


def test_the_database_itself_refuses_an_overdraft(make):
    acme = make.tenant()
    fund(acme, 5)
    for values in ({"held": 6}, {"held": -1}):
        with pytest.raises(IntegrityError):
            with atomic():
                db.session.execute(sa.update(Tenant).where(Tenant.id == acme.tenant.id).values(**values))


def test_expiry_sweep_releases_only_holds_past_their_deadline(make):
    acme = make.tenant()
    fund(acme, 100)
    with atomic():
        stale = ledger.hold(acme.tenant.id, 40, ttl=timedelta(seconds=-1))
        fresh = ledger.hold(acme.tenant.id, 10)
    assert sweep.sweep().holds == 1
    assert db.session.get(CreditHold, stale.id, populate_existing=True).status == "EXPIRED"
    assert db.session.get(CreditHold, fresh.id, populate_existing=True).status == "HELD"
    assert account(acme).held == 10 and ledger.verify() == []


def test_verify_names_a_tenant_whose_balance_does_not_match_its_entries(make):
    acme = make.tenant("Acme")
    fund(acme, 100)
    with atomic():  # a balance changed behind the ledger's back
        db.session.execute(sa.update(Tenant).where(Tenant.id == acme.tenant.id).values(balance=Tenant.balance + 1))
    problems = ledger.verify()
    assert len(problems) == 1 and "Acme" in problems[0] and "balance 101 != sum of entries 100" in problems[0]


def _race(app, works):
    """Run each callable in its own thread and app context (own DB session), all released at once."""
    results, barrier = [None] * len(works), threading.Barrier(len(works))

    def run(index, work):
        with app.app_context():
            barrier.wait()
            try:
                results[index] = work()
            except Exception as error:  # noqa: BLE001 - the outcome is what we count
                results[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(works)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture
def wide_app(test_env, tmp_path, is_postgres):
    """An app whose pool lets 40 transactions run at once, so the database sees real contention."""
    require_postgres(is_postgres)
    from tests.conftest import make_app
    wide = make_app(test_env, tmp_path / "wide", SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 40, "max_overflow": 0,
                                                                             "pool_timeout": 60})
    yield wide
    with wide.app_context():
        db.engine.dispose()


def test_200_concurrent_holds_of_10_from_500_grant_exactly_50(wide_app, make):
    acme = make.tenant()
    fund(acme, 500)
    tenant_id = acme.tenant.id

    def hold_ten():
        with atomic():
            return ledger.hold(tenant_id, 10).id

    results = _race(wide_app, [hold_ten] * 200)
    granted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, ledger.InsufficientCredits)]
    assert len(granted) == 50 and len(refused) == 150, {type(r).__name__ for r in results}
    assert (account(acme).held, account(acme).available) == (500, 0)
    assert ledger.verify() == []


def test_settle_and_release_racing_on_one_hold_resolve_it_once(wide_app, make):
    acme = make.tenant()
    fund(acme, 1000)
    with atomic():
        holds = [ledger.hold(acme.tenant.id, 10).id for _ in range(20)]

    def settle(hold_id):
        with atomic():
            ledger.settle(hold_id, 7, TEST_ACTOR)
        return "settled"

    def release(hold_id):
        with atomic():
            return "released" if ledger.release(hold_id) else "lost"

    for hold_id in holds:
        outcomes = _race(wide_app, [lambda: settle(hold_id), lambda: release(hold_id)])
        outcomes = ["lost" if isinstance(o, ledger.HoldAlreadyResolved) else o for o in outcomes]
        assert sorted(outcomes) in (["lost", "settled"], ["lost", "released"]), outcomes
    assert account(acme).held == 0
    assert ledger.verify() == []


class LedgerMachine(RuleBasedStateMachine):
    """Random sequences of ledger operations on two tenants; the books must balance after each."""

    def __init__(self):
        super().__init__()
        self.tenant_ids = []
        self.balance = {}
        self.held = {}
        self.open_holds = {}  # hold id → (tenant id, amount)

    @initialize()
    def two_tenants(self):
        for _ in range(2):
            created = tenants.create_tenant(TEST_ACTOR, name="Machine")
            self.tenant_ids.append(created.tenant.id)
            self.balance[created.tenant.id] = 0
            self.held[created.tenant.id] = 0

    tenant = st.integers(0, 1)

    @rule(which=tenant, amount=st.integers(1, 500))
    def recharge(self, which, amount):
        tenant_id = self.tenant_ids[which]
        billing.recharge(tenant_id, amount, TEST_ACTOR)
        self.balance[tenant_id] += amount

    @rule(which=tenant, amount=st.integers(-300, 300).filter(bool))
    def adjust(self, which, amount):
        tenant_id = self.tenant_ids[which]
        available = self.balance[tenant_id] - self.held[tenant_id]
        try:
            billing.adjust(tenant_id, amount, "machine", TEST_ACTOR)
        except Exception as error:  # noqa: BLE001
            assert amount < 0 and -amount > available, error
            return
        assert amount > 0 or -amount <= available
        self.balance[tenant_id] += amount

    @rule(which=tenant, amount=st.integers(0, 200))
    def hold(self, which, amount):
        tenant_id = self.tenant_ids[which]
        available = self.balance[tenant_id] - self.held[tenant_id]
        try:
            with atomic():
                hold = ledger.hold(tenant_id, amount)
        except ledger.InsufficientCredits:
            assert amount > available
            return
        assert amount <= available
        self.held[tenant_id] += amount
        self.open_holds[hold.id] = (tenant_id, amount)

    @precondition(lambda self: self.open_holds)
    @rule(data=st.data())
    def settle(self, data):
        hold_id = data.draw(st.sampled_from(list(self.open_holds)))
        tenant_id, amount = self.open_holds.pop(hold_id)
        actual = data.draw(st.integers(0, amount))
        with atomic():
            ledger.settle(hold_id, actual, TEST_ACTOR)
        self.held[tenant_id] -= amount
        self.balance[tenant_id] -= actual

    @precondition(lambda self: self.open_holds)
    @rule(data=st.data(), expire=st.booleans())
    def release_or_expire(self, data, expire):
        hold_id = data.draw(st.sampled_from(list(self.open_holds)))
        tenant_id, amount = self.open_holds.pop(hold_id)
        with atomic():
            assert (ledger.expire if expire else ledger.release)(hold_id) is True
        self.held[tenant_id] -= amount

    @rule()
    def resolve_a_resolved_hold_again(self):
        resolved = db.session.scalar(sa.select(CreditHold.id).where(CreditHold.status != "HELD",
                                                                    CreditHold.tenant_id.in_(self.tenant_ids)).limit(1))
        if resolved is not None:
            with atomic():
                assert ledger.release(resolved) is False

    @invariant()
    def books_balance(self):
        for tenant_id in self.tenant_ids:
            account = ledger.account(tenant_id)
            assert (account.balance, account.held) == (self.balance[tenant_id], self.held[tenant_id])
            assert account.available >= 0
        assert ledger.verify() == []


def test_random_operation_sequences_keep_the_ledger_sound(app):
    # Every step is real database work, so a loaded machine is slow: that is not a failure.
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]))
