"""Counters that are bumped on every request but read rarely (API-key use, gateway health): gathered
in memory and written in one UPDATE per row every KEY_USAGE_FLUSH_SECONDS, so a busy row costs one
short write per interval per process instead of a locked row per request."""
from __future__ import annotations

import logging
import threading
import time
import uuid

import sqlalchemy as sa
from flask import current_app

from app.extensions import db

log = logging.getLogger(__name__)


class BufferedCounter:
    """Per row of `table`: `counts` are added to their columns, `latest` values replace theirs."""

    def __init__(self, table: sa.Table):
        self.table = table
        self._pending: dict[uuid.UUID, tuple[dict, dict]] = {}
        self._lock = threading.Lock()
        self._flushed_at = time.monotonic()
        _COUNTERS.append(self)

    def add(self, row_id: uuid.UUID, counts: dict[str, int], latest: dict | None = None) -> None:
        with self._lock:
            self._merge(row_id, counts, latest or {}, newer=True)

    def _merge(self, row_id, counts: dict, latest: dict, *, newer: bool) -> None:
        kept_counts, kept_latest = self._pending.setdefault(row_id, ({}, {}))
        for column, amount in counts.items():
            kept_counts[column] = kept_counts.get(column, 0) + amount
        for column, value in latest.items():
            if newer or column not in kept_latest:
                kept_latest[column] = value

    def flush(self, force: bool = False) -> int:
        """Write what was gathered; returns how many rows were updated."""
        interval = current_app.config["KEY_USAGE_FLUSH_SECONDS"]
        with self._lock:
            if not self._pending or (not force and time.monotonic() - self._flushed_at < interval):
                return 0
            batch, self._pending = self._pending, {}
            self._flushed_at = time.monotonic()
        columns = self.table.c
        try:
            # Its own connection and transaction: never commits whatever the caller's session holds.
            # Rows in id order: every process locks them in the same order, so two flushes cannot deadlock.
            with db.engine.begin() as connection:
                for row_id, (counts, latest) in sorted(batch.items()):
                    values = {name: columns[name] + amount for name, amount in counts.items()} | latest
                    connection.execute(sa.update(self.table).where(columns.id == row_id).values(**values))
        except sa.exc.SQLAlchemyError:
            # Bookkeeping must never fail the response it rides on: keep the counts for the next flush.
            log.exception("could not write %s counters; keeping them for the next flush", self.table.name)
            with self._lock:
                for row_id, (counts, latest) in batch.items():
                    self._merge(row_id, counts, latest, newer=False)
            return 0
        return len(batch)


_COUNTERS: list[BufferedCounter] = []


def flush_all(force: bool = False) -> None:
    for counter in _COUNTERS:
        counter.flush(force)
