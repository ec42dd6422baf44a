"""Sign-in throttling with REDIS_URL set: two app instances (two gunicorn workers, or two hosts) share
the failure counts, so an attacker cannot spread guesses across processes. Without Redis the database
holds them, with the same effect: test_throttle_database.py."""
from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import PASSWORD, assert_error, make_app, require

PER_ACCOUNT = 3
PER_IP = 5


@pytest.fixture
def redis_url() -> str:
    require(bool(os.environ.get("TEST_REDIS_URL")), "needs Redis (set TEST_REDIS_URL)")
    return os.environ["TEST_REDIS_URL"]


@pytest.fixture
def shared_prefix(redis_url):
    """A namespace of our own, so parallel or repeated runs never see each other's counts."""
    import redis

    prefix = f"waule-test-{uuid.uuid4().hex}"
    connection = redis.Redis.from_url(redis_url)
    yield prefix
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)
    connection.close()


@pytest.fixture
def two_apps(app, test_env, tmp_path, redis_url, shared_prefix):
    """Two independent apps on the same database and Redis (`app` empties the database afterwards)."""
    settings = dict(REDIS_URL=redis_url, THROTTLE_PREFIX=shared_prefix, LOGIN_FAILURES_PER_USER=PER_ACCOUNT,
                    LOGIN_FAILURES_PER_IP=PER_IP, LOGIN_FAILURE_WINDOW_SECONDS=600)
    return [make_app(test_env, tmp_path / f"instance{n}", **settings) for n in (1, 2)]


def _login(client, created, username: str, password: str, ip: str = "203.0.113.7"):
    return client.post("/api/v1/auth/login", environ_base={"REMOTE_ADDR": ip}, json={
        "api_key": created.api_key_plaintext, "username": username, "password": password, "device_id": "d1"})


def test_failures_through_one_app_throttle_the_account_on_the_other(two_apps, make):
    created = make.tenant()
    make.user(created, "alice")
    make.user(created, "bob")
    first, second = (app.test_client() for app in two_apps)

    for _ in range(PER_ACCOUNT - 1):
        assert_error(_login(first, created, "alice", "wrong-password"), 401, "invalid_credentials")
    # the last failure allowed lands on the other instance
    assert_error(_login(second, created, "alice", "wrong-password"), 401, "invalid_credentials")

    for client in (first, second):
        response = _login(client, created, "alice", PASSWORD)  # even the right password waits
        assert_error(response, 429, "too_many_attempts")
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 601
    # the limit is per account: a colleague on the same tenant is not locked out
    assert _login(second, created, "bob", PASSWORD).status_code == 200


def test_per_ip_failures_are_counted_across_apps(two_apps, make):
    created = make.tenant()
    make.user(created, "carol")
    apps = [app.test_client() for app in two_apps]
    for n in range(PER_IP):  # a different made-up user each time: only the IP ties them together
        assert_error(_login(apps[n % 2], created, f"guess{n}", "x", ip="198.51.100.9"), 401)
    response = _login(apps[0], created, "carol", PASSWORD, ip="198.51.100.9")
    assert_error(response, 429, "too_many_attempts")
    assert int(response.headers["Retry-After"]) >= 1
    # another address is unaffected
    assert _login(apps[1], created, "carol", PASSWORD, ip="198.51.100.10").status_code == 200


def test_a_successful_sign_in_on_one_app_clears_the_account_count_on_the_other(two_apps, make):
    created = make.tenant()
    make.user(created, "dave")
    first, second = (app.test_client() for app in two_apps)
    for _ in range(PER_ACCOUNT - 1):
        assert_error(_login(first, created, "dave", "wrong"), 401)
    assert _login(second, created, "dave", PASSWORD).status_code == 200
    for _ in range(PER_ACCOUNT - 1):
        assert_error(_login(first, created, "dave", "wrong"), 401)
    assert _login(second, created, "dave", PASSWORD).status_code == 200


def test_an_unreachable_redis_fails_sign_in_closed_with_503(app, test_env, tmp_path, make, caplog):
    """Guesses must not become unlimited because Redis is down; the client is told to retry."""
    down = make_app(test_env, tmp_path / "down", REDIS_URL="redis://127.0.0.1:1/0").test_client()
    created = make.tenant()
    make.user(created, "frank")
    response = _login(down, created, "frank", PASSWORD)
    error = assert_error(response, 503, "service_unavailable")
    assert "127.0.0.1" not in error["message"]
    assert "throttle store unreachable" in caplog.text
