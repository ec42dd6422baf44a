"""Platform admins: dashboard sign-in and personal access tokens for the JSON admin API."""
from __future__ import annotations

import ipaddress
import re

import sqlalchemy as sa

from app.core.crypto import digest, random_token
from app.core.db import parse_uuid, utcnow
from app.core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from app.core.transaction import atomic
from app.extensions import db
from app.identity import audit
from app.identity.audit import Actor
from app.identity.models import AdminToken, PlatformAdmin
from app.identity.passwords import hash_password, verify_password
from app.identity.throttle import login_throttle

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$")
TOKEN_PATTERN = re.compile(r"^wa_pat_[A-Za-z0-9]{40}$")
REALM = "platform-admin"


@atomic()
def create_admin(actor: Actor, *, username: str, password: str) -> PlatformAdmin:
    username = (username or "").strip()
    if not USERNAME_PATTERN.match(username):
        raise InvalidInput("Username must be 3 to 64 letters, digits or _ . @ - and start with a letter or digit.",
                           param="username")
    password_hash = hash_password(password)
    if db.session.scalar(sa.select(PlatformAdmin.id).where(sa.func.lower(PlatformAdmin.username) == username.lower())):
        raise Conflict(f"Admin {username!r} already exists.", code="username_taken", param="username")
    admin = PlatformAdmin(username=username, password_hash=password_hash)
    db.session.add(admin)
    db.session.flush()
    audit.record(actor, "admin.create", target_type="platform_admin", target_id=admin.id,
                 changes={"username": username})
    return admin


def get_admin(admin_id) -> PlatformAdmin:
    admin = db.session.get(PlatformAdmin, parse_uuid(admin_id)) if parse_uuid(admin_id) else None
    if admin is None:
        raise NotFound("No such admin.", code="admin_not_found")
    return admin


def find_by_username(username: str) -> PlatformAdmin:
    admin = db.session.scalar(sa.select(PlatformAdmin).where(sa.func.lower(PlatformAdmin.username) == username.lower()))
    if admin is None:
        raise NotFound(f"No admin named {username!r}.", code="admin_not_found")
    return admin


def list_admins() -> list[PlatformAdmin]:
    return list(db.session.scalars(sa.select(PlatformAdmin).order_by(PlatformAdmin.created_at)))


@atomic()
def set_active(admin_id, actor: Actor, active: bool) -> PlatformAdmin:
    admin = get_admin(admin_id)
    if not active and actor.kind == "platform_admin" and actor.id == str(admin.id):
        raise InvalidInput("You cannot deactivate yourself.", code="cannot_deactivate_self")
    if admin.is_active != active:
        admin.is_active = active
        if not active:
            admin.session_version += 1  # signs out every dashboard session
            db.session.execute(sa.update(AdminToken).where(AdminToken.admin_id == admin.id,
                                                           AdminToken.revoked_at.is_(None))
                               .values(revoked_at=utcnow()))
        audit.record(actor, "admin.activate" if active else "admin.deactivate", target_type="platform_admin",
                     target_id=admin.id, changes={"is_active": [not active, active]})
    return admin


def sign_in(username: str, password: str, ip: str | None) -> PlatformAdmin:
    """Check dashboard credentials; throttled per username and IP like member logins (outside any
    transaction, so a failure's count stands when the check rolls back)."""
    with login_throttle().attempt(REALM, username, ip):
        return _check_password((username or "").strip(), password)


@atomic()
def _check_password(username: str, password: str) -> PlatformAdmin:
    admin = db.session.scalar(sa.select(PlatformAdmin).where(sa.func.lower(PlatformAdmin.username) == username.lower()))
    password_ok = verify_password(password or "", admin.password_hash if admin else None)
    if admin is None or not password_ok or not admin.is_active:
        raise Unauthenticated("Invalid username or password.", code="invalid_credentials")
    admin.last_login_at = utcnow()
    return admin


def unlock(username: str, actor: Actor, *, ip: str | None = None) -> PlatformAdmin:
    """End an admin's dashboard lockout, and clear an address's failures when one is named. Only by name:
    an address's count is shared by every account tried from it, and clearing it would give whoever
    guesses from there a fresh allowance."""
    admin = find_by_username((username or "").strip())
    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise InvalidInput(f"{ip!r} is not an IP address.", param="ip") from None
    login_throttle().unlock(REALM, admin.username, ip)
    with atomic():
        audit.record(actor, "admin.unlock", target_type="platform_admin", target_id=admin.id,
                     changes={"ip": ip} if ip else {})
    return admin


@atomic()
def issue_token(admin: PlatformAdmin, actor: Actor, *, name: str = "cli") -> tuple[AdminToken, str]:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput("Token name must be 1 to 80 characters.", param="name")
    raw = "wa_pat_" + random_token(40)
    token = AdminToken(admin_id=admin.id, name=name, prefix=raw[:14], digest=digest(raw))
    db.session.add(token)
    db.session.flush()
    audit.record(actor, "admin_token.create", target_type="admin_token", target_id=token.id,
                 changes={"admin": admin.username, "name": name, "prefix": token.prefix})
    return token, raw


@atomic()
def revoke_token(token_id, actor: Actor) -> AdminToken:
    token = db.session.get(AdminToken, parse_uuid(token_id)) if parse_uuid(token_id) else None
    if token is None:
        raise NotFound("No such token.", code="token_not_found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(actor, "admin_token.revoke", target_type="admin_token", target_id=token.id,
                     changes={"prefix": token.prefix})
    return token


def list_tokens(admin: PlatformAdmin) -> list[AdminToken]:
    return list(db.session.scalars(sa.select(AdminToken).where(AdminToken.admin_id == admin.id)
                                   .order_by(AdminToken.created_at)))


@atomic()
def authenticate_token(raw: str) -> PlatformAdmin:
    raw = (raw or "").strip()
    token = None
    if TOKEN_PATTERN.match(raw):
        token = db.session.scalar(sa.select(AdminToken).where(AdminToken.digest == digest(raw)))
    if token is None or token.revoked_at is not None or not token.admin.is_active:
        raise Unauthenticated("Invalid admin token.", code="invalid_admin_token")
    token.last_used_at = utcnow()
    return token.admin
