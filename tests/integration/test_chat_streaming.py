"""Streamed chat against a live server (a real port), read by a raw SSE reader: a gateway that streams
is passed through as it arrives, the charge is settled when the stream ends (before the usage chunk),
errors before the first event keep their HTTP status, and a client that leaves mid-stream still has
its hold settled. The gateway is the in-process sandbox, which streams `stream: true` for real."""
from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from app.billing import accounts as billing
from app.billing import ledger
from app.catalog import pricing
from app.catalog import service as catalog
from app.extensions import db
from app.models import CreditHold, Generation
from tests.conftest import TEST_ACTOR, key_headers

CHAT = "gemini-2.5-pro"   # PER_TOKEN: 2 in / 8 out per 1k
QUESTION = ("Tell me, in as many words as you like, why the quick brown fox jumps over the lazy dog "
            "and what the dog thinks of it afterwards")


@pytest.fixture
def acme(make):
    return make.funded_tenant("Acme")


@pytest.fixture(autouse=True)
def ledger_stays_sound(app):
    yield
    db.session.rollback()  # read what the server's threads committed
    assert ledger.verify() == []


class Events:
    """What a raw SSE reader saw: the status, the content type, and each `data:` with when it arrived."""

    def __init__(self, status: int, content_type: str, received: list[tuple[float, str]]) -> None:
        self.status, self.content_type, self.received = status, content_type, received

    @property
    def data(self) -> list:
        return [json.loads(data) if data != "[DONE]" else data for _, data in self.received]

    @property
    def chunks(self) -> list[dict]:
        return [item for item in self.data if isinstance(item, dict) and "error" not in item]

    def text(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c["choices"])


def open_stream(live_server: str, created, content: str, **body) -> tuple[http.client.HTTPConnection, object]:
    split = urlsplit(live_server)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    connection.request("POST", "/api/v1/chat/completions",
                       body=json.dumps({"model": CHAT, "messages": [{"role": "user", "content": content}],
                                        "stream": True, **body}),
                       headers={**key_headers(created), "Content-Type": "application/json"})
    return connection, connection.getresponse()


def stream(live_server: str, created, content: str, **body) -> Events:
    began = time.monotonic()
    connection, response = open_stream(live_server, created, content, **body)
    received = []
    if response.getheader("Content-Type", "").startswith("text/event-stream"):
        while line := response.readline():
            if line.startswith(b"data: "):
                received.append((time.monotonic() - began, line[len(b"data: "):].decode().rstrip("\n")))
    else:
        received.append((time.monotonic() - began, response.read().decode()))
    connection.close()
    return Events(response.status, response.getheader("Content-Type", ""), received)


def account(created) -> tuple[int, int]:
    db.session.rollback()
    found = ledger.account(created.tenant.id)
    return found.balance, found.held


def cost(usage: dict) -> int:
    return -(-(usage["prompt_tokens"] * 2 + usage["completion_tokens"] * 8) // 1000)


def test_a_slow_streamed_answer_reaches_the_client_as_it_is_generated(live_server, acme):
    events = stream(live_server, acme, f"{QUESTION} [sandbox:slow=2]", stream_options={"include_usage": True})
    assert events.status == 200 and events.content_type.startswith("text/event-stream")
    first, last = events.received[0][0], events.received[-1][0]
    assert first < last / 2  # today's code sent every event at once, after the whole answer
    assert events.data[-1] == "[DONE]"
    assert events.text().startswith(f"Sandbox answer to: {QUESTION}")
    chunks = events.chunks
    assert all(chunk["id"] == chunks[0]["id"] and chunk["model"] == CHAT for chunk in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage["completion_tokens"] == pricing.count_tokens(events.text())
    assert account(acme) == (1000 - cost(usage), 0)  # settled before the usage chunk was sent
    generation = db.session.scalar(sa.select(Generation))
    assert generation.status == "COMPLETED" and generation.credits_charged == cost(usage)
    assert generation.output["content"] == events.text() and generation.output["usage"]["source"] == "counted"


def test_without_include_usage_no_usage_is_sent_even_when_the_gateway_sends_it(live_server, acme):
    events = stream(live_server, acme, "hello [sandbox:usage]")
    assert events.data[-1] == "[DONE]" and events.text()
    assert all("usage" not in chunk and chunk["choices"] for chunk in events.chunks)


def test_usage_the_gateway_streams_is_what_is_charged(live_server, acme):
    events = stream(live_server, acme, "one two three [sandbox:usage]", stream_options={"include_usage": True})
    usage = events.chunks[-1]["usage"]
    # The sandbox counts a word a token, plus 4 a message: not our count, so this is the gateway's.
    assert usage["prompt_tokens"] == 3 + 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert account(acme) == (1000 - cost(usage), 0)
    generation = db.session.scalar(sa.select(Generation))
    assert generation.status == "COMPLETED" and generation.output["usage"]["source"] == "upstream"


def test_a_gateway_that_answers_whole_is_cut_into_chunks_as_before(live_server, acme):
    events = stream(live_server, acme, "hello [sandbox:no_stream]", stream_options={"include_usage": True})
    assert events.status == 200 and events.data[-1] == "[DONE]"
    assert events.text().startswith("Sandbox answer to: hello")
    assert account(acme) == (1000 - cost(events.chunks[-1]["usage"]), 0)


@pytest.mark.parametrize("markers, status, code", [
    ("[sandbox:reject]", 400, "upstream_rejected"),
    ("[sandbox:fail]", 502, "upstream_error"),
    ("[sandbox:deny]", 502, "upstream_auth_failed"),
    ("[sandbox:no_stream] [sandbox:reject]", 400, "upstream_rejected"),
    ("[sandbox:no_stream] [sandbox:badjson]", 502, "upstream_bad_response"),
    ("[sandbox:nope]", 400, "upstream_rejected"),
])
def test_errors_before_the_first_event_answer_their_status(live_server, acme, markers, status, code):
    events = stream(live_server, acme, f"hello {markers}")
    assert events.status == status and events.content_type == "application/json"
    assert json.loads(events.received[0][1])["error"]["code"] == code
    assert account(acme) == (1000, 0)


def test_refusals_of_our_own_before_the_stream_answer_their_status(live_server, make):
    catalog.seed_catalog(TEST_ACTOR)
    poor = make.tenant("Poor")
    billing.recharge(poor.tenant.id, 1, TEST_ACTOR)
    assert stream(live_server, poor, "hello", max_tokens=100_000).status == 402
    assert stream(live_server, poor, "hello", model="no-such-model").status == 404
    assert stream(live_server, poor, "hello", n=2).status == 400
    assert account(poor) == (1, 0)


def test_a_stream_the_gateway_breaks_off_ends_with_an_error_event_and_charges_nothing(live_server, acme):
    events = stream(live_server, acme, f"{QUESTION} [sandbox:stream_cut]")
    assert events.status == 200 and events.text()
    assert "[DONE]" not in events.data
    assert events.data[-1]["error"]["code"] == "upstream_error"
    assert account(acme) == (1000, 0)
    generation = db.session.scalar(sa.select(Generation))
    assert generation.status == "FAILED" and db.session.get(CreditHold, generation.hold_id).status == "RELEASED"


def wait_until_resolved(timeout: float = 20) -> Generation:
    deadline = time.monotonic() + timeout
    while True:
        generation = db.session.scalar(sa.select(Generation))
        if generation.status in ("COMPLETED", "FAILED") or time.monotonic() > deadline:
            return generation
        db.session.rollback()  # no read transaction while we wait: on SQLite it would keep the server from writing
        time.sleep(0.1)


def test_a_client_that_leaves_mid_stream_is_charged_for_what_was_generated(live_server, acme):
    connection, response = open_stream(live_server, acme, f"{QUESTION} [sandbox:slow=3]")
    assert response.status == 200 and response.readline().startswith(b"data: ")
    response.close()  # the client goes away after the first event (this closes the socket)
    connection.close()
    generation = wait_until_resolved()
    assert generation.status == "COMPLETED"
    hold = db.session.get(CreditHold, generation.hold_id)
    assert hold.status == "SETTLED" and hold.settled_amount == generation.credits_charged
    assert generation.output["finish_reason"] is None  # cut short: the gateway was hung up on
    whole = pricing.count_tokens(f"Sandbox answer to: {QUESTION}")
    assert 0 < generation.output["usage"]["completion_tokens"] < whole
    assert account(acme) == (1000 - generation.credits_charged, 0)
