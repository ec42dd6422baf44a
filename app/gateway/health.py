"""How each gateway is doing, and what that means for where calls go.

- Counters from real calls (success and error counts, the last error), buffered like API-key use,
  so a generation costs no row lock on its gateway.
- A circuit breaker per gateway, shared by every process through the database: after
  GATEWAY_CIRCUIT_FAILURES consecutive connection failures (nothing reached the gateway) it is
  skipped for GATEWAY_CIRCUIT_COOLDOWN_SECONDS, so a dead gateway costs no request a connect timeout;
  then exactly one request (or the periodic probe) tries it again, claimed by compare-and-set. Each
  process reads the circuits at most once a second.
"""
from __future__ import annotations

import functools
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from app.core.counters import BufferedCounter
from app.core.db import utcnow
from app.extensions import db
from app.gateway.models import Gateway, GatewayCircuit

_counts = BufferedCounter(Gateway.__table__)
CIRCUITS_READ_SECONDS = 1.0


def note_health(gateway_id: uuid.UUID | None, *, ok: bool, error: str | None = None) -> None:
    """Count one call's outcome against its Gateway row (the default gateway has none)."""
    if gateway_id is None:
        return
    if ok:
        _counts.add(gateway_id, {"success_count": 1}, {"last_success_at": utcnow()})
    else:
        _counts.add(gateway_id, {"error_count": 1},
                    {"last_error": (error or "error")[:500], "last_error_at": utcnow()})


def flush_health(force: bool = False) -> int:
    return _counts.flush(force)


@dataclass(frozen=True)
class Circuit:
    failures: int
    open_until: datetime | None


@dataclass
class _Snapshot:
    circuits: dict[str, Circuit]
    read_at: float


_lock = threading.Lock()
_circuits = GatewayCircuit.__table__


def circuits() -> dict[str, Circuit]:
    """Every gateway's circuit by base URL, as this process last read it (at most a second ago)."""
    cache = current_app.extensions.setdefault("waule.circuits", {})
    with _lock:
        snapshot = cache.get("snapshot")
        if snapshot is not None and time.monotonic() - snapshot.read_at < CIRCUITS_READ_SECONDS:
            return snapshot.circuits
    with db.engine.connect() as connection:
        rows = connection.execute(sa.select(_circuits.c.base_url, _circuits.c.failures, _circuits.c.open_until))
        found = {url: Circuit(failures, open_until) for url, failures, open_until in rows}
    with _lock:
        cache["snapshot"] = _Snapshot(found, time.monotonic())
    return found


def _forget() -> None:
    current_app.extensions.setdefault("waule.circuits", {}).pop("snapshot", None)


def usable(targets: list) -> list:
    """`targets` without those whose circuit is open. A circuit whose cool-down has passed lets one
    caller through (who claims it by moving `open_until` on; the others keep skipping it)."""
    known = circuits()
    now = utcnow()
    kept = []
    for target in targets:
        circuit = known.get(target.base_url)
        if circuit is None or circuit.open_until is None:
            kept.append(target)
        elif circuit.open_until <= now and _claim_trial(target.base_url, circuit.open_until):
            kept.append(target)
    return kept


def _cooldown() -> timedelta:
    return timedelta(seconds=current_app.config["GATEWAY_CIRCUIT_COOLDOWN_SECONDS"])


def _claim_trial(base_url: str, seen_open_until: datetime) -> bool:
    with db.engine.begin() as connection:
        claimed = connection.execute(
            sa.update(_circuits).where(_circuits.c.base_url == base_url, _circuits.c.open_until == seen_open_until)
            .values(open_until=utcnow() + _cooldown(), updated_at=utcnow())).rowcount
    _forget()
    return bool(claimed)


@functools.cache
def _count_failure(dialect_name: str):
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    when = _circuits.c.open_until.type  # typed binds: SQLite must store these exactly as it compares them
    insert = dialect.insert(_circuits).values(base_url=sa.bindparam("url"), failures=1,
                                              open_until=sa.bindparam("first_open", type_=when),
                                              updated_at=sa.bindparam("now", type_=when))
    failures = _circuits.c.failures + 1
    return insert.on_conflict_do_update(index_elements=["base_url"], set_={
        "failures": failures,
        "open_until": sa.case((failures >= sa.bindparam("limit", type_=sa.Integer),
                               sa.bindparam("open_until", type_=when)), else_=_circuits.c.open_until),
        "updated_at": sa.bindparam("now", type_=when)})


def connection_failed(target) -> None:
    """Nothing reached the gateway: one more consecutive failure; at the limit the circuit opens."""
    now, limit = utcnow(), current_app.config["GATEWAY_CIRCUIT_FAILURES"]
    with db.engine.begin() as connection:
        connection.execute(_count_failure(db.engine.dialect.name), {
            "url": target.base_url, "now": now, "limit": limit, "open_until": now + _cooldown(),
            "first_open": now + _cooldown() if limit <= 1 else None})
    _forget()


def connected(target) -> None:
    """The gateway answered: its circuit closes (written only when it was not already closed)."""
    circuit = circuits().get(target.base_url)
    if circuit is None or (circuit.failures == 0 and circuit.open_until is None):
        return
    with db.engine.begin() as connection:
        connection.execute(sa.update(_circuits).where(_circuits.c.base_url == target.base_url)
                           .values(failures=0, open_until=None, updated_at=utcnow()))
    _forget()
