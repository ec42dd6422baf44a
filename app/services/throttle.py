"""Throttling of failed sign-ins, per account and per client IP.

Counters live in Redis when REDIS_URL is set, so every gunicorn worker and host sees the same
counts; otherwise in process memory (the embedded default). Only failures count: a user who types
the password right is never slowed down by the per-account limit.
"""
from __future__ import annotations

import time

from flask import current_app
from limits import RateLimitItemPerSecond, storage, strategies

from app.errors import Throttled


class LoginThrottle:
    def __init__(self, storage_uri: str, *, per_account: int, per_ip: int, window_seconds: int, prefix: str = "waule"):
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        self._per_account = RateLimitItemPerSecond(per_account, window_seconds, namespace=prefix)
        self._per_ip = RateLimitItemPerSecond(per_ip, window_seconds, namespace=prefix)

    def _checks(self, realm: str, account: str, ip: str | None):
        yield self._per_account, ("login-account", realm, account.lower())
        if ip:
            yield self._per_ip, ("login-ip", ip)

    def check(self, realm: str, account: str, ip: str | None) -> None:
        """Raise Throttled (with the seconds to wait) if this account or IP failed too often."""
        for item, key in self._checks(realm, account, ip):
            if not self._limiter.test(item, *key):
                reset_at, _remaining = self._limiter.get_window_stats(item, *key)
                raise Throttled("Too many failed sign-in attempts; try again later.",
                                retry_after=int(reset_at - time.time()) + 1, code="too_many_attempts")

    def failed(self, realm: str, account: str, ip: str | None) -> None:
        for item, key in self._checks(realm, account, ip):
            self._limiter.hit(item, *key)

    def succeeded(self, realm: str, account: str) -> None:
        self._limiter.clear(self._per_account, "login-account", realm, account.lower())


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
