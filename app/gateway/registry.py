"""Managing waule-api gateways: the rows the client in app/gateway/client.py sends calls to.

A gateway's secret is written encrypted and never read back out of this module: not in a return
value, a form, an audit entry or a log line. Replacing it is the only way to change it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa

from app.catalog.models import AiModel
from app.catalog.service import get_model
from app.core import cache
from app.core.crypto import encrypt
from app.core.errors import Conflict, InvalidInput
from app.core.lookup import get_or_404
from app.core.transaction import atomic
from app.extensions import db
from app.gateway import client as gateway
from app.gateway.models import Gateway
from app.identity import audit
from app.identity.audit import Actor
from config import strict_origin

NAME_MAX = 80
URL_MAX = 255
PREFIX_MAX = 40
SECRET_MAX = 500
PRIORITY_RANGE = (0, 10_000)
WEIGHT_RANGE = (1, 1_000)
# What the audit trail and the dashboard may show of a gateway: everything but the secret.
PUBLIC_FIELDS = ("name", "base_url", "files_origin", "path_prefix", "priority", "weight", "is_active")


def _name(value) -> str:
    name = (value or "").strip() if isinstance(value, str) else ""
    if not name:
        raise InvalidInput("Name must not be empty.", param="name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"Name must be at most {NAME_MAX} characters.", param="name")
    return name


def _base_url(value) -> str:
    url = (value or "").strip() if isinstance(value, str) else ""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok
            or parts.query or parts.fragment or parts.username or parts.password):
        raise InvalidInput("Base URL must be an http:// or https:// address such as https://api.example.com "
                           "(no credentials, query or fragment).", param="base_url")
    if len(url) > URL_MAX:
        raise InvalidInput(f"Base URL must be at most {URL_MAX} characters.", param="base_url")
    return url.rstrip("/")


def _files_origin(value) -> str | None:
    """An origin only, scheme://host[:port]: result downloads are allowlisted by origin, never by path."""
    origin = value.strip() if isinstance(value, str) else ""
    if not origin:
        return None
    if strict_origin(origin) is None:
        raise InvalidInput("Files origin must be an origin only, scheme://host[:port] such as "
                           "https://files.example.com (no path, credentials or query).", param="files_origin")
    if len(origin) > URL_MAX:
        raise InvalidInput(f"Files origin must be at most {URL_MAX} characters.", param="files_origin")
    return origin.rstrip("/").lower()  # nothing but scheme, host and port: no case to keep


def _path_prefix(value) -> str:
    prefix = (value or "").strip() if isinstance(value, str) else ""
    if not prefix:
        return "/v1"  # the client treats an empty prefix as /v1 anyway; store what it will use
    if not prefix.startswith("/") or any(c in prefix for c in "?#\\ ") or ".." in prefix or len(prefix) > PREFIX_MAX:
        raise InvalidInput(f"Path prefix must start with / (such as /v1), at most {PREFIX_MAX} characters.",
                           param="path_prefix")
    return prefix.rstrip("/") or "/v1"


def _secret(value) -> str:
    secret = value.strip() if isinstance(value, str) else ""
    if not secret:
        raise InvalidInput("Secret must not be empty.", param="secret")
    if len(secret) > SECRET_MAX:
        raise InvalidInput(f"Secret must be at most {SECRET_MAX} characters.", param="secret")
    return secret


def _bounded(value, name: str, label: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{label} must be a whole number from {low} to {high}.", param=name)
    return value


def _checked(values: dict) -> dict:
    """Validate every field given, before anything is applied."""
    checks = {
        "name": _name,
        "base_url": _base_url,
        "files_origin": _files_origin,
        "path_prefix": _path_prefix,
        "priority": lambda v: _bounded(v, "priority", "Priority", PRIORITY_RANGE),
        "weight": lambda v: _bounded(v, "weight", "Weight", WEIGHT_RANGE),
        "is_active": lambda v: bool(v),
    }
    unknown = set(values) - set(checks) - {"secret"}
    if unknown:
        raise InvalidInput(f"Unknown gateway field: {sorted(unknown)[0]}.", param=sorted(unknown)[0])
    return {name: checks[name](value) for name, value in values.items() if name in checks}


def _name_taken(name: str, except_id: uuid.UUID | None = None) -> bool:
    query = sa.select(Gateway.id).where(sa.func.lower(Gateway.name) == name.lower())
    if except_id is not None:
        query = query.where(Gateway.id != except_id)
    return db.session.scalar(query) is not None


def get_gateway(gateway_id) -> Gateway:
    return get_or_404(Gateway, gateway_id, what="gateway")


def list_gateways() -> list[Gateway]:
    """Every gateway in the order calls try them (priority, then name), with current health counters."""
    return list(db.session.scalars(sa.select(Gateway).order_by(Gateway.priority, Gateway.name)))


def create_gateway(actor: Actor, *, name: str, base_url: str, secret: str, files_origin: str | None = None,
                   path_prefix: str = "/v1", priority: int = 100, weight: int = 1, is_active: bool = True) -> Gateway:
    values = _checked({"name": name, "base_url": base_url, "files_origin": files_origin, "path_prefix": path_prefix,
                       "priority": priority, "weight": weight, "is_active": is_active})
    secret = _secret(secret)
    if _name_taken(values["name"]):
        raise Conflict(f"A gateway named {values['name']!r} already exists.", param="name",
                       code="gateway_name_taken")
    with atomic():
        row = Gateway(**values, secret_encrypted=encrypt(secret, context=gateway.SECRET_CONTEXT))
        db.session.add(row)
        db.session.flush()
        cache.changed("gateways")  # every process calls the new set from its next request
        audit.record(actor, "gateway.create", target_type="gateway", target_id=row.id,
                     changes={name: values[name] for name in PUBLIC_FIELDS})
    return row


def update_gateway(gateway_id, actor: Actor, changes: dict) -> Gateway:
    """Change what is given. A `secret` that is None or empty keeps the current one; a `files_origin` that is
    None or empty removes it."""
    row = get_gateway(gateway_id)
    changes = dict(changes)
    new_secret = changes.pop("secret", None)
    values = _checked(changes)
    secret = _secret(new_secret) if isinstance(new_secret, str) and new_secret.strip() else None
    if "name" in values and _name_taken(values["name"], except_id=row.id):
        raise Conflict(f"A gateway named {values['name']!r} already exists.", param="name",
                       code="gateway_name_taken")
    with atomic():
        recorded = audit.diff(row, values)
        if secret is not None:
            row.secret_encrypted = encrypt(secret, context=gateway.SECRET_CONTEXT)
            recorded["secret"] = "replaced"  # that it changed, never what to
        if recorded:
            cache.changed("gateways")
            audit.record(actor, "gateway.update", target_type="gateway", target_id=row.id,
                         changes={"name": row.name, **recorded})
    return row


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    detail: str


@atomic()
def test_connection(gateway_id, actor: Actor) -> ConnectionTest:
    """GET /health on the gateway with its own credentials; the answer is shown, not counted, because
    the health counters describe real traffic."""
    row = get_gateway(gateway_id)
    ok, detail = gateway.ping(gateway.row_target(row))
    audit.record(actor, "gateway.test", target_type="gateway", target_id=row.id,
                 changes={"name": row.name, "ok": ok, "detail": detail})
    return ConnectionTest(ok, detail)


@atomic()
def probe_gateways() -> int:
    """The periodic health probe: every active gateway and the default one; a dead one's circuit opens
    without a tenant's request paying for it, a recovered one's closes. Returns how many answered."""
    targets = gateway.active_targets()
    default = gateway.default_target()
    if default is not None and default.base_url not in {target.base_url for target in targets}:
        targets = [*targets, default]
    return sum(gateway.probe(target) for target in targets)


@atomic()  # it was never committed: the dashboard said "Gateway saved." and the request's end undid it
def set_model_gateway(model_uuid, gateway_id, actor: Actor) -> AiModel:
    """Name the gateway a model's calls go to first; None sends them to the default (WAULEAPI_URL)."""
    model, _rule = get_model(model_uuid)
    target = get_gateway(gateway_id) if gateway_id else None
    new_id = target.id if target else None
    if model.gateway_id != new_id:
        old = db.session.get(Gateway, model.gateway_id) if model.gateway_id else None
        model.gateway_id = new_id
        cache.changed("ai_models")
        audit.record(actor, "model.gateway", target_type="ai_model", target_id=model.id,
                     changes={"model_id": model.model_id,
                              "gateway": [old.name if old else None, target.name if target else None]})
    return model


def gateway_names() -> dict[uuid.UUID, str]:
    return dict(db.session.execute(sa.select(Gateway.id, Gateway.name)).all())
