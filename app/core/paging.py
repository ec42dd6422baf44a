"""Keyset pagination on (created_at, id): a page costs the same however deep it is (no OFFSET)."""
from __future__ import annotations

import base64
import uuid
from datetime import date, datetime, time, timedelta, timezone

import sqlalchemy as sa

from app.core.db import parse_uuid
from app.core.errors import InvalidInput


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|")
        when, ident = datetime.fromisoformat(stamp), parse_uuid(row_id)
        if ident is None or when.tzinfo is None:
            raise ValueError
        # A forged offset can push the instant outside datetime's range: that is a bad cursor, not a 500.
        return when.astimezone(timezone.utc), ident
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise InvalidInput("Invalid cursor.", param="cursor") from None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def day_end(day: date) -> datetime:
    """The end of `day` (UTC), for `created_at < day_end(to)` filters that include the whole day.
    date.max has no next day to start, so its end is the last representable instant."""
    if day >= date.max:
        return datetime.max.replace(tzinfo=timezone.utc)
    return day_start(day + timedelta(days=1))


def newest_first(query, model, *, date_from: date | None = None, date_to: date | None = None,
                 cursor: str | None = None):
    """`query` limited to a date range (whole UTC days) and to the rows after `cursor`, ordered
    newest first on (model.created_at, model.id)."""
    if date_from:
        query = query.where(model.created_at >= day_start(date_from))
    if date_to:
        query = query.where(model.created_at < day_end(date_to))
    if cursor:
        when, ident = decode_cursor(cursor)
        query = query.where(sa.or_(model.created_at < when, sa.and_(model.created_at == when, model.id < ident)))
    return query.order_by(model.created_at.desc(), model.id.desc())


def one_page(rows: list, limit: int, *, row_of=lambda row: row) -> tuple[list, str | None]:
    """Cut rows fetched with `limit + 1` to a page; the cursor names the last row when more follow."""
    more = len(rows) > limit
    rows = rows[:limit]
    last = row_of(rows[-1]) if more and rows else None
    return rows, encode_cursor(last.created_at, last.id) if last is not None else None
