"""Races that only a real database with real concurrent transactions can show (PostgreSQL).

Each thread runs in its own app context, hence its own SQLAlchemy session and connection, as two
gunicorn threads would.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from app.core.errors import Conflict
from app.extensions import db
from app.identity import users
from app.models import TenantDevice, TenantUser
from tests.conftest import PASSWORD, TEST_ACTOR, require_postgres


def _race(app, count: int, work):
    """Run work(i) in `count` threads released together; return their results in order."""
    barrier = threading.Barrier(count)

    def run(i):
        with app.app_context():
            barrier.wait(timeout=30)
            try:
                return work(i)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_member_creation_never_exceeds_the_seats(app, make, is_postgres):
    require_postgres(is_postgres)
    created = make.tenant(max_seats=5)
    tenant_id = created.tenant.id

    def add(i):
        try:
            users.create_user(tenant_id, TEST_ACTOR, username=f"member{i:02d}", password=PASSWORD)
            return "created"
        except Conflict as error:
            return error.code

    outcomes = _race(app, 20, add)
    assert outcomes.count("created") == 5, outcomes
    assert outcomes.count("seat_limit_reached") == 15, outcomes
    active = db.session.scalar(sa.select(sa.func.count()).select_from(TenantUser).where(
        TenantUser.tenant_id == tenant_id, TenantUser.role == "member", TenantUser.is_active.is_(True)))
    assert active == 5


def test_concurrent_first_logins_from_two_devices_bind_exactly_one(app, make, is_postgres):
    require_postgres(is_postgres)
    for attempt in range(5):  # several rounds, so the race is really exercised
        created = make.tenant()
        alice = make.user(created, f"alice{attempt}")
        # Plain values: the ORM objects belong to this thread's session and must not load in others.
        api_key, username = created.api_key_plaintext, alice.username

        def log_in(i):
            return app.test_client().post("/api/v1/auth/login", json={
                "api_key": api_key, "username": username, "password": PASSWORD, "device_id": f"device-{i}"})

        responses = _race(app, 2, log_in)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 403], [r.get_json() for r in responses]
        refused = next(r for r in responses if r.status_code == 403)
        assert refused.get_json()["error"]["code"] == "device_not_bound"
        winner = next(r for r in responses if r.status_code == 200)
        bound = db.session.scalars(sa.select(TenantDevice.fingerprint).where(TenantDevice.user_id == alice.id)).all()
        assert len(bound) == 1
        assert winner.get_json()["user"]["username"] == username
        # The winner's device is the bound one.
        assert app.test_client().post("/api/v1/auth/login", json={
            "api_key": api_key, "username": username, "password": PASSWORD, "device_id": bound[0]}).status_code == 200


def test_concurrent_refreshes_with_one_token_let_at_most_one_through(app, make, is_postgres):
    require_postgres(is_postgres)
    created = make.tenant()
    alice = make.user(created, "alice")
    for _ in range(5):
        tokens = make.login(created, alice)

        def refresh(_i):
            return app.test_client().post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

        responses = _race(app, 2, refresh)
        succeeded = [r for r in responses if r.status_code == 200]
        assert len(succeeded) <= 1, [r.get_json() for r in responses]
        for response in responses:
            if response.status_code != 200:
                assert response.status_code == 401 and response.get_json()["error"]["code"] in (
                    "refresh_token_reused", "invalid_refresh_token")
        # A reuse was detected, so the whole session is over: nothing issued in the race still works.
        for response in succeeded:
            new = response.get_json()
            assert app.test_client().post("/api/v1/auth/refresh",
                                          json={"refresh_token": new["refresh_token"]}).status_code == 401
            me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {new['access_token']}"})
            assert me.status_code == 401
