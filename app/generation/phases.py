"""The PostgreSQL spelling of a paid generation's two money phases (docs/architecture.md, "The hot path").

On PostgreSQL the hold phase and the settle phase are each ONE statement, sent in one round trip on an
autocommitted connection, so the statement is its own transaction and COMMIT costs no round trip of its
own. They are data-modifying CTEs built here, not SQL functions shipped by a migration: the statement
is written against the same tables as the portable path beside it, changes with the code that calls it
(no migration to keep in step with a Python release, nothing to redeploy for a fix) and costs the same
one round trip. In a data-modifying CTE every sub-statement runs, so each one selects from the
compare-and-set before it: when that writes nothing, nothing else is written. Why it refused is read
afterwards, on the failure path only.

SQLite keeps the portable path (flow._start, flow.finish with ledger.hold/settle): the money logic has
two spellings, and the suite runs on both databases; tests/integration/test_phases.py runs the same
scenarios through both on PostgreSQL and compares what they wrote.

    hold:   tenant (conditional: available, fees owed, quota) → credit_holds → generations
    settle: generations (compare-and-set on its status; the hold still HELD) → credit_holds (HELD →
            SETTLED) → stored_files (PENDING → STORED) → tenants (balance, held, storage meter) →
            ledger_entries (CONSUME, when charged) → usage_records → usage_daily (upsert) → idempotency_keys
"""
from __future__ import annotations

import functools
import json
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from app.billing.ledger import InsufficientCredits
from app.billing.models import CreditHold, IdempotencyKey, LedgerEntry
from app.core.db import utcnow
from app.core.errors import NotFound
from app.core.transaction import atomic, in_atomic
from app.extensions import db
from app.generation.models import Generation, UsageDaily, UsageRecord
from app.identity.audit import Actor
from app.identity.models import Tenant
from app.storage import quota
from app.storage.models import StoredFile

log = logging.getLogger(__name__)

_generations, _holds, _entries = Generation.__table__, CreditHold.__table__, LedgerEntry.__table__
_records, _daily, _tenants = UsageRecord.__table__, UsageDaily.__table__, Tenant.__table__
_keys = IdempotencyKey.__table__
_KEY_CONSTRAINT = "uq_idempotency_keys_tenant_scope_key"


# False sends PostgreSQL down the portable path too: the tests compare the two spellings, and the
# ledger bench measures both.
ENABLED = True


def available() -> bool:
    """Whether this database runs the single-statement phases (PostgreSQL; SQLite keeps the portable path)."""
    return ENABLED and db.engine.dialect.name == "postgresql"


def _binds(table: sa.Table, prefix: str, skip=()) -> tuple[str, str, list[sa.BindParameter]]:
    """`(columns, :placeholders, typed binds)` for an INSERT … SELECT of every column of `table`: the
    binds carry the columns' types, so UUIDs, JSON and UTC datetimes are sent as the ORM sends them."""
    columns = [column for column in table.columns if column.key not in skip]
    names = ", ".join(column.name for column in columns)
    values = ", ".join(f":{prefix}{column.key}" for column in columns)
    return names, values, [sa.bindparam(f"{prefix}{column.key}", type_=column.type) for column in columns]


@contextmanager
def _connection():
    """A pooled connection in autocommit: each statement is its own transaction, with no BEGIN or
    COMMIT round trip. The flag is psycopg2's own, set and cleared on the client: SQLAlchemy's
    isolation_level option would reset the connection on its return with a SET (a round trip)."""
    with db.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        raw.autocommit = True
        try:
            yield connection
        finally:
            if not raw.closed:
                raw.autocommit = False


@sa.event.listens_for(Session, "after_begin")
def _connected(session, _transaction, _connection) -> None:
    session.info["connected"] = True


@sa.event.listens_for(Session, "after_transaction_end")
def _released(session, transaction) -> None:
    if transaction.parent is None:
        session.info["connected"] = False


def _in_transaction() -> bool:
    """Whether this session's transaction has a connection (it read or wrote since its last commit);
    Session.in_transaction() is also true once an object was merely added."""
    return db.session().info.get("connected", False) or in_atomic()


def _run(statement, values: dict, *, retry_safe: bool, then=None, keep=()):
    """Run one phase statement and `then(row)` (what the session must know of what it wrote).

    When this session already has a transaction open (it read or wrote since its last commit), the
    statement runs in it and commits it, as atomic() does: its writes may hold row locks the statement
    needs (an autoflushed stored file), and a second connection would wait on them for ever.
    Otherwise it runs on an autocommitted connection. Connections are not pinged at checkout (a round
    trip each time): one the server dropped fails on use, SQLAlchemy invalidates the pool, and the
    statement is sent once more on a fresh connection when `retry_safe` says a second run cannot
    write twice."""
    session = db.session()
    if _in_transaction():
        with atomic(keep=keep), session.no_autoflush:
            row = session.execute(statement, values).first()
            if then is not None:
                then(row)
        return row
    for attempt in (1, 2):
        try:
            with _connection() as connection:
                row = connection.execute(statement, values).first()
            break
        except sa.exc.DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated or not retry_safe:
                raise
            log.warning("the database connection was lost; sending the phase statement again on a new one")
    if then is not None:
        then(row)
    return row


@functools.cache
def _hold_statement(with_claim: bool) -> sa.TextClause:
    hold_columns, hold_values, hold_binds = _binds(_holds, "h_")
    generation_columns, generation_values, generation_binds = _binds(_generations, "g_")
    claim_columns, claim_values, claim_binds = _binds(_keys, "k_") if with_claim else ("", "", [])
    # The key's row is a plain INSERT: a key already there (a replay, a retry while the first runs, an
    # expired row) is a unique violation, which undoes the whole statement; the portable claim then answers.
    claim = (f"claim AS (INSERT INTO idempotency_keys ({claim_columns}) SELECT {claim_values} FROM granted), "
             if with_claim else "")
    return sa.text(f"""
        WITH granted AS (
            UPDATE tenants SET held = held + :amount
            WHERE id = :tenant_id AND balance - held >= :amount AND storage_fees_owed = 0
              AND (storage_quota_bytes IS NULL OR :needs_bytes <= 0
                   OR storage_used_bytes + :needs_bytes <= storage_quota_bytes)
            RETURNING id
        ), {claim}hold AS (
            INSERT INTO credit_holds ({hold_columns}) SELECT {hold_values} FROM granted RETURNING id
        )
        INSERT INTO generations ({generation_columns}) SELECT {generation_values} FROM hold RETURNING id
    """).bindparams(*hold_binds, *generation_binds, *claim_binds, sa.bindparam("tenant_id", type_=_tenants.c.id.type),
                    sa.bindparam("amount", type_=sa.BigInteger()), sa.bindparam("needs_bytes", type_=sa.BigInteger()))


class KeyTaken(Exception):
    """The Idempotency-Key already has a row: nothing was written, and the portable claim decides
    (replay, 409 while the first request runs, 422 for another body, or a fresh claim of an expired key)."""


def _filled(instance, table: sa.Table, now: datetime) -> dict:
    """Every column's value, the Python-side defaults applied (and set on the instance, which is then
    complete as if read back): what the ORM's INSERT would have sent."""
    values = {}
    for column in table.columns:
        if column.key in instance.__dict__:
            value = instance.__dict__[column.key]
        elif column.default is not None and column.default.is_callable:
            value = now if column.key in ("created_at", "updated_at") else column.default.arg(None)
        elif column.default is not None and column.default.is_scalar:
            value = column.default.arg
        else:
            value = None
        setattr(instance, column.key, value)
        values[column.key] = value
    return values


def hold(generation: Generation, credit_hold: CreditHold, *, needs_bytes: int,
         claim: IdempotencyKey | None = None) -> None:
    """Hold `credit_hold.amount` of the generation's tenant and record both rows (and the request's
    Idempotency-Key row, `claim`), in one statement; `generation` (transient, filled in) is then
    attached to the session as a loaded row, so the flow goes on with it as if it had been flushed and
    read. Raises what the portable path raises, in its order: StorageFeesOwed, StorageQuotaExceeded,
    InsufficientCredits, or NotFound (no such tenant); KeyTaken when the key has a row already."""
    now = utcnow()
    values = {"tenant_id": credit_hold.tenant_id, "amount": credit_hold.amount, "needs_bytes": needs_bytes}
    values.update({f"h_{key}": value for key, value in _filled(credit_hold, _holds, now).items()})
    values.update({f"g_{key}": value for key, value in _filled(generation, _generations, now).items()})
    if claim is not None:
        values.update({f"k_{key}": value for key, value in _filled(claim, _keys, now).items()})
    def attach(written):
        if written is not None:
            make_transient_to_detached(generation)
            db.session.add(generation)

    # A client-chosen id makes a resend after a lost connection safe: a first run that did commit makes
    # the second fail on the primary key, and nothing is held twice.
    try:
        written = _run(_hold_statement(claim is not None), values, retry_safe=True, then=attach, keep=(generation,))
    except sa.exc.IntegrityError as error:
        if _exists(generation.id):
            attach(written := True)
        elif getattr(getattr(error.orig, "diag", None), "constraint_name", None) == _KEY_CONSTRAINT:
            raise KeyTaken() from None
        else:
            raise
    if written is None:
        _why_not_held(credit_hold.tenant_id, credit_hold.amount, needs_bytes)


_INSERT_FILE = sa.insert(StoredFile.__table__).returning(StoredFile.__table__.c.id)


def record_file(stored: StoredFile) -> None:
    """A result's PENDING row, inserted and committed on its own (one round trip) before its object is
    written, so a crash during the write leaves the row for the sweep. The row is not added to the
    session but left detached, as if read: the settle statement confirms it with its size, and the
    portable settle adds it back to write the size itself."""
    _run(_INSERT_FILE, _filled(stored, StoredFile.__table__, utcnow()), retry_safe=False)
    make_transient_to_detached(stored)


def _read(query):
    """A read on the failure path: in the session's transaction when one is open (a second connection
    per request could run the pool dry), else autocommitted."""
    if _in_transaction():
        return db.session.execute(query).first()
    with _connection() as connection:
        return connection.execute(query).first()


def _exists(generation_id: uuid.UUID) -> bool:
    return _read(sa.select(_generations.c.id).where(_generations.c.id == generation_id)) is not None


def _why_not_held(tenant_id: uuid.UUID, amount: int, needs_bytes: int):
    row = _read(sa.select(_tenants.c.storage_fees_owed, _tenants.c.storage_quota_bytes, _tenants.c.storage_used_bytes)
                .where(_tenants.c.id == tenant_id))
    if row is None:
        raise NotFound("No such tenant.", code="tenant_not_found")
    quota.ensure_no_fees_owed(row)
    quota.refuse_beyond(row.storage_quota_bytes, row.storage_used_bytes, needs_bytes)
    raise InsufficientCredits(f"Not enough credits: this needs {amount}.")


@dataclass(frozen=True)
class Settled:
    balance: int
    held: int
    low_credits_armed: bool  # the tenant has a credits.low threshold, or one has fired: check_low_credits runs


class Unsettled(Exception):
    """The statement wrote nothing because the tenant has an endpoint for the generation's event: its
    delivery is written in the settling transaction, so the portable path settles this one."""


def _dirty(instance) -> tuple[dict, object]:
    """The columns changed since the instance was loaded (what the ORM's UPDATE would set), and the
    status it was loaded with (what its compare-and-set expects)."""
    state, changed, loaded_status = sa.inspect(instance), {}, None
    for attribute in state.mapper.column_attrs:
        history = state.attrs[attribute.key].history
        if attribute.key == "status":
            loaded_status = (history.deleted or history.unchanged or [None])[0]
        if history.added or history.deleted:
            changed[attribute.key] = (history.added or [None])[0]
    return changed, loaded_status


@functools.cache
def _settle_statement(changed: tuple[str, ...]) -> sa.TextClause:
    assignments = ", ".join(f"{_generations.c[key].name} = :g_{key}" for key in changed)
    record_columns, record_values, record_binds = _binds(_records, "r_")
    entry_columns = ("id, tenant_id, type, amount, balance_after, description, actor_type, actor_id, actor_name, "
                     "reference, hold_id, created_at")
    rolled = ("requests", "failures", "credits", "input_tokens", "output_tokens", "seconds", "quantity")
    return sa.text(f"""
        WITH gen AS (
            UPDATE generations SET {assignments}
            WHERE id = :generation_id AND status = :loaded_status AND hold_id = :hold_id
              AND EXISTS (SELECT 1 FROM credit_holds WHERE id = :hold_id AND status = 'HELD' AND amount >= :charge)
              AND NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = :tenant_id AND enabled
                              AND events @> CAST(:event AS jsonb))
            RETURNING id
        ), settled AS (
            UPDATE credit_holds SET status = 'SETTLED', settled_amount = :charge, resolved_at = :now
            WHERE id = :hold_id AND status = 'HELD' AND EXISTS (SELECT 1 FROM gen)
            RETURNING tenant_id, amount, reference
        ), files AS (
            UPDATE stored_files AS f SET status = 'STORED', size_bytes = COALESCE(
                (SELECT v.size FROM unnest(CAST(:file_ids AS uuid[]), CAST(:file_sizes AS bigint[])) AS v(id, size)
                 WHERE v.id = f.id), f.size_bytes)
            WHERE f.generation_id = (SELECT id FROM gen) AND f.status = 'PENDING'
            RETURNING f.size_bytes
        ), charged AS (
            UPDATE tenants SET balance = tenants.balance - :charge, held = tenants.held - settled.amount,
                storage_used_bytes = tenants.storage_used_bytes + COALESCE((SELECT sum(size_bytes) FROM files), 0)
            FROM settled WHERE tenants.id = settled.tenant_id
            RETURNING tenants.balance, tenants.held,
                tenants.low_credits_threshold IS NOT NULL OR tenants.low_credits_notified_at IS NOT NULL AS armed
        ), entry AS (
            INSERT INTO ledger_entries ({entry_columns})
            SELECT :e_id, settled.tenant_id, 'CONSUME', -CAST(:charge AS bigint), charged.balance, :e_description,
                   :e_actor_type, :e_actor_id, :e_actor_name, settled.reference, :hold_id, :now
            FROM settled, charged WHERE :charge > 0
        ), usage AS (
            INSERT INTO usage_records ({record_columns}) SELECT {record_values} FROM gen
        ), rollup AS (
            INSERT INTO usage_daily (tenant_id, day, model, caller, is_test, kind, {", ".join(rolled)})
            SELECT :r_tenant_id, :day, :r_model, :caller, :r_is_test, :r_kind, 1, 0, :r_credits,
                   COALESCE(:r_input_tokens, 0), COALESCE(:r_output_tokens, 0), COALESCE(:r_seconds, 0),
                   COALESCE(:r_quantity, 0)
            FROM gen
            ON CONFLICT (tenant_id, day, model, caller, is_test) DO UPDATE SET
                {", ".join(f"{name} = usage_daily.{name} + excluded.{name}" for name in rolled)}
        ), remembered AS (
            UPDATE idempotency_keys SET status = 'COMPLETED', result = :result
            WHERE id = :idempotency_key_id AND EXISTS (SELECT 1 FROM gen)
        )
        SELECT (SELECT count(*) FROM gen) AS finished, charged.balance, charged.held, charged.armed,
               EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = :tenant_id AND enabled
                       AND events @> CAST(:event AS jsonb)) AS webhooks
        FROM (SELECT 1) AS one LEFT JOIN charged ON true
    """).bindparams(
        *[sa.bindparam(f"g_{key}", type_=_generations.c[key].type) for key in changed], *record_binds,
        sa.bindparam("generation_id", type_=_generations.c.id.type),
        sa.bindparam("hold_id", type_=_holds.c.id.type), sa.bindparam("tenant_id", type_=_tenants.c.id.type),
        sa.bindparam("idempotency_key_id", type_=IdempotencyKey.__table__.c.id.type),
        sa.bindparam("result", type_=IdempotencyKey.__table__.c.result.type),
        sa.bindparam("e_id", type_=_entries.c.id.type), sa.bindparam("now", type_=_holds.c.resolved_at.type),
        sa.bindparam("charge", type_=sa.BigInteger()), sa.bindparam("day", type_=_daily.c.day.type))


def settle(generation: Generation, credits: int, actor: Actor, *, description: str, event: str,
           usage: dict, files: list[tuple[uuid.UUID, int]] = ()) -> Settled:
    """Write a finished generation (its changed columns, compare-and-set on the status it was loaded
    with), settle its hold for `credits`, confirm and meter its stored `files` ((id, size) pairs),
    add its usage record and rollup and finish its idempotency key: one statement. The generation's
    compare-and-set decides first: a generation a sweep failed meanwhile writes nothing at all (its
    hold stays as the sweep released it) and StaleDataError is raised, as the ORM's flush would.
    Raises Unsettled when the tenant has an endpoint for `event` (the portable path writes its delivery
    in the same transaction). `usage`: usage.record's measures (input_tokens, …, latency_ms)."""
    changed, loaded_status = _dirty(generation)
    now = utcnow()
    changed["updated_at"] = now
    keys = tuple(sorted(changed))
    record = {"id": uuid.uuid4(), "tenant_id": generation.tenant_id, "user_id": generation.user_id,
              "api_key_id": generation.api_key_id, "generation_id": generation.id, "model": generation.model,
              "kind": generation.kind, "operation": generation.params.get("operation") or f"{generation.kind}.generate",
              "status": "success", "is_test": generation.is_test, "credits": credits, "created_at": now,
              "input_tokens": None, "output_tokens": None, "seconds": None, "quantity": None, "latency_ms": None,
              **usage}
    values = {f"g_{key}": changed[key] for key in keys}
    values.update({f"r_{key}": value for key, value in record.items()})
    values.update(generation_id=generation.id, loaded_status=loaded_status, hold_id=generation.hold_id,
                  tenant_id=generation.tenant_id, charge=credits, now=now, day=now.date(), caller=generation.caller,
                  event=json.dumps([event]), file_ids=[str(file_id) for file_id, _ in files],
                  file_sizes=[size for _, size in files], idempotency_key_id=generation.idempotency_key_id,
                  result={"generation_id": str(generation.id)}, e_id=uuid.uuid4(),
                  e_description=(description or "")[:255], e_actor_type=actor.kind, e_actor_id=actor.id,
                  e_actor_name=actor.name)
    # Not resent after a lost connection: a first run that did commit would make the second refuse, and
    # the request would answer a conflict for a generation that was charged. The error fails the request
    # instead (fail() then finds the generation either settled or still running, and acts once).
    def written(row):
        if not row.finished:
            return
        # What the statement wrote is now what the session holds: nothing is left for a later flush.
        for key in keys:
            set_committed_value(generation, key, changed[key])
        for file_id, size in files:
            stored = db.session.identity_map.get(sa.inspect(StoredFile).identity_key_from_primary_key([file_id]))
            if stored is not None:
                set_committed_value(stored, "size_bytes", size)
                set_committed_value(stored, "status", "STORED")

    row = _run(_settle_statement(keys), values, retry_safe=False, then=written, keep=(generation,))
    if not row.finished:
        if row.webhooks:
            raise Unsettled()
        raise StaleDataError(f"generation {generation.id} was no longer {loaded_status}, or its hold not open")
    return Settled(row.balance, row.held, bool(row.armed))

