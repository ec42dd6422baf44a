"""Throttling of failed sign-ins, per account and per client address.

Every sign-in reserves a place in both counts *before* its password is checked, in one atomic step, and
is refused (429, with the seconds to wait) when either is full. A right password clears the account's
failures and gives the address its place back, so only failures count, and guesses sent in parallel can
never pass a limit: each one holds its place while its password is checked. A count's window starts at
its first failure and lasts LOGIN_FAILURE_WINDOW_SECONDS; while an account is full, even its right
password waits.

The counts live in Redis when REDIS_URL is set, otherwise in the database (`login_failure_counts`):
either way every gunicorn worker and every host sees the same counts.
"""
from __future__ import annotations

import ipaddress
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import redis
import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy.dialects import postgresql, sqlite

from app.core.db import utcnow
from app.core.errors import DomainError, Throttled
from app.core.transaction import atomic, in_atomic
from app.extensions import db
from app.identity.models import LoginFailureCount

log = logging.getLogger(__name__)
ANY_REALM = "*"  # an address's failures count across every tenant and the dashboard


class ThrottleUnavailable(DomainError):
    """The shared counter store (Redis) is down. Sign-ins fail closed, or an attacker who can upset
    Redis would get unlimited guesses; 503 tells clients it is worth retrying."""

    status = 503
    type = "api_error"
    code = "service_unavailable"


@dataclass(frozen=True)
class Counter:
    realm: str    # whose accounts: "tenant:<id>", "platform-admin", or ANY_REALM for an address
    kind: str     # "account" or "ip"
    subject: str  # the lower-cased username, or the address


class FailureStore(Protocol):
    def reserve(self, limits: dict[Counter, int]) -> int | None:
        """One more failure on every counter, all or none: None when reserved, else the seconds until
        the first full counter's window ends."""

    def give_back(self, counters: list[Counter]) -> None:
        """One failure fewer on each (a reserved attempt that turned out right)."""

    def clear(self, counters: list[Counter]) -> None:
        """Forget these counters' failures."""


class LoginThrottle:
    def __init__(self, store: FailureStore, *, per_account: int, per_ip: int):
        self._store = store
        self._per_account = per_account
        self._per_ip = per_ip

    @contextmanager
    def attempt(self, realm: str, account: str, ip: str | None):
        """Around the password check: raises Throttled when the account or the address is full. The body
        raises on wrong credentials, leaving its place taken (one failure counted); returning normally
        clears the account and gives the address its place back."""
        account_counter, ip_counter = _account(realm, account), _address(ip)
        limits = {account_counter: self._per_account}
        if ip_counter:
            limits[ip_counter] = self._per_ip
        wait = self._store.reserve(limits)
        if wait is not None:
            raise Throttled("Too many failed sign-in attempts; try again later.", retry_after=wait,
                            code="too_many_attempts")
        yield
        try:
            self._store.clear([account_counter])
            if ip_counter:
                self._store.give_back([ip_counter])
        except ThrottleUnavailable:  # logged by the store; the sign-in stands, a stale count expires
            pass

    def unlock(self, realm: str, account: str, ip: str | None = None) -> None:
        """Forget an account's failures, and an address's when one is named."""
        self._store.clear([_account(realm, account)] + ([_address(ip)] if ip else []))


def _account(realm: str, account: str) -> Counter:
    return Counter(realm, "account", (account or "").strip().lower()[:128])


def _address(ip: str | None) -> Counter | None:
    if not ip:
        return None
    try:
        ip = str(ipaddress.ip_address(ip))  # one spelling per address (IPv6 has many)
    except ValueError:
        pass
    return Counter(ANY_REALM, "ip", ip[:128])


class DatabaseStore:
    """The embedded default: a row per counter, changed only by single conditional statements, each in a
    transaction of its own. Callers are never inside atomic(): a reservation must stand even though the
    sign-in's own transaction rolls back on a wrong password."""

    _INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

    def __init__(self, window_seconds: int):
        self._window = timedelta(seconds=window_seconds)

    def reserve(self, limits: dict[Counter, int]) -> int | None:
        now = utcnow()
        try:
            with self._own_transaction():
                for counter, limit in limits.items():
                    if db.session.execute(self._reserve_one(counter, limit, now)).first() is None:
                        raise _Full(self._seconds_left(counter, now))  # undoes the counters reserved so far
        except _Full as full:
            return full.seconds
        return None

    def _reserve_one(self, counter: Counter, limit: int, now):
        """INSERT … ON CONFLICT DO UPDATE … WHERE: a new window, or one more failure in a window that has
        room; no row comes back when the window is full (the row lock makes concurrent ones queue)."""
        table = LoginFailureCount.__table__
        expired = table.c.window_started_at <= now - self._window
        insert = self._INSERTS[db.session.get_bind().dialect.name](table).values(
            realm=counter.realm, kind=counter.kind, subject=counter.subject, window_started_at=now, failures=1)
        return insert.on_conflict_do_update(
            index_elements=[table.c.realm, table.c.kind, table.c.subject],
            set_={"failures": sa.case((expired, 1), else_=table.c.failures + 1),
                  "window_started_at": sa.case((expired, sa.literal(now, table.c.window_started_at.type)),
                                               else_=table.c.window_started_at)},
            where=expired | (table.c.failures < limit),
        ).returning(table.c.failures)

    def _seconds_left(self, counter: Counter, now) -> int:
        started = db.session.scalar(sa.select(LoginFailureCount.window_started_at).where(*_row(counter)))
        if started is None:  # cleared a moment ago
            return 1
        return max(1, math.ceil((started + self._window - now).total_seconds()))

    def give_back(self, counters: list[Counter]) -> None:
        live_since = utcnow() - self._window
        with self._own_transaction():
            for counter in counters:
                db.session.execute(sa.update(LoginFailureCount).where(
                    *_row(counter), LoginFailureCount.failures > 0, LoginFailureCount.window_started_at > live_since)
                    .values(failures=LoginFailureCount.failures - 1))

    def clear(self, counters: list[Counter]) -> None:
        with self._own_transaction():
            for counter in counters:
                db.session.execute(sa.delete(LoginFailureCount).where(*_row(counter)))

    @staticmethod
    def _own_transaction():
        if in_atomic():
            raise RuntimeError("sign-in counts commit on their own: call the throttle outside atomic()")
        return atomic()


class _Full(Exception):
    def __init__(self, seconds: int):
        self.seconds = seconds


def _row(counter: Counter):
    return (LoginFailureCount.realm == counter.realm, LoginFailureCount.kind == counter.kind,
            LoginFailureCount.subject == counter.subject)


# KEYS: the counters; ARGV: the window in milliseconds, then each counter's limit. Nothing is counted
# unless every counter has room; returns -1 when reserved, else the milliseconds the full one has left.
_RESERVE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    return math.max(redis.call('PTTL', key), 0)
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return -1
"""
_GIVE_BACK = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
"""


class RedisStore:
    """With REDIS_URL: a key per counter that expires with its window; each step is one Lua script, so it
    is atomic however many workers and hosts share the Redis."""

    def __init__(self, url: str, window_seconds: int, prefix: str):
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._reserve, self._give_back = (self._redis.register_script(s) for s in (_RESERVE, _GIVE_BACK))
        self._window_ms = window_seconds * 1000
        self._prefix = prefix

    def _key(self, counter: Counter) -> str:
        return f"{self._prefix}:login-failures:{counter.realm}:{counter.kind}:{counter.subject}"

    def reserve(self, limits: dict[Counter, int]) -> int | None:
        with self._reachable():
            left_ms = self._reserve(keys=[self._key(c) for c in limits], args=[self._window_ms, *limits.values()])
        return None if left_ms < 0 else max(1, math.ceil(left_ms / 1000))

    def give_back(self, counters: list[Counter]) -> None:
        with self._reachable():
            self._give_back(keys=[self._key(c) for c in counters])

    def clear(self, counters: list[Counter]) -> None:
        with self._reachable():
            self._redis.delete(*(self._key(c) for c in counters))

    @contextmanager
    def _reachable(self):
        try:
            yield
        except RedisError:
            log.exception("sign-in throttle store unreachable")
            raise ThrottleUnavailable("Sign-in is briefly unavailable; try again shortly.") from None


def init_app(app) -> None:
    window = app.config["LOGIN_FAILURE_WINDOW_SECONDS"]
    if app.config["REDIS_URL"]:
        store = RedisStore(app.config["REDIS_URL"], window, app.config.get("THROTTLE_PREFIX", "waule"))
    else:
        store = DatabaseStore(window)
    app.extensions["waule.login_throttle"] = LoginThrottle(
        store, per_account=app.config["LOGIN_FAILURES_PER_USER"], per_ip=app.config["LOGIN_FAILURES_PER_IP"])


def login_throttle() -> LoginThrottle:
    return current_app.extensions["waule.login_throttle"]
