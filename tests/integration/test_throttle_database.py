"""Sign-in throttling without Redis: the failure counts live in the database, so two app instances (two
gunicorn workers, or two hosts on one database) share them as they would through Redis."""
from __future__ import annotations

import pytest

from app.extensions import db
from tests.admin.conftest import Dashboard, text_of
from tests.conftest import PASSWORD, assert_error, make_app

PER_ACCOUNT = 3
PER_IP = 5


@pytest.fixture
def two_apps(app, test_env, tmp_path):
    """Two independent apps on the same database (`app` empties it afterwards)."""
    settings = dict(REDIS_URL="", LOGIN_FAILURES_PER_USER=PER_ACCOUNT, LOGIN_FAILURES_PER_IP=PER_IP,
                    LOGIN_FAILURE_WINDOW_SECONDS=600)
    apps = [make_app(test_env, tmp_path / f"instance{n}", **settings) for n in (1, 2)]
    yield apps
    for each in apps:
        with each.app_context():
            db.engine.dispose()


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
    assert_error(_login(second, created, "alice", "wrong-password"), 401, "invalid_credentials")

    for client in (first, second):
        response = _login(client, created, "alice", PASSWORD)  # even the right password waits
        assert_error(response, 429, "too_many_attempts")
        assert 1 <= int(response.headers["Retry-After"]) <= 601
    assert _login(second, created, "bob", PASSWORD).status_code == 200


def test_per_ip_failures_are_counted_across_apps(two_apps, make):
    created = make.tenant()
    make.user(created, "carol")
    apps = [app.test_client() for app in two_apps]
    for n in range(PER_IP):
        assert_error(_login(apps[n % 2], created, f"guess{n}", "x", ip="198.51.100.9"), 401)
    response = _login(apps[0], created, "carol", PASSWORD, ip="198.51.100.9")
    assert_error(response, 429, "too_many_attempts")
    assert int(response.headers["Retry-After"]) >= 1
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


def test_only_failures_use_up_an_address_allowance(two_apps, make):
    """Each sign-in reserves a place before its password is checked; a right password gives it back."""
    created = make.tenant(require_device=False)
    make.user(created, "erin")
    first, second = (app.test_client() for app in two_apps)
    for n in range(PER_IP - 1):
        assert_error(_login(first, created, f"guess{n}", "wrong", ip="198.51.100.20"), 401)
    for _ in range(PER_IP + 1):
        assert _login(second, created, "erin", PASSWORD, ip="198.51.100.20").status_code == 200
    assert_error(_login(first, created, "last-guess", "wrong", ip="198.51.100.20"), 401)
    assert_error(_login(second, created, "erin", PASSWORD, ip="198.51.100.20"), 429, "too_many_attempts")


def test_the_dashboard_lockout_holds_on_every_worker(two_apps, make):
    make.platform_admin("root")
    first, second = (Dashboard(app.test_client()) for app in two_apps)
    for n in range(PER_ACCOUNT):
        assert (first, second)[n % 2].sign_in("root", "wrong-password").status_code == 401
    for dashboard in (first, second):
        response = dashboard.sign_in("root", PASSWORD)
        assert response.status_code == 429
        assert f"try again in {response.headers['Retry-After']} s." in text_of(response)
