"""Member and tenant-admin sign-in: API key + username + password (+ device) → JWT and refresh token."""
from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_jwt_extended import create_access_token

from app.core import cache
from app.core.crypto import digest, random_token
from app.core.db import utcnow
from app.core.errors import Unauthenticated
from app.core.transaction import atomic
from app.extensions import db
from app.identity.api_keys import TenantAccess, find_usable_key, note_key_use, tenant_access
from app.identity.devices import check_device, require_device_id
from app.identity.models import RefreshToken, Tenant, TenantUser, UserSession
from app.identity.passwords import verify_password
from app.identity.throttle import login_throttle

BAD_CREDENTIALS = "Invalid username or password."


@dataclass
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    user: TenantUser
    tenant: Tenant
    session: UserSession


def login(*, api_key: str, username: str, password: str, device_id: str | None = None,
          device_info: dict | None = None, ip: str | None = None) -> IssuedTokens:
    with atomic():
        key = find_usable_key(api_key)
        # A login is a request made with the key: an app that only logs members in still shows as in use.
        note_key_use(key.id)
        tenant_id, key_mode = key.tenant_id, key.mode
        device_id = require_device_id(key.tenant, device_id)
    # Outside any transaction: the throttle counts this attempt before the password is checked, and the
    # count stands when a wrong password rolls the check back.
    with login_throttle().attempt(f"tenant:{tenant_id}", username, ip):
        user_id = _check_password(tenant_id, (username or "").strip(), password)

    with atomic():
        user = db.session.get(TenantUser, user_id)
        check_device(user, device_id, device_info)
        user.last_login_at = utcnow()
        session = UserSession(tenant_id=tenant_id, user_id=user.id, key_mode=key_mode,
                              device_fingerprint=device_id, ip=ip)
        db.session.add(session)
        db.session.flush()
        return _issue(user, session)


@atomic()
def _check_password(tenant_id: uuid.UUID, username: str, password: str) -> uuid.UUID:
    user = db.session.scalar(sa.select(TenantUser).where(
        TenantUser.tenant_id == tenant_id, sa.func.lower(TenantUser.username) == username.lower()))
    # Unknown user, wrong password and inactive user get the same answer, after the same bcrypt work.
    password_ok = verify_password(password or "", user.password_hash if user else None)
    if user is None or not password_ok or not user.is_active:
        raise Unauthenticated(BAD_CREDENTIALS, code="invalid_credentials")
    return user.id


def _issue(user: TenantUser, session: UserSession) -> IssuedTokens:
    expires_in = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    access = create_access_token(
        identity=str(user.id),
        additional_claims={"tid": str(user.tenant_id), "role": user.role, "sid": str(session.id),
                           "mode": session.key_mode},
        expires_delta=timedelta(seconds=expires_in),
    )
    raw_refresh = "wr_" + random_token(48)
    db.session.add(RefreshToken(
        session_id=session.id, digest=digest(raw_refresh),
        expires_at=utcnow() + timedelta(days=current_app.config["REFRESH_TOKEN_DAYS"]),
    ))
    return IssuedTokens(access, raw_refresh, expires_in, user, user.tenant, session)


def refresh(raw_refresh: str) -> IssuedTokens:
    """Rotate a refresh token. Presenting an already-rotated token revokes the whole session."""
    now = utcnow()
    with atomic():
        token = db.session.scalar(sa.select(RefreshToken).where(RefreshToken.digest == digest(raw_refresh or "")))
        if token is None:
            raise Unauthenticated("Invalid refresh token.", code="invalid_refresh_token")
        session = token.session
        # Compare-and-set: of two concurrent uses of one token, exactly one rotates it.
        rotated = db.session.execute(
            sa.update(RefreshToken).where(RefreshToken.id == token.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
        ).rowcount
        if rotated:
            user = db.session.get(TenantUser, session.user_id)
            if (session.revoked_at is not None or token.expires_at <= now or not user.is_active
                    or not user.tenant.is_active):
                raise Unauthenticated("Invalid refresh token.", code="invalid_refresh_token")
            return _issue(user, session)
        _revoke(session, "refresh_token_reused")  # committed: the reuse must end the session
    raise Unauthenticated("Refresh token was already used; the session has been ended.", code="refresh_token_reused")


@atomic()
def logout(raw_refresh: str | None, session_id: uuid.UUID | None = None) -> None:
    """End the session named by a refresh token or by the caller's access token."""
    session = None
    if raw_refresh:
        token = db.session.scalar(sa.select(RefreshToken).where(RefreshToken.digest == digest(raw_refresh)))
        session = token.session if token else None
    elif session_id is not None:
        session = db.session.get(UserSession, session_id)
    else:
        raise Unauthenticated("Nothing to log out: send the session's refresh_token or its access token.",
                              code="invalid_refresh_token")
    if session is None:
        raise Unauthenticated("Invalid refresh token.", code="invalid_refresh_token")
    _revoke(session, "logout")


def _revoke(session: UserSession, reason: str) -> None:
    cache.changed("user_sessions")
    db.session.execute(
        sa.update(UserSession).where(UserSession.id == session.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


@dataclass(frozen=True)
class Member:
    """The signed-in user as a request sees it: enough to authorize and attribute, nothing that changes
    with use (last login) or is secret (the password hash)."""

    id: uuid.UUID
    username: str
    role: str


@dataclass(frozen=True)
class MemberAccess:
    """A live session as authentication sees it: cached per process by session id (app/core/cache.py),
    flushed when a session ends, a user is deactivated or changes role, or the tenant changes."""

    user: Member
    session_id: uuid.UUID
    key_mode: str
    tenant: TenantAccess


# Built once: a cache miss runs it.
_LIVE_SESSION = (sa.select(TenantUser, UserSession, Tenant)
                 .join(UserSession, UserSession.user_id == TenantUser.id)
                 .join(Tenant, Tenant.id == TenantUser.tenant_id)
                 .where(TenantUser.id == sa.bindparam("user_id"), UserSession.id == sa.bindparam("session_id"),
                        UserSession.revoked_at.is_(None), TenantUser.is_active.is_(True), Tenant.is_active.is_(True)))


def _read_access(user_id: uuid.UUID, session_id: uuid.UUID) -> MemberAccess | None:
    row = db.session.execute(_LIVE_SESSION, {"user_id": user_id, "session_id": session_id}).first()
    if row is None:
        return None
    user, session, tenant = row
    return MemberAccess(Member(user.id, user.username, user.role), session.id, session.key_mode, tenant_access(tenant))


def resolve_access(claims: dict) -> MemberAccess | None:
    """The live user and session behind a decoded access token, or None when any of them ended."""
    try:
        user_id, session_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
    except (KeyError, ValueError, TypeError):
        return None
    access = cache.cached("sessions", session_id, functools.partial(_read_access, user_id, session_id))
    if access is None or access.user.id != user_id or not access.tenant.is_active:
        return None
    return access
