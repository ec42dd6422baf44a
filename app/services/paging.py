"""Keyset pagination on (created_at, id): a page costs the same however deep it is (no OFFSET)."""
from __future__ import annotations

import base64
import uuid
from datetime import date, datetime, time, timedelta, timezone

from app.errors import InvalidInput
from app.models import parse_uuid


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
