"""Throttling of failed sign-ins, per account and per client IP.

Counters live in Redis when REDIS_URL is set, so every gunicorn worker and host sees the same
counts; otherwise in process memory (the embedded default). A user who types the password right is
never slowed down by the per-account limit: their success clears it.

The per-account count is taken *before* the password is checked, as one atomic hit, so many guesses
sent in parallel cannot all slip past a check made before any of them failed.
"""
from __future__ import annotations

import logging
import time

from flask import current_app
from limits import RateLimitItemPerSecond, storage, strategies
from limits.errors import StorageError
from redis.exceptions import RedisError

from app.core.errors import DomainError, Throttled

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

    def check(self, realm: str, account: str, ip: str | None) -> None:
        """Count this attempt against the account and raise Throttled (with the seconds to wait) if
        the account or the IP is over its limit."""
        try:
            account_key = ("login-account", realm, account.lower())
            if not self._limiter.hit(self._per_account, *account_key):
                self._refuse(self._per_account, account_key)
            if ip and not self._limiter.test(self._per_ip, "login-ip", ip):
                self._refuse(self._per_ip, ("login-ip", ip))
        except _STORE_ERRORS:
            log.exception("sign-in throttle store unreachable")
            raise ThrottleUnavailable("Sign-in is briefly unavailable; try again shortly.") from None

    def _refuse(self, item, key) -> None:
        reset_at, _remaining = self._limiter.get_window_stats(item, *key)
        raise Throttled("Too many failed sign-in attempts; try again later.",
                        retry_after=int(reset_at - time.time()) + 1, code="too_many_attempts")

    def failed(self, realm: str, account: str, ip: str | None) -> None:
        """The account's attempt was already counted by check(); a failure also counts against the IP."""
        try:
            if ip:
                self._limiter.hit(self._per_ip, "login-ip", ip)
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
