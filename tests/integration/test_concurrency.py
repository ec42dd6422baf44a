"""Races that only a real database with real concurrent transactions can show (PostgreSQL).

Each thread runs in its own app context, hence its own SQLAlchemy session and connection, as two
gunicorn threads would.
"""
from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from app.core.errors import Conflict
from app.extensions import db
from app.identity import users
from app.models import TenantDevice, TenantUser
from tests.conftest import PASSWORD, TEST_ACTOR, make_app, require, require_postgres


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


PER_ACCOUNT = 3
PER_IP = 5


@pytest.fixture(params=["database", "redis"])
def strict_app(request, app, test_env, tmp_path, is_postgres):
    """An app with low sign-in limits on the same database, counting in the database or in Redis."""
    require_postgres(is_postgres)
    settings = dict(LOGIN_FAILURES_PER_USER=PER_ACCOUNT, LOGIN_FAILURES_PER_IP=PER_IP,
                    LOGIN_FAILURE_WINDOW_SECONDS=600)
    prefix = f"waule-test-{uuid.uuid4().hex}"
    if request.param == "redis":
        require(bool(os.environ.get("TEST_REDIS_URL")), "needs Redis (set TEST_REDIS_URL)")
        settings |= dict(REDIS_URL=os.environ["TEST_REDIS_URL"], THROTTLE_PREFIX=prefix)
    strict = make_app(test_env, tmp_path / "strict", **settings)
    yield strict
    with strict.app_context():
        db.engine.dispose()
    if request.param == "redis":
        import redis
        connection = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
        for key in connection.scan_iter(f"*{prefix}*"):
            connection.delete(key)
        connection.close()


def _sign_in(strict_app, api_key: str, username: str, password: str, ip: str):
    return strict_app.test_client().post("/api/v1/auth/login", environ_base={"REMOTE_ADDR": ip}, json={
        "api_key": api_key, "username": username, "password": password, "device_id": "d1"})


def _codes(responses) -> list:
    return sorted(r.get_json()["error"]["code"] if r.status_code != 200 else "ok" for r in responses)


def test_parallel_guesses_from_one_address_never_pass_the_per_ip_limit(strict_app, make):
    """Twelve wrong passwords for twelve usernames from one address at once: exactly PER_IP are checked
    (401), the rest are refused unchecked (429)."""
    api_key = make.tenant().api_key_plaintext

    outcomes = _codes(_race(strict_app, 12, lambda i: _sign_in(strict_app, api_key, f"guess{i}", "wrong-password",
                                                                "203.0.113.50")))
    assert outcomes == ["invalid_credentials"] * PER_IP + ["too_many_attempts"] * (12 - PER_IP), outcomes


def test_parallel_guesses_at_one_account_never_pass_the_per_account_limit(strict_app, make):
    created = make.tenant()
    make.user(created, "alice")
    api_key = created.api_key_plaintext

    outcomes = _codes(_race(strict_app, 12, lambda i: _sign_in(strict_app, api_key, "alice", "wrong-password",
                                                                f"203.0.113.{60 + i}")))
    assert outcomes == ["invalid_credentials"] * PER_ACCOUNT + ["too_many_attempts"] * (12 - PER_ACCOUNT), outcomes


def test_parallel_successes_give_their_reservations_back(strict_app, make):
    """Right and wrong passwords from one address at once: only the wrong ones that were checked use up
    the address's allowance, so what is left afterwards is exactly PER_IP minus those."""
    created = make.tenant(require_device=False)
    for name in ("alice", "bob", "carol", "dave"):
        make.user(created, name)
    api_key, ip = created.api_key_plaintext, "203.0.113.80"

    def attempt(i):
        if i < 4:
            return _sign_in(strict_app, api_key, ("alice", "bob", "carol", "dave")[i], PASSWORD, ip)
        return _sign_in(strict_app, api_key, f"guess{i}", "wrong-password", ip)

    outcomes = _codes(_race(strict_app, 12, attempt))
    failures = outcomes.count("invalid_credentials")
    assert 1 <= failures <= PER_IP, outcomes
    assert set(outcomes) <= {"ok", "invalid_credentials", "too_many_attempts"}, outcomes
    for n in range(PER_IP - failures):
        assert _sign_in(strict_app, api_key, f"later{n}", "wrong-password", ip).status_code == 401, outcomes
    assert _sign_in(strict_app, api_key, "alice", PASSWORD, ip).status_code == 429
