"""The per-process caches of keys, tenants' access, models and prices, and gateways (app/core/cache.py):
a warm cache reads none of them; a change is seen at once by the process that made it; on PostgreSQL
other processes hear of it through LISTEN/NOTIFY, and a listener that reconnects flushes everything.
Last, the bound the hot-path issue sets: two gunicorn servers, a key revoked (and a tenant deactivated)
through the dashboard of one is refused by the other within 1 second."""
from __future__ import annotations

import os
import re
import subprocess
import time
from contextlib import contextmanager

import psycopg2
import pytest
import requests
import sqlalchemy as sa

from app.billing import ledger
from app.catalog import service as catalog
from app.core import cache
from app.core.transaction import atomic
from app.extensions import db
from app.gateway import client as gateway
from app.gateway import registry
from app.identity import api_keys, tenants, users
from app.webhooks import endpoints
from app.webhooks.models import WebhookDelivery
from config import generate_secrets, load_config
from tests.conftest import CHECKOUT, PASSWORD, TEST_ACTOR, assert_error, key_headers, require_postgres
from tests.integration.conftest import wait_for
from tests.sandbox.conftest import free_port

CHAT = "gemini-2.5-pro"
WATCHED_TABLES = re.compile(r"\bFROM (api_keys|ai_models|price_rules|gateways)\b")


@contextmanager
def statements():
    """Every statement this process's engine sends while the block runs."""
    seen: list[str] = []

    def record(_connection, _cursor, statement, _parameters, _context, _executemany):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def chat(client, created):
    return client.post("/api/v1/chat/completions", headers=key_headers(created),
                       json={"model": CHAT, "messages": [{"role": "user", "content": "hello"}]})


def test_a_warm_cache_answers_without_a_statement(app, make, is_postgres):
    if is_postgres:
        _listener()  # connected: its first connect flushes whatever was cached before it
    created = make.funded_tenant()
    api_keys.find_usable_key(created.api_key_plaintext)
    catalog.model_for_tenant(created.tenant, CHAT)
    gateway.active_targets()
    with statements() as seen:
        key = api_keys.find_usable_key(created.api_key_plaintext)
        model, rule = catalog.model_for_tenant(key.tenant, CHAT)
        gateway.active_targets()
    assert seen == []
    assert key.tenant_id == created.tenant.id and key.scopes == ("generate",)
    assert model.model_id == CHAT and rule.model_id == model.id


def test_a_paid_chat_on_a_warm_cache_reads_no_key_model_or_gateway(client, make, is_postgres):
    if is_postgres:
        _listener()
    created = make.funded_tenant()
    assert chat(client, created).status_code == 200
    with statements() as seen:
        assert chat(client, created).status_code == 200
    assert not [statement for statement in seen if WATCHED_TABLES.search(statement)]
    # The tenant's row is not loaded whole: what changes with each request (credits, storage) is read fresh.
    assert not [statement for statement in seen if "tenants.enabled_models" in statement]


def test_a_members_session_is_checked_from_the_cache_and_refused_at_once_once_it_ends(client, make, is_postgres):
    if is_postgres:
        _listener()
    created = make.funded_tenant()
    member = make.user(created)
    headers = make.auth(created, member)
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    with statements() as seen:
        assert client.get("/api/v1/models", headers=headers).status_code == 200
    assert not [statement for statement in seen if "user_sessions" in statement]
    users.update_user(created.tenant.id, member.id, TEST_ACTOR, {"is_active": False})
    assert_error(client.get("/api/v1/models", headers=headers), 401, "session_ended")

    other = make.user(created)
    headers = make.auth(created, other)
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers, json={}).status_code == 200
    assert_error(client.get("/api/v1/models", headers=headers), 401, "session_ended")


def test_a_revoked_key_is_refused_at_once_by_the_process_that_revoked_it(client, make):
    created = make.funded_tenant()
    assert client.get("/api/v1/models", headers=key_headers(created)).status_code == 200
    api_keys.revoke_key(created.tenant.id, created.api_key.id, TEST_ACTOR)
    assert_error(client.get("/api/v1/models", headers=key_headers(created)), 401, "invalid_api_key")


def test_a_deactivated_tenant_is_refused_at_once(client, make):
    created = make.funded_tenant()
    assert chat(client, created).status_code == 200
    tenants.update_tenant(created.tenant.id, TEST_ACTOR, {"is_active": False})
    assert_error(chat(client, created), 401, "invalid_api_key")


def test_a_model_switched_off_or_out_of_the_tenants_list_is_refused_at_once(client, make):
    created = make.funded_tenant()
    assert chat(client, created).status_code == 200
    tenants.update_tenant(created.tenant.id, TEST_ACTOR, {"enabled_models": ["gpt-image-1"]})
    assert_error(chat(client, created), 403, "model_not_enabled")
    tenants.update_tenant(created.tenant.id, TEST_ACTOR, {"enabled_models": []})
    assert chat(client, created).status_code == 200
    model, _rule = catalog.priced_model(CHAT)
    catalog.update_model(model.id, TEST_ACTOR, is_active=False)
    assert_error(chat(client, created), 403, "model_not_enabled")


def test_storage_fees_left_owed_by_a_bill_stop_the_next_generation(client, make):
    created = make.funded_tenant(credits=100)
    assert chat(client, created).status_code == 200
    available = ledger.account(created.tenant.id).available
    with atomic():
        ledger.charge_storage_fee(created.tenant.id, available + 10, TEST_ACTOR, description="Storage",
                                  reference="storage:test")
    assert_error(chat(client, created), 402, "storage_fees_owed")


def test_an_endpoint_added_after_a_generation_gets_the_next_ones_event(client, make, receiver):
    created = make.funded_tenant()
    assert chat(client, created).status_code == 200  # "nobody listens" is cached now
    endpoints.create_endpoint(created.tenant.id, TEST_ACTOR, url=f"{receiver.url}/hooks",
                              events=["generation.completed"])
    assert chat(client, created).status_code == 200
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)
                             .where(WebhookDelivery.tenant_id == created.tenant.id)) == 1


def test_a_price_change_is_charged_from_the_next_request(client, make):
    created = make.funded_tenant(credits=100_000)
    body = {"model": CHAT, "messages": [{"role": "user", "content": "hello"}]}
    before = client.post("/api/v1/billing/estimate", headers=key_headers(created), json=body).get_json()
    model, rule = catalog.priced_model(CHAT)
    doubled = {name: value * 2 if isinstance(value, int) else value for name, value in rule.prices.items()}
    catalog.update_model(model.id, TEST_ACTOR, prices=doubled)
    after = client.post("/api/v1/billing/estimate", headers=key_headers(created), json=body).get_json()
    assert after["credits"] > before["credits"]


def test_a_key_past_its_expiry_is_refused_though_cached(app, client, make):
    created = make.funded_tenant()
    app.config["CACHE_TTL_SECONDS"] = 300
    _key, raw = api_keys.create_key(created.tenant.id, TEST_ACTOR, name="short", expires_at=_soon(1.0))
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/models", headers=headers).status_code == 200  # cached now, with its expiry
    time.sleep(1.1)
    assert_error(client.get("/api/v1/models", headers=headers), 401, "invalid_api_key")


def _soon(seconds: float):
    from datetime import timedelta

    from app.core.db import utcnow
    return utcnow() + timedelta(seconds=seconds)


def test_a_gateway_added_here_is_called_from_the_next_request(app, make):
    gateway.active_targets()
    registry.create_gateway(TEST_ACTOR, name="second", base_url="http://sandbox.local", secret="s" * 16)
    assert [target.name for target in gateway.active_targets()] == ["second"]


def test_a_change_rolled_back_flushes_nothing(app, make, is_postgres):
    if is_postgres:
        _listener()
    created = make.funded_tenant()
    api_keys.find_usable_key(created.api_key_plaintext)
    with pytest.raises(RuntimeError):
        with atomic():
            tenants.update_tenant(created.tenant.id, TEST_ACTOR, {"is_active": False})
            raise RuntimeError("the request failed after the change")
    with statements() as seen:
        assert api_keys.find_usable_key(created.api_key_plaintext).tenant.is_active
    assert seen == []


def test_a_models_gateway_set_here_is_kept_and_used_from_the_next_request(app, make):
    make.funded_tenant()
    model, _rule = catalog.priced_model(CHAT)
    assert model.gateway_id is None
    gateway_id = registry.create_gateway(TEST_ACTOR, name="second", base_url="http://sandbox.local",
                                         secret="s" * 16).id
    registry.set_model_gateway(model.id, gateway_id, TEST_ACTOR)
    db.session.remove()  # what the request wrote is committed, not only in its session
    assert catalog.priced_model(CHAT)[0].gateway_id == gateway_id


def test_the_embedded_default_keeps_entries_at_most_a_second():
    env = {"WAULE_ENV": "test", **generate_secrets()}
    sqlite = {**env, "DATABASE_URL": "sqlite:////tmp/waule-cache-config.db"}
    assert load_config(env=sqlite, instance_path="/tmp")["CACHE_TTL_SECONDS"] == 1
    with pytest.raises(Exception, match="CACHE_TTL_SECONDS must be between 0 and 1"):
        load_config(env={**sqlite, "CACHE_TTL_SECONDS": "5"}, instance_path="/tmp")
    postgres = {**env, "DATABASE_URL": "postgresql://u@127.0.0.1/waule", "CACHE_TTL_SECONDS": "30"}
    assert load_config(env=postgres, instance_path="/tmp")["CACHE_TTL_SECONDS"] == 30


def _listener():
    group = cache.caches()
    group.listen()
    listener = cache.listener_for(group.database_url)
    assert listener.connected.wait(10), "the cache listener did not connect"
    return listener


def _other_process(sql: str, notify: bool) -> None:
    """A connection of nobody in this process, as another server's would be."""
    url = sa.engine.make_url(db.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:  # one transaction: the change and its notification
            cursor.execute(sql)
            if notify:
                cursor.execute("NOTIFY waule_cache, 'api_keys'")
    finally:
        connection.close()


def test_a_change_another_process_notifies_is_seen_here(app, client, make, is_postgres):
    require_postgres(is_postgres)
    app.config["CACHE_TTL_SECONDS"] = 300  # only the notification can explain what follows
    _listener()
    created = make.funded_tenant()
    assert client.get("/api/v1/models", headers=key_headers(created)).status_code == 200
    _other_process(f"UPDATE api_keys SET revoked_at = now() WHERE id = '{created.api_key.id}'", notify=True)
    refused = wait_for(lambda: client.get("/api/v1/models", headers=key_headers(created)).status_code == 401, 10, 0.02)
    assert refused


def test_a_listener_that_reconnects_flushes_what_it_may_have_missed(app, client, make, is_postgres):
    require_postgres(is_postgres)
    app.config["CACHE_TTL_SECONDS"] = 300
    listener = _listener()
    created = make.funded_tenant()
    assert client.get("/api/v1/models", headers=key_headers(created)).status_code == 200
    _other_process(f"UPDATE api_keys SET revoked_at = now() WHERE id = '{created.api_key.id}'", notify=False)
    assert client.get("/api/v1/models", headers=key_headers(created)).status_code == 200  # nobody was told
    connects = listener.connects
    _other_process(f"SELECT pg_terminate_backend({listener.backend_pid})", notify=False)
    assert wait_for(lambda: listener.connects > connects, 15, 0.05), "the listener did not reconnect"
    assert_error(client.get("/api/v1/models", headers=key_headers(created)), 401, "invalid_api_key")


class Server:
    """`gunicorn wsgi:app` with one worker, on the test's database, as production runs it."""

    def __init__(self, test_env: dict, tmp_path, name: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("WAULE", "DATABASE", "REDIS", "SANDBOX", "TEST_"))}
        env.update({**test_env, "WAULE_INSTANCE_PATH": str(tmp_path / name), "WAULE_BIND": f"127.0.0.1:{self.port}",
                    "WEB_CONCURRENCY": "1", "WAULE_THREADS": "4", "PYTHONUNBUFFERED": "1"})
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([str(CHECKOUT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py",
                                         "wsgi:app"], cwd=CHECKOUT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_until_up(self) -> None:
        def up():
            try:
                return requests.get(f"{self.url}/healthz", timeout=1).ok
            except requests.RequestException:
                return False
        if not wait_for(up, 60, 0.2):
            pytest.fail(f"gunicorn did not come up:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def two_servers(app, test_env, tmp_path, is_postgres):
    require_postgres(is_postgres)
    if not (CHECKOUT / ".venv" / "bin" / "gunicorn").exists():
        pytest.skip("needs the project's .venv with gunicorn")
    servers = [Server(test_env, tmp_path, "a"), Server(test_env, tmp_path, "b")]
    try:
        for server in servers:
            server.wait_until_up()
        yield servers
    finally:
        for server in servers:
            server.stop()


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class Browser:
    """The dashboard as a browser uses it: a cookie session, the CSRF token from the page, htmx headers."""

    def __init__(self, base: str):
        self.base, self.session, self.csrf_token = base, requests.Session(), None

    def get(self, path: str) -> requests.Response:
        response = self.session.get(self.base + path, timeout=10)
        found = CSRF_META.search(response.text)
        if found:
            self.csrf_token = found.group(1)
        return response

    def sign_in(self, username: str) -> None:
        self.get("/admin/login")
        response = self.session.post(self.base + "/admin/login", timeout=10, allow_redirects=False,
                                     data={"username": username, "password": PASSWORD, "csrf_token": self.csrf_token})
        assert response.status_code == 302, response.text[:500]
        self.get("/admin/")

    def htmx_post(self, path: str, data: dict | None = None) -> requests.Response:
        return self.session.post(self.base + path, data=data or {}, timeout=10,
                                 headers={"HX-Request": "true", "X-CSRFToken": self.csrf_token})


def _refused_within(url: str, headers: dict, since: float) -> float:
    """Seconds from `since` until `url` answers 401 to `headers` (polled as fast as it answers)."""
    deadline = since + 10
    while time.monotonic() < deadline:
        if requests.get(url, headers=headers, timeout=5).status_code == 401:
            return time.monotonic() - since
    return float("inf")


def test_a_key_revoked_in_one_servers_dashboard_is_refused_by_another_within_a_second(two_servers, make):
    server_a, server_b = two_servers
    created = make.funded_tenant()
    make.platform_admin("root")
    headers = key_headers(created)
    # B has the key, its tenant and the model cached: it has served a paid chat with it.
    assert requests.post(f"{server_b.url}/api/v1/chat/completions", headers=headers, timeout=30,
                         json={"model": CHAT, "messages": [{"role": "user", "content": "hello"}]}).status_code == 200
    assert requests.get(f"{server_b.url}/api/v1/models", headers=headers, timeout=10).status_code == 200

    browser = Browser(server_a.url)
    browser.sign_in("root")
    revoked = browser.htmx_post(f"/admin/tenants/{created.tenant.id}/keys/{created.api_key.id}/revoke")
    answered = time.monotonic()
    assert revoked.status_code == 200 and "no longer authenticates" in revoked.text
    elapsed = _refused_within(f"{server_b.url}/api/v1/models", headers, answered)
    assert elapsed < 1.0, f"still served {elapsed:.3f} s after the dashboard answered"


def test_a_tenant_deactivated_in_one_servers_dashboard_is_refused_by_another_within_a_second(two_servers, make):
    server_a, server_b = two_servers
    created = make.funded_tenant()
    make.platform_admin("root")
    headers = key_headers(created)
    assert requests.get(f"{server_b.url}/api/v1/models", headers=headers, timeout=10).status_code == 200

    browser = Browser(server_a.url)
    browser.sign_in("root")
    deactivated = browser.htmx_post(f"/admin/tenants/{created.tenant.id}/active")  # the box unticked
    answered = time.monotonic()
    assert deactivated.status_code == 200 and "Tenant deactivated." in deactivated.text
    elapsed = _refused_within(f"{server_b.url}/api/v1/models", headers, answered)
    assert elapsed < 1.0, f"still served {elapsed:.3f} s after the dashboard answered"
