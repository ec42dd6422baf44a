"""Throttling of failed sign-ins, per account and per client IP.

Counters live in Redis when REDIS_URL is set, so every gunicorn worker and host sees the same
counts; otherwise in process memory (the embedded default). Only failures count: a user who types
the password right is never slowed down by the per-account limit.
"""
from __future__ import annotations

import logging
import time

from flask import current_app
from limits import RateLimitItemPerSecond, storage, strategies
from limits.errors import StorageError
from redis.exceptions import RedisError

from app.errors import DomainError, Throttled

log = logging.getLogger(__name__)
_STORE_ERRORS = (StorageError, RedisError)


class ThrottleUnavailable(DomainError):
    """The shared counter store (Redis) is down. Sign-ins fail closed, or an attacker who can upset
    Redis would get unlimited guesses; 503 tells clients it is worth retrying."""

    status = 503
    type = "api_error"
    code = "service_unavailable"


class LoginThrottle:
    def __init__(self, storage_uri: str, *, per_account: int, per_ip: int, window_seconds: int, prefix: str = "waule"):
        self._limiter = strategies.MovingWindowRateLimiter(
            storage.storage_from_string(storage_uri, wrap_exceptions=True))
        self._per_account = RateLimitItemPerSecond(per_account, window_seconds, namespace=prefix)
        self._per_ip = RateLimitItemPerSecond(per_ip, window_seconds, namespace=prefix)

    def _checks(self, realm: str, account: str, ip: str | None):
        yield self._per_account, ("login-account", realm, account.lower())
        if ip:
            yield self._per_ip, ("login-ip", ip)

    def check(self, realm: str, account: str, ip: str | None) -> None:
        """Raise Throttled (with the seconds to wait) if this account or IP failed too often."""
        try:
            for item, key in self._checks(realm, account, ip):
                if not self._limiter.test(item, *key):
                    reset_at, _remaining = self._limiter.get_window_stats(item, *key)
                    raise Throttled("Too many failed sign-in attempts; try again later.",
                                    retry_after=int(reset_at - time.time()) + 1, code="too_many_attempts")
        except _STORE_ERRORS:
            log.exception("sign-in throttle store unreachable")
            raise ThrottleUnavailable("Sign-in is briefly unavailable; try again shortly.") from None

    def failed(self, realm: str, account: str, ip: str | None) -> None:
        try:
            for item, key in self._checks(realm, account, ip):
                self._limiter.hit(item, *key)
        except _STORE_ERRORS:  # check() just worked; the answer (401) stands either way
            log.exception("could not record a failed sign-in")

    def succeeded(self, realm: str, account: str) -> None:
        try:
            self._limiter.clear(self._per_account, "login-account", realm, account.lower())
        except _STORE_ERRORS:  # a stale count only delays a later throttle reset
            log.exception("could not clear sign-in failures")


def init_app(app) -> None:
    app.extensions["waule.login_throttle"] = LoginThrottle(
        app.config["REDIS_URL"] or "memory://",
        per_account=app.config["LOGIN_FAILURES_PER_USER"],
        per_ip=app.config["LOGIN_FAILURES_PER_IP"],
        window_seconds=app.config["LOGIN_FAILURE_WINDOW_SECONDS"],
        prefix=app.config.get("THROTTLE_PREFIX", "waule"),
    )


def login_throttle() -> LoginThrottle:
    return current_app.extensions["waule.login_throttle"]
