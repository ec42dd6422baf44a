"""The waule-api client (docs/gateway-contract.md).

One requests.Session per gateway, both auth headers, a short connect timeout and per-kind read
timeouts. Connection failures fail over to the next active gateway; an HTTP answer is never retried
elsewhere (the vendor may already have started). Every failure leaves as a domain error, mapped as
the contract says: a request the gateway refuses → 400, its auth failure or 5xx → 502, timeout → 504.
A chat the client streams is sent with `call_streaming`: a gateway that answers server-sent events is
read as they arrive (a Stream); one that answers a JSON completion, as the deployed one does, is an Answer.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from flask import current_app
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from app.core import cache
from app.core.crypto import decrypt
from app.core.errors import DomainError, InvalidInput
from app.extensions import db
from app.gateway import sandbox
from app.gateway import health
from app.gateway.health import note_health
from app.gateway.models import Gateway

log = logging.getLogger(__name__)
SECRET_CONTEXT = "gateway.secret"


class UpstreamRejected(InvalidInput):
    code = "upstream_rejected"


class UpstreamFailed(DomainError):
    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamTimeout(DomainError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"


@dataclass(frozen=True)
class Target:
    """Where to send one call: a Gateway row, the default gateway, or the sandbox."""

    name: str
    base_url: str
    secret: str
    path_prefix: str = "/v1"
    gateway_id: uuid.UUID | None = None
    priority: int = 100
    weight: int = 1
    in_process: bool = False  # answered by the in-process sandbox (test mode, or the test suite's gateway)
    files_origin: str | None = None  # where its result files are, when not at base_url's origin


@dataclass
class Answer:
    target: Target
    body: dict
    elapsed_ms: int


_sessions_lock = threading.Lock()


def session_for(target: Target) -> requests.Session:
    """One pooled session per gateway, per app: an in-process sandbox belongs to its own app."""
    sessions = current_app.extensions.setdefault("waule.gateway_sessions", {})
    key = (target.base_url, target.secret, target.in_process)
    with _sessions_lock:
        session = sessions.get(key)
        if session is None:
            session = requests.Session()
            session.headers.update({"Authorization": f"Bearer {target.secret}",
                                    "X-Internal-Secret": target.secret,
                                    "User-Agent": "waule-server"})
            session.trust_env = False  # never route gateway traffic through an ambient proxy
            if target.in_process:
                sandbox.mount(session)
            sessions[key] = session
        return session


def _in_process(url: str) -> bool:
    """Only the test suite's own gateway URL reaches the in-process sandbox: a live gateway never does."""
    return (current_app.config["TESTING"] and sandbox.is_mounted()
            and (urlsplit(url).hostname or "").lower() == sandbox.SANDBOX_HOST)


def default_target() -> Target | None:
    url = current_app.config.get("WAULEAPI_URL")
    if not url:
        return None
    return Target("default", url.rstrip("/"), current_app.config["WAULEAPI_SECRET"],
                  current_app.config["WAULEAPI_PATH_PREFIX"], in_process=_in_process(url))


def sandbox_target() -> Target:
    """Where test-mode calls go: a sandbox process at SANDBOX_URL, else the in-process one."""
    url = current_app.config.get("SANDBOX_URL")
    if url:
        return Target("sandbox", url.rstrip("/"), current_app.config["SANDBOX_SECRET"], "/v1")
    return Target("sandbox", sandbox.SANDBOX_BASE, current_app.config["SANDBOX_SECRET"], "/v1", in_process=True)


def row_target(row: Gateway) -> Target:
    return Target(row.name, row.base_url.rstrip("/"), decrypt(row.secret_encrypted, context=SECRET_CONTEXT),
                  row.path_prefix or "/v1", row.id, row.priority, row.weight, _in_process(row.base_url),
                  row.files_origin)


def active_targets() -> list[Target]:
    """The active Gateway rows as targets (not the default gateway). Every generation needs them (the
    call order, the fetch allowlist) and they change a few times a year: cached (app/core/cache.py)."""
    return cache.cached("gateways", "active", _read_active_targets)


def _read_active_targets() -> tuple[Target, ...]:
    return tuple(row_target(row) for row in db.session.scalars(sa.select(Gateway).where(Gateway.is_active.is_(True))))


def targets_for(gateway_id: uuid.UUID | None) -> list[Target]:
    """The model's own gateway first (if any), then the others by priority, weighted among equals;
    the default gateway from WAULEAPI_URL joins at priority 100."""
    candidates = list(active_targets())
    default = default_target()
    if default is not None and default.base_url not in {c.base_url for c in candidates}:
        candidates.append(default)
    preferred = [c for c in candidates if gateway_id is not None and c.gateway_id == gateway_id]
    others = [c for c in candidates if c not in preferred]
    # Weighted shuffle within each priority: random key u^(1/w), highest first.
    others.sort(key=lambda c: (c.priority, -random.random() ** (1 / max(1, c.weight))))
    ordered = preferred + others
    if not ordered:
        raise UpstreamFailed("No gateway is configured (set WAULEAPI_URL or add one in the dashboard).",
                             code="no_gateway")
    reachable = health.usable(ordered)
    if not reachable:
        raise UpstreamFailed("No AI gateway is reachable right now; they are retried after a short cool-down.",
                             code="gateway_unavailable")
    return reachable


def _message(response: requests.Response) -> str:
    """The gateway's error text from any of its three shapes, or the status line."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or f"HTTP {response.status_code}")
    if isinstance(error, str):
        return error
    return str(body.get("message") or f"HTTP {response.status_code}") if isinstance(body, dict) else \
        f"HTTP {response.status_code}"


def read_timeout(kind: str) -> float:
    return float(current_app.config["WAULEAPI_TIMEOUTS"].get(kind, current_app.config["WAULEAPI_TIMEOUTS"]["image"]))


def call(targets: list[Target], method: str, path: str, *, kind: str, payload: dict | None = None) -> Answer:
    """Send one call; fail over only when a gateway cannot be reached at all."""
    target, response, started = _send(targets, method, path, kind=kind, payload=payload)
    return Answer(target, _parse(target, response), int((time.monotonic() - started) * 1000))


def call_streaming(targets: list[Target], method: str, path: str, *, kind: str,
                   payload: dict | None = None) -> Answer | Stream:
    """Send a call whose answer may stream: a Stream when the gateway answers `text/event-stream`, else
    the Answer call() would give. A refusal or failure before the first event raises as call() does."""
    target, response, started = _send(targets, method, path, kind=kind, payload=payload, stream=True)
    if 200 <= response.status_code < 300 and response.headers.get("Content-Type", "").startswith("text/event-stream"):
        note_health(target.gateway_id, ok=True)
        return Stream(target, response, started, started + read_timeout(kind))
    try:
        _read_body(target, response)
        return Answer(target, _parse(target, response), int((time.monotonic() - started) * 1000))
    finally:
        response.close()


def _send(targets: list[Target], method: str, path: str, *, kind: str, payload: dict | None,
          stream: bool = False) -> tuple[Target, requests.Response, float]:
    connect_timeout = current_app.config["WAULEAPI_CONNECT_TIMEOUT"]
    last_error = None
    for target in targets:
        url = f"{target.base_url}{target.path_prefix}{path}"
        started = time.monotonic()
        try:
            response = session_for(target).request(method, url, json=payload, stream=stream,
                                                   timeout=(connect_timeout, read_timeout(kind)))
        except requests.ConnectionError as error:
            if not _never_connected(error):
                # The request may have reached the vendor: retrying elsewhere could generate twice.
                note_health(target.gateway_id, ok=False, error=f"connection lost: {type(error).__name__}")
                raise UpstreamFailed("The connection to the AI gateway broke off.") from None
            last_error = f"{target.name}: cannot connect"
            note_health(target.gateway_id, ok=False, error=f"cannot connect: {type(error).__name__}")
            health.connection_failed(target)
            log.warning("gateway %s unreachable, failing over", target.name)
            continue
        except requests.Timeout:
            raise _timed_out(target) from None
        except requests.RequestException as error:
            note_health(target.gateway_id, ok=False, error=type(error).__name__)
            raise UpstreamFailed(f"The gateway call failed ({type(error).__name__}).") from None
        health.connected(target)  # it answered: its circuit closes
        return target, response, started
    raise UpstreamFailed(f"No gateway could be reached ({last_error}).", code="gateway_unreachable")


def _read_body(target: Target, response: requests.Response) -> bytes:
    """Read a streamed call's body now, failing as an unstreamed call fails when it breaks off."""
    try:
        return response.content
    except requests.RequestException as error:
        raise _broke_off(target, error) from None


def _broke_off(target: Target, error: requests.RequestException) -> DomainError:
    if isinstance(error, requests.Timeout) or any(isinstance(arg, ReadTimeoutError) for arg in error.args):
        return _timed_out(target)
    note_health(target.gateway_id, ok=False, error=f"connection lost: {type(error).__name__}")
    return UpstreamFailed("The connection to the AI gateway broke off.")


@dataclass
class Stream:
    """A gateway's server-sent events, read as they arrive (the `stream=True` response is held open)."""

    target: Target
    response: requests.Response
    started: float    # time.monotonic() when the call was sent
    deadline: float   # the chat read timeout bounds the whole stream, not only each read

    def chunks(self) -> Iterator[dict]:
        """Each `data:` event as a JSON object, until `data: [DONE]` or the end of the body. An event that
        is not a JSON object, or that reports an error, fails the call; so does a read that breaks off."""
        lines: list[str] = []
        try:
            for raw in self.response.iter_lines(chunk_size=1024):
                if time.monotonic() > self.deadline:
                    raise _timed_out(self.target)
                line = raw.decode("utf-8", errors="replace")
                if line:
                    if line.startswith("data:"):
                        lines.append(line[5:].removeprefix(" "))
                    continue  # other fields (event:, id:, retry:) and comments (": keep-alive") say nothing we use
                if lines:
                    data, lines = "\n".join(lines), []
                    if data.strip() == "[DONE]":
                        return
                    yield self._decode(data)
            if lines and "\n".join(lines).strip() != "[DONE]":
                yield self._decode("\n".join(lines))
        except requests.RequestException as error:
            raise _broke_off(self.target, error) from None
        finally:
            self.response.close()

    def _decode(self, data: str) -> dict:
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            note_health(self.target.gateway_id, ok=False, error="invalid event in stream")
            raise UpstreamFailed("The AI gateway streamed an event that is not a JSON object.",
                                 code="upstream_bad_response")
        if event.get("error"):
            error = event["error"]
            message = error.get("message") if isinstance(error, dict) else error
            note_health(self.target.gateway_id, ok=False, error=f"stream error: {str(message)[:200]}")
            raise UpstreamFailed(f"The AI gateway failed mid-stream: {message}")
        return event

    def close(self) -> None:
        """Hang up: a gateway that notices stops generating."""
        self.response.close()


def _never_connected(error: requests.ConnectionError) -> bool:
    """True when no byte reached the gateway (refused, unresolvable, connect timeout): safe to fail over."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


def _timed_out(target: Target) -> UpstreamTimeout:
    note_health(target.gateway_id, ok=False, error="timeout")
    return UpstreamTimeout("The AI gateway did not answer in time.")


def _parse(target: Target, response: requests.Response) -> dict:
    status = response.status_code
    if status in (401, 403):
        note_health(target.gateway_id, ok=False, error=f"HTTP {status}: credentials refused")
        raise UpstreamFailed("The AI gateway refused our credentials; the operator has been told.",
                             code="upstream_auth_failed")
    if 400 <= status < 500:
        note_health(target.gateway_id, ok=True)  # the gateway works; it refused this request
        raise UpstreamRejected(f"The model refused the request: {_message(response)}")
    if status >= 500 or status < 200 or status >= 300:
        note_health(target.gateway_id, ok=False, error=f"HTTP {status}: {_message(response)[:200]}")
        raise UpstreamFailed(f"The AI gateway failed: {_message(response)}")
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        note_health(target.gateway_id, ok=False, error="invalid JSON")
        raise UpstreamFailed("The AI gateway answered with invalid JSON.", code="upstream_bad_response") from None
    if not isinstance(body, dict):
        note_health(target.gateway_id, ok=False, error="unexpected JSON")
        raise UpstreamFailed("The AI gateway answered with an unexpected shape.", code="upstream_bad_response")
    note_health(target.gateway_id, ok=True)
    return body


def result_urls(body: dict) -> list[dict]:
    """Result items from every shape in the contract: {data: [{url, …}]} or {url}."""
    items = body.get("data")
    if isinstance(items, list):
        found = [item for item in items if isinstance(item, dict) and isinstance(item.get("url"), str)]
        if found:
            return found
    if isinstance(body.get("url"), str):
        return [{"url": body["url"]}]
    return []


def probe(target: Target) -> bool:
    """Does the gateway answer at all (any HTTP status)? The answer feeds its circuit breaker."""
    try:
        session_for(target).get(f"{target.base_url}/health",
                                timeout=(current_app.config["WAULEAPI_CONNECT_TIMEOUT"], 10))
    except requests.RequestException:
        health.connection_failed(target)
        return False
    health.connected(target)
    return True


def ping(target: Target) -> tuple[bool, str]:
    """GET /health on a gateway, for the dashboard's test-connection button."""
    try:
        response = session_for(target).get(f"{target.base_url}/health",
                                           timeout=(current_app.config["WAULEAPI_CONNECT_TIMEOUT"], 10))
        status = (response.json() or {}).get("status") if response.ok else None
    except (requests.RequestException, ValueError) as error:
        return False, f"unreachable: {type(error).__name__}"
    if status in ("ok", "healthy"):
        return True, status
    return False, f"HTTP {response.status_code}"
