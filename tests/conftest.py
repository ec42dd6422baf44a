"""Shared fixtures: a real database (PostgreSQL when TEST_DATABASE_URL is set, else a SQLite file),
migrated once per run with the project's own migrations, a fresh app per test, and factories.

Tests that need PostgreSQL, Redis or Chromium skip with a one-line reason when those are missing,
except under CI=true, where a missing service is a failure. CI runs the suite twice: on SQLite (the
embedded default, TEST_DATABASE=sqlite, where PostgreSQL-only tests skip) and on PostgreSQL.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
import threading
import uuid

import pytest
import sqlalchemy as sa
from flask.globals import app_ctx
from flask.testing import FlaskClient
from hypothesis.configuration import set_hypothesis_home_dir
from werkzeug.serving import make_server

from app import create_app
from app.billing import accounts as billing
from app.catalog import service as catalog
from app.extensions import db
from app.identity import admins, tenants, users
from app.identity.audit import Actor
from config import generate_secrets, load_config, normalize_database_url

ON_CI = os.environ.get("CI", "").lower() == "true"
CHECKOUT = Path(__file__).resolve().parent.parent
TEST_ACTOR = Actor(kind="system", name="tests")
PASSWORD = "correct-horse-battery"


def _checkout_state() -> dict[str, float]:
    """What tests could leave in the checkout: the instance folder and tool caches beside the code.
    A `make run` beside the tests writes its database and stored objects there: those are not ours."""
    found = {}
    for name in ("instance", ".hypothesis", "test-artifacts"):
        for path in (CHECKOUT / name).rglob("*"):
            relative = path.relative_to(CHECKOUT)
            if ".db" in path.name or relative.parts[:2] in (("instance", "storage"), ("instance", "jobs")):
                continue
            found[str(relative)] = path.stat().st_mtime if path.is_file() else 0.0
    return found


def pytest_sessionstart(session):
    session.config._checkout_before = _checkout_state()


def pytest_sessionfinish(session, exitstatus):
    """Tests write only into their own temporary folders: anything they created or changed in the
    checkout (a demo credentials file, sandbox files, an example database) fails the run."""
    before = getattr(session.config, "_checkout_before", None)
    if before is None or getattr(session.config, "workerinput", None) is not None:
        return
    after = _checkout_state()
    touched = sorted(path for path in after if before.get(path) != after[path])
    if touched:
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(
            f"Tests wrote into the checkout (they must use their temporary folders): {', '.join(touched[:10])}",
            red=True)
        session.exitstatus = 1


def require(condition: bool, reason: str) -> None:
    """Skip with `reason` when a service is missing; under CI a missing service fails the test."""
    if condition:
        return
    if ON_CI:
        pytest.fail(f"{reason} (CI=true: required, not skipped)")
    pytest.skip(reason)


def require_postgres(is_postgres: bool) -> None:
    """Concurrency and crash tests need PostgreSQL. A run on SQLite on purpose (TEST_DATABASE=sqlite,
    as CI's embedded-default pass) skips them even under CI; its PostgreSQL pass runs them."""
    if not is_postgres and os.environ.get("TEST_DATABASE", "").lower() == "sqlite":
        pytest.skip("PostgreSQL only; this run is on SQLite (TEST_DATABASE=sqlite)")
    require(is_postgres, "needs PostgreSQL (set TEST_DATABASE_URL)")


def _create_postgres_database(server_url: str) -> tuple[str, callable]:
    server_url = normalize_database_url(server_url)
    name = f"waule_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()

    return url, drop


@pytest.fixture(scope="session", autouse=True)
def hypothesis_home(tmp_path_factory):
    """Hypothesis keeps its example database and caches in this run's temporary folder, not in the checkout."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    server_url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if server_url:
        url, drop = _create_postgres_database(server_url)
        yield url
        drop()
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'waule-test.db'}"


@pytest.fixture(scope="session")
def test_env(database_url, tmp_path_factory) -> dict:
    return {
        **generate_secrets(),
        "WAULE_ENV": "test",
        "DATABASE_URL": database_url,
        "BCRYPT_ROUNDS": "4",
        "KEY_USAGE_FLUSH_SECONDS": "0",
        "REDIS_URL": "",
        # Live-mode calls go to the in-process sandbox too (http://sandbox.local is served by an adapter).
        "WAULEAPI_URL": "http://sandbox.local",
        "WAULEAPI_SECRET": "test-gateway-secret",
        "SANDBOX_SECRET": "test-gateway-secret",
        "SANDBOX_URL": "",
        "SANDBOX_TIMEOUT_CAP": "3",
        # Jobs run where they are enqueued; tests of the worker start a real one on a queue of their own.
        "JOBS_QUEUE": "immediate",
        "MIDJOURNEY_POLL_SECONDS": "1",
    }


def make_app(test_env: dict, instance_path, **overrides):
    config = load_config(env=test_env, instance_path=instance_path)
    config.update(overrides)
    config["SKIP_ENV_CONFIG"] = True
    return create_app(config)


@pytest.fixture(scope="session")
def migrated(test_env, tmp_path_factory):
    """Apply the real migrations once per run: the schema under test is the one we ship."""
    from flask_migrate import upgrade

    from app.cli import migrations
    app = make_app(test_env, tmp_path_factory.mktemp("instance"))
    migrations.bind(app)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return True


def _empty_all_tables() -> None:
    tables = [t.name for t in db.metadata.sorted_tables]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    else:
        for name in reversed(tables):
            db.session.execute(sa.text(f'DELETE FROM "{name}"'))
    db.session.commit()


@pytest.fixture
def app(migrated, test_env, tmp_path):
    app = make_app(test_env, tmp_path / "instance")
    with app.app_context():
        yield app
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()


@pytest.fixture
def live_server(app):
    """The per-test app (same database as the test) served on a real port."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


class SeparateRequestsClient(FlaskClient):
    """The `app` fixture keeps one app context pushed for the whole test, and Flask reuses it for every
    test-client request: `g` (where Flask-Login and Flask-WTF cache per-request state) and the session's
    identity map would carry over from one request to the next. Give each request a fresh `g` and make
    the session re-read rows, as separate requests in production do."""

    def open(self, *args, **kwargs):
        context = app_ctx._get_current_object()
        context.g = self.application.app_ctx_globals_class()
        db.session.expire_all()
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = SeparateRequestsClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def is_postgres(app) -> bool:
    return db.engine.dialect.name == "postgresql"


class Factory:
    """Builds rows through the real services, so tests start from states the app can reach."""

    def __init__(self, client):
        self.client = client
        self._n = 0

    def _next(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def tenant(self, name: str | None = None, **fields) -> tenants.CreatedTenant:
        return tenants.create_tenant(TEST_ACTOR, name=name or self._next("Tenant "), **fields)

    def funded_tenant(self, name: str | None = None, credits: int = 1000) -> tenants.CreatedTenant:
        """A tenant ready to generate: the model catalog seeded and `credits` recharged."""
        catalog.seed_catalog(TEST_ACTOR)
        created = self.tenant(name)
        billing.recharge(created.tenant.id, credits, TEST_ACTOR)
        return created

    def user(self, created: tenants.CreatedTenant, username: str | None = None, *, role: str = "member",
             password: str = PASSWORD, **fields):
        return users.create_user(created.tenant.id, TEST_ACTOR, username=username or self._next("user"),
                                 password=password, role=role, **fields)

    def login(self, created: tenants.CreatedTenant, user, *, password: str = PASSWORD,
              device_id: str | None = "device-1", api_key: str | None = None) -> dict:
        """Log in over HTTP; returns the token response body."""
        response = self.client.post("/api/v1/auth/login", json={
            "api_key": api_key or created.api_key_plaintext, "username": user.username, "password": password,
            "device_id": device_id})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def auth(self, created: tenants.CreatedTenant, user, **kwargs) -> dict:
        """Authorization headers for a logged-in user."""
        return {"Authorization": f"Bearer {self.login(created, user, **kwargs)['access_token']}"}

    def platform_admin(self, username: str | None = None, password: str = PASSWORD):
        return admins.create_admin(TEST_ACTOR, username=username or self._next("admin"), password=password)

    def admin_token_headers(self, admin=None) -> dict:
        admin = admin or self.platform_admin()
        _token, raw = admins.issue_token(admin, TEST_ACTOR)
        return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def make(client) -> Factory:
    return Factory(client)


def key_headers(created: tenants.CreatedTenant) -> dict:
    return {"Authorization": f"Bearer {created.api_key_plaintext}"}


def assert_error(response, status: int, code: str | None = None):
    """The API's error envelope, with the status (and code) a client would branch on."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.is_json, response.get_data(as_text=True)[:200]
    error = response.get_json()["error"]
    assert error["message"] and error["type"]
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.fixture
def receiver(app):
    """A tenant's app on 127.0.0.1, its origin (and no other port) allowlisted for webhook delivery."""
    from tests.receiver import Receiver
    with Receiver() as running:
        app.config["FETCH_ALLOWLIST"] = (f"http://127.0.0.1:{running.port}",)
        yield running
