"""Reading dashboard forms, and carrying what was typed plus what was wrong back into the fragment.

The rules themselves live in the services; parsing here only turns text into the types they take,
raising the same `InvalidInput` (with `param`) so one `except` shows every mistake beside its field.
"""
from __future__ import annotations

from datetime import date

from werkzeug.datastructures import MultiDict

from app.core.errors import DomainError, InvalidInput


class Form:
    """The values an admin submitted and the errors to show: per field, or for the form as a whole."""

    def __init__(self, values=None, errors: dict[str, str] | None = None, message: str | None = None):
        self.values = MultiDict(values) if values is not None else MultiDict()
        self.errors = errors or {}
        self.message = message

    @classmethod
    def failed(cls, values, error: DomainError, fields) -> Form:
        if error.param in fields:
            return cls(values, {error.param: error.message})
        return cls(values, message=error.message)

    def value(self, name: str, default="") -> str:
        return self.values.get(name, default)

    def all(self, name: str) -> list[str]:
        return self.values.getlist(name)

    def error(self, name: str) -> str | None:
        return self.errors.get(name)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors or self.message)


def typed_back(values) -> MultiDict:
    """What to put back into a form that failed: what was typed, never a password or secret, never
    the old CSRF token."""
    return MultiDict([(name, value) for name, value in values.items(multi=True)
                      if name != "csrf_token" and "password" not in name and "secret" not in name])


def text(values, name: str) -> str:
    return (values.get(name) or "").strip()


def optional_text(values, name: str) -> str | None:
    return text(values, name) or None


def whole_number(values, name: str, label: str) -> int:
    raw = text(values, name)
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{label} must be a whole number.", param=name) from None


def checkbox(values, name: str) -> bool:
    return values.get(name) in ("on", "true", "1", "yes")


def day(values, name: str, label: str) -> date | None:
    raw = text(values, name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{label} must be a date (YYYY-MM-DD).", param=name) from None


def page_number(values) -> int:
    raw = text(values, "page")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


class Page:
    """One page of a list, with what a pager needs."""

    def __init__(self, items: list, total: int, page: int, per_page: int):
        self.items, self.total, self.page, self.per_page = items, total, page, per_page
        self.pages = max(1, -(-total // per_page))
        self.first = (page - 1) * per_page + 1 if total else 0
        self.last = min(total, page * per_page)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages
