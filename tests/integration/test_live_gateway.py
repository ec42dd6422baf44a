"""The gateway client against real sandbox processes over real sockets: read timeouts, failover on a
gateway that cannot be reached, no retry of an answer, a wrong secret, and downloading results from
the gateway's own (loopback) host because it is configured.

Two `python -m sandbox` processes play two waule-api instances. The second logs every request it
serves, so "it received nothing" is read from its own log, not inferred from our counters.
"""
from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
import uuid

import pytest
import requests
import sqlalchemy as sa

from app.billing import ledger
from app.core.crypto import encrypt
from app.extensions import db
from app.gateway import health, registry
from app.models import CreditHold, Gateway, GatewayCircuit, Generation, StoredFile
from app.storage import service as storage
from tests.conftest import TEST_ACTOR, _empty_all_tables, assert_error, key_headers, make_app
from tests.sandbox.conftest import LiveSandbox, free_port

SECRET = "live-gateway-secret"
IMAGE = "doubao-seedream-4-0-250828"   # PER_IMAGE: 20 credits per image
CHAT = "gemini-2.5-pro"
READ_TIMEOUT = 2  # seconds, for every kind a test calls


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The default gateway (WAULEAPI_URL). Holds [sandbox:timeout] for 10 s, past any read timeout."""
    server = LiveSandbox(tmp_path_factory.mktemp("first"), {"SANDBOX_SECRET": SECRET}, "--timeout-cap", "10",
                         "--quiet")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def second(tmp_path_factory):
    """Another instance, not quiet: its log has a line per request it served."""
    server = LiveSandbox(tmp_path_factory.mktemp("second"), {"SANDBOX_SECRET": SECRET}, "--timeout-cap", "10")
    yield server
    server.stop()


def served(sandbox: LiveSandbox) -> int:
    """Generation calls the sandbox process has answered (one log line each)."""
    return len(re.findall(r'"POST /v1/', sandbox.log()))


@pytest.fixture
def app(migrated, test_env, tmp_path, first):
    """The platform with the real sandbox process as its default gateway and short read timeouts."""
    app = make_app(test_env, tmp_path / "instance", WAULEAPI_URL=first.url, WAULEAPI_SECRET=SECRET,
                   WAULEAPI_TIMEOUTS={"image": READ_TIMEOUT, "audio": READ_TIMEOUT, "chat": READ_TIMEOUT,
                                      "video": 1200, "midjourney": READ_TIMEOUT})
    with app.app_context():
        yield app
        health.flush_health(force=True)  # nothing buffered for this test's rows leaks into the next test
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


def add_gateway(name: str, base_url: str, *, priority: int, secret: str = SECRET) -> Gateway:
    row = Gateway(name=name, base_url=base_url, secret_encrypted=encrypt(secret, context="gateway.secret"),
                  priority=priority)
    db.session.add(row)
    db.session.commit()
    return row


def image(client, created, prompt: str):
    return client.post("/api/v1/images/generations", headers=key_headers(created),
                       json={"model": IMAGE, "prompt": prompt})


def assert_nothing_charged(created, code: str) -> Generation:
    """The failure a tenant must be able to rely on: no credits moved, the hold released, the ledger sound."""
    account = ledger.account(created.tenant.id)
    assert (account.balance, account.held) == (1000, 0)
    generation = db.session.scalars(sa.select(Generation).order_by(Generation.created_at.desc())).first()
    assert generation.status == "FAILED" and generation.error_code == code and generation.credits_charged == 0
    assert db.session.get(CreditHold, generation.hold_id).status == "RELEASED"
    assert ledger.verify() == []
    return generation


def health_of(row: Gateway) -> Gateway:
    health.flush_health(force=True)
    db.session.expire_all()
    return db.session.get(Gateway, row.id)


def test_a_gateway_that_never_answers_is_a_504_within_the_read_timeout(client, acme):
    started = time.monotonic()
    response = image(client, acme, "a fox [sandbox:timeout]")
    took = time.monotonic() - started
    assert_error(response, 504, "upstream_timeout")
    assert READ_TIMEOUT <= took < READ_TIMEOUT + 3, took
    assert_nothing_charged(acme, "upstream_timeout")


def test_chat_times_out_too(client, acme):
    response = client.post("/api/v1/chat/completions", headers=key_headers(acme),
                           json={"model": CHAT, "messages": [{"role": "user", "content": "hi [sandbox:timeout]"}]})
    assert_error(response, 504, "upstream_timeout")
    assert_nothing_charged(acme, "upstream_timeout")


def streamed_chat(client, created, content: str):
    return client.post("/api/v1/chat/completions", headers=key_headers(created),
                       json={"model": CHAT, "stream": True, "stream_options": {"include_usage": True},
                             "messages": [{"role": "user", "content": content}]})


def test_a_streaming_gateway_is_passed_through_as_its_events_arrive(client, acme):
    began = time.monotonic()
    response = streamed_chat(client, acme, "a question long enough to come in many pieces [sandbox:slow=1.5]")
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    first = time.monotonic() - began  # the test client has read the first event when it returns
    body = b"".join(response.response).decode()
    assert first < (time.monotonic() - began) / 2
    events = [line[len("data: "):] for line in body.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["usage"]["total_tokens"] > 0
    generation = db.session.scalar(sa.select(Generation))
    assert generation.status == "COMPLETED" and generation.credits_charged > 0
    assert ledger.account(acme.tenant.id).balance == 1000 - generation.credits_charged


def test_a_stream_that_outlasts_the_read_timeout_ends_in_a_timeout_and_charges_nothing(client, acme):
    response = streamed_chat(client, acme, "a question long enough to come in many pieces [sandbox:slow=4]")
    assert response.status_code == 200  # each event came in time; the whole answer did not
    last = response.get_data(as_text=True).strip().split("\n")[-1]
    assert json.loads(last[len("data: "):])["error"]["code"] == "upstream_timeout"
    assert_nothing_charged(acme, "upstream_timeout")


def test_a_streamed_chat_the_gateway_never_answers_is_a_504_before_any_event(client, acme):
    assert_error(streamed_chat(client, acme, "hi [sandbox:timeout]"), 504, "upstream_timeout")
    assert_nothing_charged(acme, "upstream_timeout")


def test_a_slow_gateway_within_the_read_timeout_succeeds(client, acme, first):
    response = image(client, acme, "a patient fox [sandbox:slow=1]")
    assert response.status_code == 200, response.get_json()
    assert ledger.account(acme.tenant.id).balance == 980
    generation = db.session.get(Generation, uuid.UUID(response.get_json()["generation_id"]))
    assert generation.status == "COMPLETED" and generation.upstream_ms >= 1000


def test_results_on_the_gateways_loopback_host_are_copied_into_our_storage(client, acme, first):
    response = image(client, acme, "a fox on the loopback")
    assert response.status_code == 200, response.get_json()
    generation = db.session.get(Generation, uuid.UUID(response.get_json()["generation_id"]))
    original = generation.results[0]["original_url"]
    assert original.startswith(f"{first.url}/files/")  # 127.0.0.1: allowed only because it is the gateway
    ours = storage.read(storage.files_of([generation.id])[generation.id][0])
    assert ours == requests.get(original, timeout=5).content and ours.startswith(b"\x89PNG")
    stored = db.session.scalar(sa.select(StoredFile).where(StoredFile.generation_id == generation.id))
    assert stored.size_bytes == len(ours)
    served_file = client.get(response.get_json()["data"][0]["url"].replace("http://localhost", ""))
    assert served_file.status_code == 200 and served_file.data == ours


def test_a_loopback_result_host_that_is_no_gateway_is_refused(client, acme, first):
    # Same process and file, named by an address no gateway is configured on.
    response = image(client, acme, f"a fox [sandbox:result_url=http://127.0.0.2:{first.port}/files/x.png]")
    assert_error(response, 502, "upstream_bad_result")
    assert_nothing_charged(acme, "upstream_bad_result")


def a_result_served_by(sandbox: LiveSandbox) -> str:
    """A real PNG on another local service: the sandbox process generates one when asked directly."""
    answer = requests.post(f"{sandbox.url}/v1/images/generations", headers={"Authorization": f"Bearer {SECRET}"},
                           json={"model": IMAGE, "prompt": "an internal image"}, timeout=10)
    answer.raise_for_status()
    return answer.json()["data"][0]["url"]


def downloads(sandbox: LiveSandbox) -> int:
    return len(re.findall(r'"GET /files/', sandbox.log()))


def test_a_result_on_the_gateways_host_but_another_port_is_refused(client, acme, first, second):
    """The default gateway is on 127.0.0.1; another service on 127.0.0.1 (here `second`) stays out of reach."""
    internal = a_result_served_by(second)
    assert internal.startswith(f"http://127.0.0.1:{second.port}/files/") and second.port != first.port
    before = downloads(second)
    response = image(client, acme, f"a fox [sandbox:result_url={internal}]")
    assert_error(response, 502, "upstream_bad_result")
    generation = assert_nothing_charged(acme, "upstream_bad_result")
    assert db.session.scalars(sa.select(StoredFile).where(StoredFile.generation_id == generation.id)).all() == []
    assert downloads(second) == before  # not even asked for it


def test_a_gateway_whose_results_come_from_a_files_origin_is_copied_from_there(client, acme, first, second):
    registry.create_gateway(TEST_ACTOR, name="first", base_url=first.url, secret=SECRET, priority=1,
                            files_origin=second.url)
    elsewhere = a_result_served_by(second)
    response = image(client, acme, f"a fox [sandbox:result_url={elsewhere}]")
    assert response.status_code == 200, response.get_json()
    assert ledger.account(acme.tenant.id).balance == 980
    generation = db.session.get(Generation, uuid.UUID(response.get_json()["generation_id"]))
    ours = storage.read(storage.files_of([generation.id])[generation.id][0])
    assert ours == requests.get(elsewhere, timeout=5).content and ours.startswith(b"\x89PNG")


def test_a_gateway_added_in_the_dashboard_has_its_origin_allowlisted(client, acme, second):
    add_gateway("localhost", f"http://localhost:{second.port}", priority=1)
    response = image(client, acme, "a fox via localhost")
    assert response.status_code == 200, response.get_json()
    generation = db.session.get(Generation, uuid.UUID(response.get_json()["generation_id"]))
    assert generation.results[0]["original_url"].startswith(f"http://localhost:{second.port}/files/")


def test_an_unreachable_gateway_fails_over_to_the_next_and_counts_the_error(client, acme, second):
    dead = add_gateway("dead", f"http://127.0.0.1:{free_port()}", priority=1)  # nothing listens there
    alive = add_gateway("alive", second.url, priority=2)
    before = served(second)
    response = image(client, acme, "a fox that needs a second try")
    assert response.status_code == 200, response.get_json()
    assert ledger.account(acme.tenant.id).balance == 980
    generation = db.session.get(Generation, uuid.UUID(response.get_json()["generation_id"]))
    assert generation.gateway_id == alive.id
    assert served(second) == before + 1
    dead, alive = health_of(dead), health_of(alive)
    assert dead.error_count == 1 and "cannot connect" in dead.last_error and dead.success_count == 0
    assert alive.success_count == 1 and alive.error_count == 0
    assert ledger.verify() == []


def test_an_http_500_is_not_retried_on_another_gateway(client, acme, first, second):
    failing = add_gateway("first", first.url, priority=1)
    add_gateway("second", second.url, priority=2)
    before = served(second)
    assert_error(image(client, acme, "a fox [sandbox:fail]"), 502, "upstream_error")
    time.sleep(0.2)  # a request that reached the second would be logged by now
    assert served(second) == before
    assert_nothing_charged(acme, "upstream_error")
    assert health_of(failing).error_count == 1


def test_a_connection_dropped_after_it_opened_is_not_retried(client, acme, second):
    """The request may have reached the vendor: a second gateway could generate it twice."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def drop_connections():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection.recv(65536))
            connection.close()

    threading.Thread(target=drop_connections, daemon=True).start()
    try:
        add_gateway("dropper", f"http://127.0.0.1:{listener.getsockname()[1]}", priority=1)
        add_gateway("second", second.url, priority=2)
        before = served(second)
        assert_error(image(client, acme, "a fox"), 502, "upstream_error")
        assert len(accepted) == 1 and accepted[0].startswith(b"POST /v1/images/generations")
        time.sleep(0.2)
        assert served(second) == before
        assert_nothing_charged(acme, "upstream_error")
    finally:
        listener.close()


def test_a_wrong_gateway_secret_is_a_502_for_the_tenant(client, acme, second):
    wrong = add_gateway("wrong-secret", second.url, priority=1, secret="not-the-secret")
    error = assert_error(image(client, acme, "a fox"), 502, "upstream_auth_failed")
    assert "not-the-secret" not in error["message"]
    assert_nothing_charged(acme, "upstream_auth_failed")
    assert "credentials refused" in health_of(wrong).last_error


def chat(client, created):
    return client.post("/api/v1/chat/completions", headers=key_headers(created),
                       json={"model": CHAT, "messages": [{"role": "user", "content": "hello"}]})


def test_a_gateway_switched_off_here_is_skipped_from_the_next_request(client, acme, second):
    row = add_gateway("second", second.url, priority=1)
    assert chat(client, acme).status_code == 200  # the active gateways are now cached in this process
    before = served(second)
    registry.update_gateway(row.id, TEST_ACTOR, {"is_active": False})  # as the dashboard does
    assert chat(client, acme).status_code == 200
    assert served(second) == before  # the default gateway answered


def test_another_process_switching_a_gateway_off_is_seen_within_the_cache_interval(app, client, acme, second):
    app.config["CACHE_TTL_SECONDS"] = 1
    row = add_gateway("second", second.url, priority=1)
    assert chat(client, acme).status_code == 200
    with db.engine.begin() as other_process:  # plain SQL: nothing in this process hears of it
        other_process.execute(sa.update(Gateway).where(Gateway.id == row.id).values(is_active=False))
    before = served(second)
    assert chat(client, acme).status_code == 200
    assert served(second) == before + 1  # still cached
    time.sleep(1.1)
    assert chat(client, acme).status_code == 200
    assert served(second) == before + 1


def test_a_dead_gateway_is_skipped_once_its_circuit_opens_then_tried_once_after_the_cool_down(app, client, acme):
    # A cool-down the six requests below cannot outlast on a loaded machine (one second could).
    app.config.update(GATEWAY_CIRCUIT_FAILURES=2, GATEWAY_CIRCUIT_COOLDOWN_SECONDS=3)
    dead = add_gateway("dead", f"http://127.0.0.1:{free_port()}", priority=1)  # tried first; nothing listens
    for _ in range(6):
        assert chat(client, acme).status_code == 200  # the default gateway answers each one
    assert health_of(dead).error_count == 2  # two connection attempts, then the circuit skipped it
    circuit = db.session.get(GatewayCircuit, dead.base_url)
    assert circuit.failures == 2 and circuit.open_until is not None

    time.sleep(3.1)  # the cool-down passes: one request tries it again, the rest keep skipping it
    for _ in range(3):
        assert chat(client, acme).status_code == 200
    assert health_of(dead).error_count == 3


def test_when_every_gateway_is_known_dead_requests_fail_fast_and_nothing_is_charged(app, client, acme):
    app.config.update(WAULEAPI_URL=f"http://127.0.0.1:{free_port()}", GATEWAY_CIRCUIT_FAILURES=1,
                      GATEWAY_CIRCUIT_COOLDOWN_SECONDS=60)
    assert_error(chat(client, acme), 502, "gateway_unreachable")
    error = assert_error(chat(client, acme), 502, "gateway_unavailable")  # no connection tried this time
    assert "cool-down" in error["message"]
    assert (ledger.account(acme.tenant.id).balance, ledger.account(acme.tenant.id).held) == (1000, 0)


def test_weights_spread_traffic_in_proportion_among_gateways_of_one_priority(app, client, acme, first, second):
    random.seed(20261130)  # the weighted shuffle draws from random: one fixed, representative sequence
    heavy = add_gateway("heavy", second.url, priority=1)
    heavy.weight = 3
    light = add_gateway("light", first.url, priority=1)
    db.session.commit()
    for _ in range(100):
        assert chat(client, acme).status_code == 200
    served_heavy, served_light = health_of(heavy).success_count, health_of(light).success_count
    assert served_heavy + served_light == 100
    assert 0.65 <= served_heavy / 100 <= 0.85, (served_heavy, served_light)  # weight 3 of 4: 75 % ± 3σ


def test_the_probe_opens_a_dead_gateways_circuit_and_closes_it_when_it_answers_again(app, runner, first, tmp_path):
    app.config.update(GATEWAY_CIRCUIT_FAILURES=2)
    port = free_port()
    dead = add_gateway("later", f"http://127.0.0.1:{port}", priority=1)
    for _ in range(2):
        assert runner.invoke(args=["gateways", "probe"]).output.strip() == "1 gateway(s) answered."  # the default
    assert db.session.get(GatewayCircuit, dead.base_url).open_until is not None

    revived = LiveSandbox(tmp_path, {"SANDBOX_SECRET": SECRET}, "--quiet", port=port)
    try:
        db.session.execute(sa.update(GatewayCircuit).values(open_until=sa.func.now()))  # its cool-down is over
        db.session.commit()
        assert runner.invoke(args=["gateways", "probe"]).output.strip() == "2 gateway(s) answered."
    finally:
        revived.stop()
    circuit = db.session.get(GatewayCircuit, dead.base_url, populate_existing=True)
    assert (circuit.failures, circuit.open_until) == (0, None)
